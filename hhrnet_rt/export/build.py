"""The steps behind ``hhrt build-engine``: export -> bake precision -> agreement report -> TensorRT.

Everything up to the TensorRT build runs on any machine (ONNX Runtime on the CPU), so the ONNX files and
the sidecar with the agreement report exist even where TensorRT does not; then
:class:`TensorRTUnavailableError` says how to finish the job.

Example:
    >>> result = build_onnx_files("random", "fp16", input_size=256, out_dir="engines")  # doctest: +SKIP
    >>> build_tensorrt_engine(result)  # doctest: +SKIP
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from hhrnet_rt.artifacts.engine_settings import onnx_metadata
from hhrnet_rt.artifacts.shape_profile import ShapeProfile, profile_from_dict, resolve_profile
from hhrnet_rt.artifacts.sidecar import INPUT_NAME, OUTPUT_NAMES, Sidecar, dynamic_axes, sha256_file
from hhrnet_rt.core.errors import CalibrationError, InputError, option
from hhrnet_rt.core.names import check_precision
from hhrnet_rt.core.outputs import check_name_length, check_output_dir, refuse_existing
from hhrnet_rt.core.paths import writable_cache_dir
from hhrnet_rt.core.sizes import check_input_size
from hhrnet_rt.export.openvino_build import openvino_agreement, require_openvino, write_openvino_ir
from hhrnet_rt.export.quantize import (
    DEFAULT_DECONV_WEIGHT_AXIS,
    calibration_cache_key,
    check_deconv_weight_axis,
    quantize_int8,
)
from hhrnet_rt.export.quantize_cpu import quantize_int8_cpu
from hhrnet_rt.export.tensorrt_build import build_engine
from hhrnet_rt.runtime.backends.tensorrt_backend import import_tensorrt

log = logging.getLogger(__name__)

# The PoseGraph built here projects its outputs to the input size (PoseGraph's default).
DYNAMIC_AXES = dynamic_axes(project=True)
DEFAULT_CALIB_DIR = Path("calibration")
# Who runs the file: TensorRT (GPU), ONNX Runtime's CPU kernels, or OpenVINO on the CPU (an IR).
TARGETS = ("tensorrt", "cpu", "openvino")


@dataclass
class BuildResult:
    """Paths written and the sidecar describing them (``engine_path``: the TensorRT engine, or the
    OpenVINO ``.xml`` of ``target="openvino"``)."""

    onnx_path: Path
    fp32_onnx_path: Path
    sidecar_path: Path
    engine_path: Path | None
    sidecar: Sidecar


def load_network(weights: str | Path) -> Any:
    """A HigherHRNet in eval mode (:func:`hhrnet_rt.model.weights.load_network`; "random" is seeded, so rebuilds
    agree with an estimator made from "random")."""
    from hhrnet_rt.model.weights import load_network as load

    return load(weights)[0]


def export_graph(network: Any, path: Path, *, flip: bool, input_size: int, fp16: bool = False) -> Path:
    """Export ``PoseGraph(network, flip=flip)`` with dynamic batch, H and W."""
    import torch

    from hhrnet_rt.model.graph import PoseGraph
    from hhrnet_rt.model.onnx_export import export_onnx

    graph = PoseGraph(network, flip=flip).eval()
    example = torch.zeros(1, 3, input_size, input_size)
    return export_onnx(
        graph,
        path,
        example_input=example,
        input_names=[INPUT_NAME],
        output_names=list(OUTPUT_NAMES),
        dynamic_axes=DYNAMIC_AXES,
        fp16=fp16,
    )


def preprocess_bgr(image_bgr: np.ndarray, input_size: int) -> np.ndarray:
    """Exactly the inference preprocessing: official resize_align + normalisation, (1, 3, h, w) float32."""
    from hhrnet_rt.runtime.preprocess import normalize, resize_align

    resized, _affine = resize_align(image_bgr, input_size)
    return normalize(resized, bgr=True)


def synthetic_images(n: int = 2, shape: tuple[int, int] = (360, 480), seed: int = 0) -> list[np.ndarray]:
    """Smooth random BGR images, for agreement figures when no real images are available."""
    import cv2

    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        small = rng.integers(0, 256, (shape[0] // 8, shape[1] // 8, 3), dtype=np.uint8)
        out.append(cv2.resize(small, (shape[1], shape[0]), interpolation=cv2.INTER_CUBIC))
    return out


def default_name(
    weights: str | Path,
    precision: str,
    input_size: int,
    flip: bool,
    target: str = "tensorrt",
    max_batch: int | None = None,
) -> str:
    """``STEM-SIZE-PRECISION[-cpu|-openvino][-bN][-noflip]``: every option that makes another file is in
    the name, so two documented builds never collide."""
    stem = Path(str(weights)).stem if str(weights) != "random" else "random_w32"
    cpu = "-cpu" if target == "cpu" and precision == "int8" else ""  # the two int8 files differ
    cpu = "-openvino" if target == "openvino" else cpu  # its NAME.json describes the IR
    batch = f"-b{max_batch}" if max_batch is not None and max_batch > 1 else ""
    return f"{stem}-{input_size}-{precision}{cpu}{batch}" + ("" if flip else "-noflip")


#: Every file a build may write, by suffix of its name.
BUILD_SUFFIXES = (".onnx", ".fp32.onnx", ".json", ".engine", ".xml", ".bin")


def build_onnx_files(
    weights: str | Path,
    precision: str,
    *,
    input_size: int = 512,
    profile: ShapeProfile | None = None,
    max_batch: int | None = None,
    flip: bool = True,
    calib: str | Path | None = None,
    calib_count: int = 200,
    calib_method: str = "percentile",
    deconv_weight_axis: int = DEFAULT_DECONV_WEIGHT_AXIS,
    out_dir: str | Path = "engines",
    name: str | None = None,
    calib_cache_dir: str | Path | None = None,
    target: str = "tensorrt",
    on_step: Callable[[str], None] = lambda msg: None,
    overwrite: bool = False,
    on_count: Callable[[int, int], None] = lambda done, total: None,
    warn: Callable[[str], None] = lambda msg: None,
) -> BuildResult:
    """Export, bake precision, measure agreement and write ``NAME.onnx`` + ``NAME.json`` (no TensorRT).

    ``profile`` (TensorRT's shape range) defaults to :func:`default_profile` at ``input_size`` for batches
    of up to ``max_batch`` frames (default 1); give one or the other.
    ``calib`` defaults to ``calibration/`` in the working directory; the range caches go to
    ``calib_cache_dir`` (default: ``calibration`` in hhrt's cache folder, so a build leaves no folder
    behind where it runs). A build that fails or is interrupted removes the files it created.
    ``target="tensorrt"``: follow with :func:`build_tensorrt_engine`. ``target="cpu"``: the ONNX file is
    the product (run it with ``--backend onnxruntime --engine NAME.onnx``); int8 is then quantized in the
    layout of ONNX Runtime's CPU kernels (:mod:`hhrnet_rt.export.quantize_cpu`), and fp16 is refused.
    ``on_step(text)`` says each step as it starts; ``on_count(done, total)`` counts the calibration
    images read (calibration takes minutes); ``warn(text)`` is told when fewer images than ``calib_count``
    exist.
    ``deconv_weight_axis`` (int8, TensorRT target): the ConvTranspose weight axis with one scale per
    slice (:data:`hhrnet_rt.export.quantize.DEFAULT_DECONV_WEIGHT_AXIS`); the agreement report then has
    a ``deconvolutions`` row per ConvTranspose (:mod:`hhrnet_rt.export.deconv_report`).
    ``target="openvino"``: the product is an OpenVINO IR, ``NAME.xml`` + ``NAME.bin`` (fp32, or int8 by
    NNCF: :mod:`hhrnet_rt.export.openvino_build`), made from the fp32 ONNX export (``NAME.onnx`` for
    fp32, ``NAME.fp32.onnx`` for int8); run it with ``--backend openvino --engine NAME.xml``.

    Raises:
        InputError: bad precision or input size, or an output file exists and ``overwrite`` is false.
        CalibrationError: INT8 without readable calibration images.
    """
    if precision is None:
        raise InputError(f"{option('precision')} must be fp32, fp16 or int8, got None")
    check_precision(precision)
    deconv_weight_axis = check_deconv_weight_axis(deconv_weight_axis)
    if target not in TARGETS:
        raise InputError(f"{option('target')} must be one of {TARGETS}, got {target!r}")
    if target in ("cpu", "openvino") and precision == "fp16":
        raise InputError(
            f"{option('target', target)} builds fp32 or int8: fp16 is no faster on the CPU than fp32"
        )
    if target == "openvino":
        require_openvino(int8=precision == "int8")
    input_size = check_input_size(input_size)
    profile = resolve_profile(input_size, profile, max_batch)
    out_dir = check_output_dir(out_dir)  # a file, or a folder that cannot be written: said now
    name = name or default_name(weights, precision, input_size, flip, target, max_batch)
    # Every file this build may write is checked before any work: an earlier build's files (or anything
    # else under those names) are replaced only with overwrite=True.
    outputs = [out_dir / f"{name}{suffix}" for suffix in BUILD_SUFFIXES]
    for path in outputs:
        check_name_length(path, "build output")
        refuse_existing(path, "build output", overwrite)
    ours = [path for path in outputs if not path.exists()]  # what a failed build may remove
    try:
        return _build(weights, precision, input_size, profile, flip, calib, calib_count, calib_method,
                      deconv_weight_axis, out_dir, name, calib_cache_dir, target, on_step, on_count,
                      warn)  # fmt: skip
    except BaseException:
        for path in ours:  # half a build would block the rerun ("already exists") and run nowhere
            path.unlink(missing_ok=True)
        raise


def _build(weights, precision, input_size, profile, flip, calib, calib_count, calib_method, deconv_weight_axis,
           out_dir, name, calib_cache_dir, target, on_step, on_count, warn) -> BuildResult:  # fmt: skip
    """:func:`build_onnx_files` once its arguments and output names are checked."""
    from hhrnet_rt.export.agreement import onnx_agreement
    from hhrnet_rt.export.calibration import CalibrationSource, open_calibration_source

    # Calibration images first: a missing folder should fail before minutes of export work.
    source: CalibrationSource | None = None
    calib_dir = Path(calib) if calib is not None else DEFAULT_CALIB_DIR
    if precision == "int8":
        source = open_calibration_source(calib_dir, calib_count)
        if len(source.calib) < calib_count:
            held = (
                f" ({len(source.holdout)} more held out for the agreement report)" if source.holdout else ""
            )
            warn(f"only {len(source.calib)} calibration images{held} in {source.path}, "
                 f"{option('calib_count', calib_count)} asked for; int8 ranges from a few images fit "
                 "other pictures worse: add some like the ones you will run on")  # fmt: skip
    elif calib is not None:
        source = open_calibration_source(calib_dir, 1)  # fp16/fp32: only its held-out images are used
    else:
        try:  # the default folder is optional for fp16: synthetic images stand in when it is empty
            source = open_calibration_source(calib_dir, 1)
        except CalibrationError:
            source = None

    on_step("loading weights")
    from hhrnet_rt.model.digest import state_dict_digest

    network = load_network(weights)
    fp32_path = out_dir / (f"{name}.onnx" if precision == "fp32" else f"{name}.fp32.onnx")
    on_step(f"exporting fp32 ONNX -> {fp32_path}")
    export_graph(network, fp32_path, flip=flip, input_size=input_size)
    onnx_path = fp32_path if target == "openvino" else out_dir / f"{name}.onnx"
    calibration: dict[str, Any] | None = None
    calibration_inputs: Callable[[], Iterator[np.ndarray]] | None = None

    if precision == "fp16":
        on_step(f"exporting fp16 ONNX -> {onnx_path}")
        export_graph(network, onnx_path, flip=flip, input_size=input_size, fp16=True)
    if precision == "int8":
        assert source is not None
        # target only for cpu: the TensorRT key is unchanged, so existing range caches stay valid
        key = calibration_cache_key(
            model=state_dict_digest(network), input_size=input_size, flip=flip, method=calib_method,
            images=source.fingerprint(), **({"target": "cpu"} if target == "cpu" else {}),
        )  # fmt: skip
        ranges_dir = writable_cache_dir("calibration") if calib_cache_dir is None else Path(calib_cache_dir)
        cache_path = ranges_dir / f"{key}.calib.json"

        def calibration_inputs() -> Iterator[np.ndarray]:
            method = "NNCF's ranges" if target == "openvino" else calib_method
            on_step(f"calibrating on {len(source.calib)} images from {source.path} ({method})")
            total = len(source.calib)
            on_count(0, total)
            for done, img in enumerate(source.iter_images(source.calib), 1):
                yield preprocess_bgr(img, input_size)
                on_count(done, total)  # after the quantiser used it: the time left includes its work

        if target == "openvino":
            pass  # NNCF quantises the IR below, from the fp32 file once it carries its metadata
        elif target == "cpu":
            on_step(f"quantising to INT8 for ONNX Runtime's CPU kernels (u8 activations) -> {onnx_path}")
            calibration = quantize_int8_cpu(
                fp32_path, onnx_path, calibration_inputs=calibration_inputs, method=calib_method,
                cache_path=cache_path,
            )  # fmt: skip
        else:
            on_step(f"quantising to INT8 (Q/DQ) -> {onnx_path}")
            calibration = quantize_int8(
                fp32_path,
                onnx_path,
                calibration_inputs=calibration_inputs,
                method=calib_method,
                cache_path=cache_path,
                deconv_weight_axis=deconv_weight_axis,
            )
        if calibration is not None:
            calibration.update(source=str(source.path), kind=source.kind, count=len(source.calib))

    # The file describes itself (a lone .onnx still knows how to run): stamped into the final file only
    # now, after quantisation, which builds a new model from the fp32 one.
    from hhrnet_rt.model.onnx_export import write_metadata

    weights_digest = state_dict_digest(network)
    metadata = onnx_metadata(
        num_joints=int(network.spec.num_joints), flip=flip, project=True, input_size=input_size,
        shape_profile=profile.as_dict(), weights=str(weights), weights_sha256=weights_digest,
    )  # fmt: skip
    for path in {fp32_path, onnx_path}:
        write_metadata(path, metadata)
    openvino, xml_path = None, out_dir / f"{name}.xml"
    if target == "openvino":
        on_step(f"writing the OpenVINO {precision} model -> {xml_path} (+ .bin)")
        count = len(source.calib) if source is not None and calibration_inputs is not None else 0
        openvino, calibration = write_openvino_ir(
            fp32_path, xml_path, calibration_inputs=calibration_inputs, count=count
        )
        if calibration is not None and source is not None:
            calibration.update(source=str(source.path), kind=source.kind, count=len(source.calib))

    agreement = None
    if precision != "fp32":
        if source is not None and source.holdout:
            images, origin = list(source.iter_images(source.holdout)), f"held-out images from {source.path}"
        else:
            images, origin = synthetic_images(), "synthetic images (no held-out calibration images available)"
        on_step(f"agreement {precision} vs fp32 on {len(images)} {origin}")
        inputs = [preprocess_bgr(img, input_size) for img in images]
        if target == "openvino":
            agreement = openvino_agreement(fp32_path, xml_path, inputs)
        else:
            agreement = onnx_agreement(fp32_path, onnx_path, inputs)
        if precision == "int8" and target == "tensorrt":
            from hhrnet_rt.export.deconv_report import deconv_errors

            on_step("deconvolution outputs, int8 vs fp32")
            agreement["deconvolutions"] = deconv_errors(fp32_path, onnx_path, inputs)
        agreement["images_from"] = origin
        agreement["weights_note"] = (
            "random weights: agreement is not representative of trained weights"
            if str(weights) == "random"
            else ""
        )

    sidecar = Sidecar(
        name=name,
        precision=precision,
        input_size=input_size,
        flip=flip,
        weights=str(weights),
        num_joints=int(network.spec.num_joints),
        shape_profile=profile.as_dict(),
        onnx={"file": onnx_path.name, "sha256": sha256_file(onnx_path)},
        calibration=calibration,
        agreement=agreement,
        weights_sha256=weights_digest,
        openvino=openvino,
    )
    sidecar_path = sidecar.write(out_dir / f"{name}.json")
    return BuildResult(onnx_path, fp32_path, sidecar_path, xml_path if openvino else None, sidecar)


def build_tensorrt_engine(
    result: BuildResult,
    *,
    workspace_gib: float = 4.0,
    progress: Any = None,
    on_step: Callable[[str], None] = lambda msg: None,
) -> BuildResult:
    """Build ``NAME.engine`` from ``result.onnx_path`` and add the TensorRT facts to the sidecar.

    Raises:
        TensorRTUnavailableError: ``tensorrt`` is not importable (the ONNX files and sidecar are kept).
    """

    import_tensorrt(result.onnx_path)
    out_dir = result.onnx_path.parent
    engine_path = out_dir / f"{result.sidecar.name}.engine"
    on_step(f"building TensorRT engine -> {engine_path}")
    result.sidecar.tensorrt = build_engine(
        result.onnx_path,
        engine_path,
        profile_from_dict(result.sidecar.shape_profile),
        workspace_gib=workspace_gib,
        timing_cache=out_dir / "timing.cache",  # + GPU and TensorRT tags
        progress=progress,
        deconv_names=[d["name"] for d in (result.sidecar.agreement or {}).get("deconvolutions", [])],
    )
    # Checked before TensorRT is handed the bytes: a damaged or swapped engine gets a clear message.
    result.sidecar.tensorrt["engine_sha256"] = sha256_file(engine_path)
    result.sidecar.write(result.sidecar_path)
    result.engine_path = engine_path
    return result
