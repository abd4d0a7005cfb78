"""The engine sidecar (``NAME.json``): what an engine or ONNX file was built from and for, and the check
that an engine still fits the machine that wants to run it.

A serialized TensorRT engine only runs on the TensorRT version that built it and on a GPU of the same
compute capability; loading it anywhere else fails deep inside TensorRT with a message that does not
say "rebuild". The sidecar records both so :func:`check_engine_compatible` can say so first. The check is
a pure function of the sidecar and the running machine's facts, so it is tested without a GPU.

Schema (version 1), every key always present; ``tensorrt`` is ``None`` for an ONNX-only build::

    {"schema": 1, "name": str, "package_version": str, "created_utc": str,
     "precision": "fp32"|"fp16"|"int8", "input_size": int, "flip": bool, "weights": str,
     "num_joints": int, "input_name": str, "output_names": [str, ...],
     "shape_profile": {"min": [N,3,H,W], "opt": [...], "max": [...]},
     "onnx": {"file": str, "sha256": str}, "calibration": dict|None, "agreement": dict|None,
     "tensorrt": None | {"version": str, "gpu_name": str, "compute_capability": [major, minor],
                          "engine_file": str, "workspace_gib": float, "io": [...], "tf32": false,
                          "engine_sha256": str (optional; checked before TensorRT sees the file)},
     "weights_sha256": str (optional: state-dict digest of the weights, to show --weights match),
     "openvino": (optional) None | {"version": str, "xml": str, "xml_sha256": str, "bin": str,
                  "bin_sha256": str, ...} for an OpenVINO IR build (`--target openvino`): its files, checked
                  before OpenVINO reads them; ``onnx`` is then the fp32 ONNX the IR was made from}
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from hhrnet_rt._version import __version__
from hhrnet_rt.core.errors import EngineMismatchError, InputError
from hhrnet_rt.core.names import PRECISIONS
from hhrnet_rt.core.sizes import is_valid_input_size

SCHEMA_VERSION = 1
# The interface of every exported PoseGraph (.onnx, engine): one input, two outputs, in this order.
# Everything that writes, reads or checks such a file takes the names from here.
INPUT_NAME = "image"
OUTPUT_NAMES = ("heatmaps", "tags")
_REQUIRED = (
    "schema", "name", "package_version", "created_utc", "precision", "input_size", "flip", "weights",
    "num_joints", "input_name", "output_names", "shape_profile", "onnx", "calibration", "agreement",
    "tensorrt",
)  # fmt: skip
_OPTIONAL = ("weights_sha256", "openvino")


def sha256_file(path: str | Path, chunk: int = 1 << 20) -> str:
    """Hex sha256 of a file, read in chunks (engines and videos can be large)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def utc_now() -> str:
    return _dt.datetime.now(_dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass
class Sidecar:
    """In-memory form of ``NAME.json``; see the module docstring for the schema."""

    name: str
    precision: str
    input_size: int
    flip: bool
    weights: str
    num_joints: int
    shape_profile: dict[str, list[int]]
    onnx: dict[str, str]
    input_name: str = INPUT_NAME
    output_names: list[str] = field(default_factory=lambda: list(OUTPUT_NAMES))
    calibration: dict[str, Any] | None = None
    agreement: dict[str, Any] | None = None
    tensorrt: dict[str, Any] | None = None
    #: state-dict digest of the weights (:func:`hhrnet_rt.model.digest.state_dict_digest`); optional, so
    #: sidecars written before it was added still read.
    weights_sha256: str | None = None
    #: the OpenVINO IR of a ``--target openvino`` build (see the module docstring); optional.
    openvino: dict[str, Any] | None = None
    package_version: str = ""
    created_utc: str = field(default_factory=utc_now)
    schema: int = SCHEMA_VERSION

    def __post_init__(self) -> None:
        if not self.package_version:
            self.package_version = __version__
        if self.precision not in PRECISIONS:
            raise InputError(f"sidecar precision must be one of {PRECISIONS}, got {self.precision!r}")
        for key in ("min", "opt", "max"):
            if key not in self.shape_profile or len(self.shape_profile[key]) != 4:
                raise InputError(
                    f"sidecar shape_profile needs min/opt/max as [N,3,H,W], got {self.shape_profile}"
                )

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def write(self, path: str | Path) -> Path:
        """Write as pretty JSON (people read these when an engine refuses to load)."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(self.to_dict(), indent=2, sort_keys=False) + "\n")
        return path

    @classmethod
    def from_dict(cls, data: Any) -> Sidecar:
        """Validate an untrusted parsed sidecar: any malformed one is an EngineMismatchError, never a
        TypeError/KeyError from deeper down."""
        if not isinstance(data, Mapping):
            raise EngineMismatchError(
                f"engine sidecar holds a JSON {type(data).__name__}, not an object; rebuild the engine with "
                "`hhrt build-engine`."
            )
        missing = [k for k in _REQUIRED if k not in data]
        if missing:
            raise EngineMismatchError(
                f"engine sidecar is missing {missing}; it was not written by this version of hhrnet-rt. "
                "Rebuild the engine with `hhrt build-engine`."
            )
        if data["schema"] != SCHEMA_VERSION:
            raise EngineMismatchError(
                f"engine sidecar has schema {data['schema']!r}, this version reads {SCHEMA_VERSION}. "
                "Rebuild the engine with `hhrt build-engine`."
            )
        problems = schema_problems(data)
        if problems:
            raise EngineMismatchError(
                "engine sidecar is malformed: " + "; ".join(problems) + ". Rebuild the engine with "
                "`hhrt build-engine`."
            )
        optional = {k: data[k] for k in _OPTIONAL if k in data}
        return cls(**{k: data[k] for k in _REQUIRED}, **optional)

    @classmethod
    def read(cls, path: str | Path) -> Sidecar:
        path = Path(path)
        try:
            if path.stat().st_size > MAX_SIDECAR_BYTES:
                raise EngineMismatchError(
                    f"engine sidecar {path} is {path.stat().st_size:,} bytes, far more than a sidecar "
                    "holds; it is not one. Rebuild the engine."
                )
            data = json.loads(path.read_bytes().decode("utf-8"))
        except FileNotFoundError:
            raise EngineMismatchError(
                f"no sidecar {path} next to the engine: without it the engine's GPU and TensorRT version "
                "are unknown. Rebuild with `hhrt build-engine` (it writes NAME.engine and NAME.json)."
            ) from None
        except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
            reason = (
                "it is not UTF-8 text" if isinstance(exc, UnicodeDecodeError) else f"not valid JSON: {exc}"
            )
            raise EngineMismatchError(
                f"engine sidecar {path} is unreadable ({reason}); rebuild the engine."
            ) from None
        except OSError as exc:
            raise InputError(f"cannot read the engine sidecar {path}: {exc.strerror or exc}") from None
        return cls.from_dict(data)

    def check_onnx_file(self, onnx_path: str | Path) -> None:
        """Raise EngineMismatchError unless ``onnx_path``'s sha256 is the one this sidecar records."""
        got = sha256_file(onnx_path)
        if got != self.onnx["sha256"]:
            raise EngineMismatchError(
                f"{onnx_path} is not the ONNX file its sidecar describes (sha256 {got[:12]}..., the sidecar "
                f"records {self.onnx['sha256'][:12]}...): the files were mixed up or changed after the "
                "build. Rebuild with `hhrt build-engine`."
            )


#: A real sidecar is a few KB (the agreement report included); anything far larger is not one.
MAX_SIDECAR_BYTES = 1 << 20


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_file_name(v: Any) -> bool:
    # A bare name: the files are looked up beside the sidecar, never elsewhere on the disk.
    return isinstance(v, str) and v not in ("", ".", "..") and "/" not in v and "\\" not in v


def _is_shape(v: Any) -> bool:
    return isinstance(v, list) and len(v) == 4 and all(_is_int(x) and x > 0 for x in v)


def dynamic_axes(project: bool) -> dict[str, dict[int, str]]:
    """Dynamic N, h, w of the input and outputs (h/2, w/2 outputs when the graph does not project).

    Outputs (:class:`~hhrnet_rt.model.graph.PoseGraph`): heatmaps (N, K, h, w), or (N, K, F, h/2, w/2)
    unprojected; tags (N, K, L, h, w) planes (:mod:`hhrnet_rt.core.tag_layout`).
    """
    out_h, out_w = ("height", "width") if project else ("half_height", "half_width")
    hm_axes = {0: "batch", 2: out_h, 3: out_w} if project else {0: "batch", 3: out_h, 4: out_w}
    return {
        INPUT_NAME: {0: "batch", 2: "height", 3: "width"},
        OUTPUT_NAMES[0]: hm_axes,
        OUTPUT_NAMES[1]: {0: "batch", 3: out_h, 4: out_w},
    }


def schema_problems(data: Mapping[str, Any]) -> list[str]:
    """What is wrong with the types and values of a sidecar dict that has every key (empty: nothing)."""
    checks: list[tuple[str, bool, str]] = [
        ("name", isinstance(data["name"], str), "a string"),
        ("package_version", isinstance(data["package_version"], str), "a string"),
        ("created_utc", isinstance(data["created_utc"], str), "a string"),
        ("precision", data["precision"] in PRECISIONS, f"one of {PRECISIONS}"),
        ("input_size", is_valid_input_size(data["input_size"]), "a positive multiple of 64"),
        ("flip", isinstance(data["flip"], bool), "true or false"),
        ("weights", isinstance(data["weights"], str), "a string"),
        ("num_joints", _is_int(data["num_joints"]) and 0 < data["num_joints"] <= 1000, "a joint count"),
        ("input_name", isinstance(data["input_name"], str), "a string"),
        ("output_names", isinstance(data["output_names"], list)
         and all(isinstance(x, str) for x in data["output_names"]), "a list of strings"),
        ("shape_profile", isinstance(data["shape_profile"], Mapping)
         and all(_is_shape(data["shape_profile"].get(k)) for k in ("min", "opt", "max")),
         "min/opt/max shapes [N,3,H,W]"),
        ("onnx", isinstance(data["onnx"], Mapping) and _is_file_name(data["onnx"].get("file"))
         and isinstance(data["onnx"].get("sha256"), str) and len(data["onnx"]["sha256"]) == 64,
         "{file: a name in the same folder, sha256}"),
        ("calibration", data["calibration"] is None or isinstance(data["calibration"], Mapping), "an object or null"),
        ("agreement", data["agreement"] is None or isinstance(data["agreement"], Mapping), "an object or null"),
    ]  # fmt: skip
    digest = data.get("weights_sha256")
    checks.append(("weights_sha256", digest is None or isinstance(digest, str), "a string or null"))
    ov = data.get("openvino")
    ov_ok = ov is None or (
        isinstance(ov, Mapping)
        and isinstance(ov.get("version"), str)
        and all(_is_file_name(ov.get(k)) for k in ("xml", "bin"))
        and all(isinstance(ov.get(k), str) and len(ov[k]) == 64 for k in ("xml_sha256", "bin_sha256"))
    )
    checks.append(("openvino", ov_ok, "null or {version, xml, xml_sha256, bin, bin_sha256, ...}"))
    trt = data["tensorrt"]
    trt_ok = trt is None or (
        isinstance(trt, Mapping)
        and isinstance(trt.get("version"), str)
        and isinstance(trt.get("gpu_name"), str)
        and isinstance(trt.get("compute_capability"), list)
        and len(trt["compute_capability"]) == 2
        and all(_is_int(x) for x in trt["compute_capability"])
    )
    checks.append(("tensorrt", trt_ok, "null or {version, gpu_name, compute_capability [major, minor], ...}"))
    return [f"{key} must be {want}, got {_short(data.get(key))}" for key, ok, want in checks if not ok]


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def sidecar_path_for(path: str | Path) -> Path:
    """``engines/x.engine`` or ``engines/x.onnx`` -> ``engines/x.json``."""
    return Path(path).with_suffix(".json")


def _version_key(version: str) -> tuple[str, ...]:
    # Engines are tied to the exact TensorRT release (major.minor.patch); the build number may differ.
    return tuple(version.split(".")[:3])


def engine_problems(
    sidecar: Sidecar,
    *,
    gpu_name: str,
    compute_capability: Sequence[int],
    trt_version: str,
) -> list[str]:
    """Reasons the sidecar's engine cannot run here (empty list when it can). Pure; no GPU needed."""
    trt = sidecar.tensorrt
    if not trt:
        return ["the sidecar records no TensorRT build (it belongs to an ONNX-only build)"]
    problems = []
    if _version_key(str(trt["version"])) != _version_key(trt_version):
        problems.append(f"built with TensorRT {trt['version']}, this machine has TensorRT {trt_version}")
    if tuple(trt["compute_capability"]) != tuple(compute_capability):
        cc_b = ".".join(map(str, trt["compute_capability"]))
        cc_h = ".".join(map(str, compute_capability))
        problems.append(f"built for compute capability {cc_b}, this GPU is {cc_h}")
    if str(trt["gpu_name"]) != gpu_name:
        problems.append(f"built on {trt['gpu_name']!r}, this GPU is {gpu_name!r}")
    return problems


def check_engine_compatible(
    sidecar: Sidecar,
    *,
    gpu_name: str,
    compute_capability: Sequence[int],
    trt_version: str,
) -> None:
    """Raise :class:`EngineMismatchError` naming every mismatch and the rebuild command."""
    problems = engine_problems(
        sidecar, gpu_name=gpu_name, compute_capability=compute_capability, trt_version=trt_version
    )
    if problems:
        raise EngineMismatchError(
            f"engine {sidecar.name!r} does not fit this machine: " + "; ".join(problems) + ". "
            f"Rebuild it here with `hhrt build-engine --precision {sidecar.precision} "
            f"--input-size {sidecar.input_size} --weights {sidecar.weights}`."
        )
