"""What an engine or ONNX file says about itself, and how that meets the options a user gave.

A file written by ``hhrt build-engine`` is self-contained: joint count, flip, input size and shape
profile come from its sidecar (``NAME.json``) and, for ``.onnx`` files, also from the file's own ONNX
metadata (``metadata_props``), so a lone ``.onnx`` still knows how it was built. No network and no torch
weights are needed to run it.

The one place where that is read and checked (the estimator and the CLI both come here):

- :func:`read_engine_settings` -- sidecar and/or metadata, validated (anything malformed is an
  :class:`EngineMismatchError` or :class:`InputError`, never a ``KeyError``/protobuf traceback), the
  sidecar's hashes checked against the files, and an ``.onnx`` from another model refused;
- :func:`resolve_options` -- ``flip``/``input_size`` left unset take the file's values; an explicit value
  that contradicts the file is an :class:`InputError` (like a conflicting ``precision``);
- :func:`check_weights_match` -- weights given together with a file must be shown to be the ones it
  was built from (by a digest of their tensors), else they are refused.

Example:
    >>> settings = read_engine_settings("engines/w32_512-512-fp16.onnx")   # doctest: +SKIP
    >>> flip, size = resolve_options(settings, flip=None, input_size=None)  # doctest: +SKIP
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from hhrnet_rt.artifacts.file_kind import FileKind, file_kind
from hhrnet_rt.artifacts.sidecar import INPUT_NAME, OUTPUT_NAMES, Sidecar, sha256_file, sidecar_path_for
from hhrnet_rt.core.errors import EngineMismatchError, InputError, option
from hhrnet_rt.core.sizes import is_valid_input_size

#: Prefix of every ``metadata_props`` key hhrnet-rt writes into an ONNX file.
META_PREFIX = "hhrnet_rt."
#: protobuf cannot hold more than 2 GiB; a larger ".onnx" is not one (and is not read into memory).
MAX_ONNX_BYTES = 2 << 30


@dataclass(frozen=True)
class EngineSettings:
    """How a file was built. ``None`` = not recorded (a bare ONNX export without sidecar or metadata)."""

    path: Path
    kind: str  # "engine", "onnx" or "openvino" (an OpenVINO IR, .xml + .bin)
    num_joints: int | None
    flip: bool | None
    input_size: int | None
    shape_profile: dict[str, list[int]] | None
    project: bool
    weights: str | None
    weights_sha256: str | None
    origin: str  # where the facts came from, for messages
    onnx_path: Path | None  # the .onnx to run on ONNX Runtime (itself, or an engine's verified sibling)


def onnx_metadata(
    *,
    num_joints: int,
    flip: bool,
    project: bool,
    input_size: int | None = None,
    shape_profile: dict[str, list[int]] | None = None,
    weights: str | None = None,
    weights_sha256: str | None = None,
    **extra: str,
) -> dict[str, str]:
    """The ``metadata_props`` an exported PoseGraph carries (all values are strings, as ONNX wants)."""
    values: dict[str, Any] = {
        "num_joints": num_joints, "flip": flip, "project": project, "input_size": input_size,
        "shape_profile": shape_profile, "weights": weights, "weights_sha256": weights_sha256, **extra,
    }  # fmt: skip
    return {META_PREFIX + k: json.dumps(v) for k, v in values.items() if v is not None}


def read_engine_settings(path: str | os.PathLike) -> EngineSettings:
    """Read and validate what ``path`` (``.engine`` or ``.onnx``) records about its build.

    Raises:
        InputError: missing file, not an ONNX model, an ONNX graph of another model, an engine whose
            bytes are not the ones its sidecar describes, or a file type that is neither.
        EngineMismatchError: an engine without a (valid) sidecar, or a sidecar that does not fit its files.
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(f"engine file not found: {path}")
    kind = file_kind(path)
    if kind is FileKind.onnx:
        return _read_onnx(path)
    if kind is FileKind.engine:
        return _read_engine(path)
    if kind is FileKind.openvino:
        return _read_openvino(path)
    raise InputError(
        f"{path}: {option('engine')} takes a TensorRT .engine, an .onnx file or an OpenVINO .xml from "
        "`hhrt build-engine`"
    )


def _read_engine(path: Path) -> EngineSettings:
    if not sidecar_path_for(path).is_file():
        # Every engine `hhrt build-engine` writes has one: without it this is not a usable file (exit 2).
        raise InputError(
            f"{path} has no sidecar {sidecar_path_for(path).name} beside it, so it is not an engine from "
            "`hhrt build-engine` (or was separated from its sidecar); rebuild it, or keep NAME.json with it"
        )
    sidecar = Sidecar.read(sidecar_path_for(path))
    trt = sidecar.tensorrt or {}
    recorded = trt.get("engine_sha256")
    if isinstance(recorded, str) and sha256_file(path) != recorded:
        raise InputError(
            f"{path} is not the engine its sidecar {sidecar_path_for(path).name} describes (its sha256 "
            "differs): the file is damaged or was replaced. Rebuild it with `hhrt build-engine`."
        )
    onnx_path = path.with_name(sidecar.onnx["file"])
    if onnx_path.is_file():
        sidecar.check_onnx_file(onnx_path)
    return _from_sidecar(path, "engine", sidecar, onnx_path if onnx_path.is_file() else None)


def _read_openvino(path: Path) -> EngineSettings:
    """An IR is run only with the sidecar that `hhrt build-engine --target openvino` wrote beside it, and
    only when both of its files have the recorded hashes (OpenVINO's own errors do not say "rebuild")."""
    sidecar_file = sidecar_path_for(path)
    if not sidecar_file.is_file():
        raise InputError(
            f"{path} has no sidecar {sidecar_file.name} beside it, so it is not an OpenVINO model from `hhrt "
            "build-engine --target openvino` (or was separated from its sidecar); rebuild it, or keep NAME.json with it"
        )
    sidecar = Sidecar.read(sidecar_file)
    ir = sidecar.openvino
    if not ir or ir["xml"] != path.name:
        raise InputError(
            f"{sidecar_file.name} does not describe the OpenVINO model {path.name}; rebuild it with `hhrt "
            "build-engine --target openvino`"
        )
    for key in ("xml", "bin"):
        part = path.with_name(ir[key])
        if not part.is_file() or sha256_file(part) != ir[f"{key}_sha256"]:
            what = (
                "is missing"
                if not part.is_file()
                else "is not the file its sidecar describes (sha256 differs)"
            )
            raise InputError(
                f"{part} {what}: the OpenVINO model is damaged or was replaced. Rebuild it with `hhrt "
                "build-engine --target openvino`."
            )
    # The fp32 .onnx beside it is its source, not the model: ONNX Runtime never runs it in its place.
    return _from_sidecar(path, "openvino", sidecar, None)


def _from_sidecar(path: Path, kind: str, sidecar: Sidecar, onnx_path: Path | None) -> EngineSettings:
    return EngineSettings(
        path=path,
        kind=kind,
        num_joints=sidecar.num_joints,
        flip=sidecar.flip,
        input_size=sidecar.input_size,
        shape_profile=sidecar.shape_profile,
        project=True,  # build-engine exports the projecting single-scale graph
        weights=sidecar.weights,
        weights_sha256=sidecar.weights_sha256,
        origin=f"sidecar {sidecar_path_for(path).name}",
        onnx_path=onnx_path,
    )


def _load_onnx(path: Path) -> Any:
    import onnx

    size = path.stat().st_size
    if size > MAX_ONNX_BYTES:
        raise InputError(
            f"{path} is {size:,} bytes, more than an ONNX file can hold; it is not an ONNX model"
        )
    try:
        model = onnx.load(str(path), load_external_data=False)
    except Exception as exc:  # noqa: BLE001 - protobuf raises DecodeError, RuntimeWarning, ValueError...
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        why = f"{type(exc).__name__}: {first}"
    else:
        # protobuf parses many byte strings as *some* message: an empty model is garbage too.
        if model.ir_version > 0 and len(model.graph.node) > 0:
            return model
        why = "it parses as an empty model: no IR version or no graph nodes"
    raise InputError(
        f"{path} is not a readable ONNX model ({why}); pass an .onnx file written by `hhrt build-engine`"
    )


def _read_onnx(path: Path) -> EngineSettings:
    model = _load_onnx(path)
    graph = model.graph
    inputs = [i.name for i in graph.input if i.name not in {t.name for t in graph.initializer}]
    outputs = [o.name for o in graph.output]
    if inputs != [INPUT_NAME] or outputs != list(OUTPUT_NAMES):
        raise InputError(
            f"{path} is not a pose graph from hhrnet-rt: inputs {inputs}, outputs {outputs}; expected "
            f"{[INPUT_NAME]} and {list(OUTPUT_NAMES)} (a file from `hhrt build-engine`)"
        )
    meta = _metadata(path, model)
    graph_joints = _static_channels(graph.output[0])
    sidecar_file = sidecar_path_for(path)
    sidecar = None
    if sidecar_file.is_file():
        sidecar = Sidecar.read(sidecar_file)
        if sidecar.onnx["file"] == path.name:  # a renamed copy's NAME.json may describe another file
            sidecar.check_onnx_file(path)
        else:
            sidecar = None
    # None when nothing records it (a bare export): check_outputs then learns it from a test run.
    num_joints = meta.get("num_joints", sidecar.num_joints if sidecar else graph_joints)
    for claimed, where in (
        (graph_joints, "its heatmaps output"),
        (sidecar and sidecar.num_joints, "its sidecar"),
    ):
        if claimed is not None and num_joints is not None and claimed != num_joints:
            raise InputError(
                f"{path} is inconsistent: {num_joints} joints in its metadata, {claimed} in {where}; "
                "rebuild it with `hhrt build-engine`"
            )
    if sidecar is not None:
        for key in ("flip", "input_size"):
            if key in meta and meta[key] != getattr(sidecar, key):
                raise EngineMismatchError(
                    f"{path} and its sidecar disagree on {key} ({meta[key]} vs {getattr(sidecar, key)}); "
                    "rebuild with `hhrt build-engine`"
                )
        base = _from_sidecar(path, "onnx", sidecar, path)
        return replace(base, weights_sha256=meta.get("weights_sha256", base.weights_sha256))
    origin = (
        "its ONNX metadata" if meta else "its ONNX graph (no sidecar, no metadata: flip and size unknown)"
    )
    return EngineSettings(
        path=path,
        kind="onnx",
        num_joints=num_joints,
        flip=meta.get("flip"),
        input_size=meta.get("input_size"),
        shape_profile=meta.get("shape_profile"),
        project=meta.get("project", True),
        weights=meta.get("weights"),
        weights_sha256=meta.get("weights_sha256"),
        origin=origin,
        onnx_path=path,
    )


# key -> check of the decoded JSON value; anything else in the metadata is a malformed file.
_META_TYPES = {
    "num_joints": lambda v: isinstance(v, int) and not isinstance(v, bool) and 0 < v <= 1000,
    "flip": lambda v: isinstance(v, bool),
    "project": lambda v: isinstance(v, bool),
    "input_size": is_valid_input_size,
    "shape_profile": lambda v: (
        isinstance(v, dict)
        and all(
            isinstance(v.get(k), list) and len(v[k]) == 4 and all(isinstance(x, int) for x in v[k])
            for k in ("min", "opt", "max")
        )
    ),  # fmt: skip
    "weights": lambda v: isinstance(v, str),
    "weights_sha256": lambda v: isinstance(v, str),
    "cache_key": lambda v: isinstance(v, str),
}


def _metadata(path: Path, model: Any) -> dict[str, Any]:
    """The hhrnet_rt.* metadata_props, JSON-decoded and type-checked."""
    out: dict[str, Any] = {}
    for prop in model.metadata_props:
        if not prop.key.startswith(META_PREFIX):
            continue
        key = prop.key[len(META_PREFIX) :]
        try:
            value = json.loads(prop.value)
        except (json.JSONDecodeError, RecursionError):
            value = prop.value
        check = _META_TYPES.get(key)
        if check is not None and not check(value):
            raise InputError(
                f"{path}: ONNX metadata {prop.key} = {prop.value[:40]!r} is malformed; rebuild it"
            )
        out[key] = value
    return out


def _static_channels(value_info: Any) -> int | None:
    dims = value_info.type.tensor_type.shape.dim
    if len(dims) < 2 or not dims[1].HasField("dim_value"):
        return None
    return int(dims[1].dim_value)


# -- options against the file --------------------------------------------------------------------------


def resolve_options(
    settings: EngineSettings, *, flip: bool | None, input_size: int | None
) -> tuple[bool, int]:
    """``(flip, input_size)`` to run ``settings`` with: the file's values where the caller gave none.

    Raises:
        InputError: an explicit flip that differs from the file's, or (TensorRT engines) an input size
            outside the engine's shape profile.
    """
    if flip is not None and settings.flip is not None and bool(flip) != settings.flip:
        have = "with" if settings.flip else "without"
        raise InputError(
            f"{settings.path} was built {have} the flip test (flip is baked into the graph), but "
            f"{option('flip', flip)} was asked for; leave it out to run the file as built, "
            f"or build another file with `hhrt build-engine {'--flip' if flip else '--no-flip'}`"
        )
    run_flip = settings.flip if settings.flip is not None else (True if flip is None else bool(flip))
    size = input_size if input_size is not None else (settings.input_size or 512)
    if settings.kind == "engine" and settings.shape_profile is not None:
        lo = max(settings.shape_profile["min"][2:])
        hi = min(settings.shape_profile["max"][2:])
        if not lo <= size <= hi:
            raise InputError(
                f"input size {size} is outside the shape profile of {settings.path} (short side {lo}..{hi}: "
                f"min {settings.shape_profile['min']}, max {settings.shape_profile['max']}); leave "
                f"{option('input_size')} out to use {settings.input_size}, or rebuild with `hhrt build-engine "
                f"--input-size {size}`"
            )
    return run_flip, size
