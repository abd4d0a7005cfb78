"""INT8 as Q/DQ nodes in the ONNX file, inserted by ONNX Runtime's static quantiser.

Choices, and why:

* ``QuantFormat.QDQ`` with ``QInt8`` activations and weights, ``ActivationSymmetric`` and
  ``WeightSymmetric``: TensorRT's explicit quantization only accepts zero points of 0.
* Per-channel weights: HRNet's channels differ in range by orders of magnitude. Conv weights get one
  scale per output channel (axis 0). ConvTranspose weights ``(C_in, C_out, kH, kW)`` get one scale per
  *input* channel by default (axis 0 too), a build option (``--deconv-weight-axis``,
  :data:`DEFAULT_DECONV_WEIGHT_AXIS`; the reasons are beside it). :func:`deconv_weight_overrides` sets it.
* ``QuantizeBias=False``: biases stay float. ORT would otherwise store them as int32 behind a
  DequantizeLinear, which TensorRT does not import; TensorRT quantizes the bias itself when it fuses.
* Only ``Conv`` and ``ConvTranspose`` are quantized. They are ~all of the FLOPs, and TensorRT fuses
  DQ -> Conv -> (BN, ReLU, residual Add) -> Q into one int8 kernel. Resize (the multi-resolution fusion
  and the 1/4 -> 1/2 upsample), Gather (flip-back with FLIP_INDEX), the flip/averaging tail and the tag
  outputs stay float: they are cheap, and the tags' small differences decide the grouping, so they are
  precision-sensitive.
* The model is first run through ``quant_pre_process`` (shape inference + ORT's graph optimisation, which
  folds BatchNorm into Conv and removes the Identity nodes through which the exporter shares weights
  between the plain and the mirrored pass), so weights are quantized after folding -- otherwise BN
  would rescale already-rounded weights, and convs fed through Identity would keep float weights.

The activation ranges are computed by :func:`calibrate_ranges` and cached as JSON (ORT's own
``save_tensors_data`` format, read back by ``quantize_static(calibration_cache_path=...)``) under a key
of everything that changes them, so a rebuild does not recalibrate; the calibration images are not even
read on a cache hit.
"""

from __future__ import annotations

import contextlib
import hashlib
import inspect
import io
import json
import logging
import tempfile
from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from hhrnet_rt.artifacts.sidecar import INPUT_NAME
from hhrnet_rt.core.errors import CalibrationError, InputError, option

log = logging.getLogger(__name__)

QUANT_OP_TYPES = ("Conv", "ConvTranspose")
CALIB_METHODS = ("entropy", "percentile", "minmax")
# Images per ORT collect_data call: ORT holds every intermediate tensor of every image of a call, so the
# peak is about this many images' activations whatever --calib-count (benchmarks/bench_calib_memory.py).
CALIB_CHUNK = 1

# The axis of a ConvTranspose weight ``(C_in, C_out, kH, kW)`` that gets one int8 scale per slice.
# TensorRT's own documentation does not say which axis its int8 deconvolution kernels take. Read for this
# (TensorRT 10.12 is the lowest version hhrt supports):
# - NvInfer.h (github.com/NVIDIA/TensorRT, include/NvInfer.h, commit a892d22): IDequantizeLayer only says
#   that a 1-D scale's size "must match the size of the quantization axis", the axis being "in reference
#   to the input tensor's dimensions"; IDeconvolutionLayer::setKernelWeights gives the layout (CKRS: C
#   input channels, K output maps). Neither names a required axis.
# - onnx-tensorrt docs/operators.md (TensorRT 10.x table): DequantizeLinear needs `x_zero_point` = 0,
#   ConvTranspose lists no axis restriction.
# - docs.nvidia.com/deeplearning/tensorrt/latest/inference-library/quantized-types-explicit-quantization.html
#   ("Explicit Quantization"): its quantized-weights text, as far as it could be read here, names none.
# What NVIDIA did say: TensorRT's CHANGELOG, release 22.05: "Use axis0 as default for deconv in
# pytorch-quantization toolkit", after issues NVIDIA/TensorRT #1694 and #2380 (TensorRT 8: axis 1 gave
# wrong results or no int8 kernel). The 10.2 GA commit (2332a719, whose changelog moves pytorch-quantization
# to TensorRT Model Optimizer) set its ConvTranspose descriptors back to axis 1 without a word. So the
# default stays axis 0, the layout NVIDIA last documented; axis 1 is one option away, and the build
# reports per deconvolution whether TensorRT ran it in int8 (docs/engines.md).
DECONV_WEIGHT_AXES = (0, 1)
DEFAULT_DECONV_WEIGHT_AXIS = 0


def calibration_cache_key(**fields: Any) -> str:
    """Stable short hash of the fields that determine activation ranges (model, size, flip, method, images)."""
    blob = json.dumps(fields, sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:20]


def _ort_method(method: str) -> Any:
    from onnxruntime.quantization import CalibrationMethod

    table = {
        "entropy": CalibrationMethod.Entropy,
        "percentile": CalibrationMethod.Percentile,
        "minmax": CalibrationMethod.MinMax,
    }
    if method not in table:
        raise CalibrationError(f"{option('calib_method')} must be one of {CALIB_METHODS}, got {method!r}")
    return table[method]


def _make_reader(input_name: str, batches: Iterable[np.ndarray]) -> Any:
    from onnxruntime.quantization import CalibrationDataReader

    class _Reader(CalibrationDataReader):
        """Feeds preprocessed images one at a time (each may have its own H, W)."""

        def __init__(self) -> None:
            self._it = iter(batches)
            self._ahead: np.ndarray | None = None  # one input read ahead (peek), never more
            self.count = 0
            self.exhausted = False

        def peek_shape(self) -> tuple[int, ...] | None:
            """The shape of the next input, or ``None`` at the end (reads at most one ahead)."""
            if self._ahead is None and not self.exhausted:
                x = next(self._it, None)
                if x is None:
                    self.exhausted = True
                else:
                    self._ahead = np.ascontiguousarray(x, dtype=np.float32)
            return None if self._ahead is None else self._ahead.shape

        def get_next(self) -> dict[str, np.ndarray] | None:
            self.peek_shape()
            x, self._ahead = self._ahead, None
            if x is None:
                return None
            self.count += 1
            return {input_name: x}

    return _Reader()


class _Chunk:
    """At most ``n`` items of one shape from a reader (a CalibrationDataReader duck type).

    One shape per ``collect_data`` call: ORT's histogram calibrators stack each tensor's values of a
    call into one array, which fails ("inhomogeneous shape") for photos of different sizes.
    """

    def __init__(self, reader: Any, n: int) -> None:
        self._reader, self._left = reader, n
        self._shape = reader.peek_shape()

    def get_next(self) -> dict[str, np.ndarray] | None:
        if self._left <= 0 or self._reader.peek_shape() != self._shape:
            return None
        self._left -= 1
        return self._reader.get_next()


def preprocess_for_quantization(fp32_onnx: Path, out: Path) -> Path:
    """Shape inference + BN folding before quantization; falls back to the input on failure."""
    from onnxruntime.quantization.shape_inference import quant_pre_process

    try:
        # ONNX's own shape inference is enough for a conv net; ORT's symbolic shape inference gives up
        # on the dynamic H, W of the flip/projection tail ("Incomplete symbolic shape inference").
        quant_pre_process(str(fp32_onnx), str(out), skip_symbolic_shape=True)
    except Exception as exc:  # pre-processing is an optimisation; quantizing the raw graph still works
        log.warning("quant_pre_process failed (%s); quantizing the graph as exported", exc)
        return fp32_onnx
    return out


def calibrate_ranges(
    model_path: Path,
    cache_path: Path,
    inputs: Iterable[np.ndarray],
    *,
    method: str,
    op_types: tuple[str, ...],
    input_name: str = INPUT_NAME,
    percentile: float = 99.999,
) -> int:
    """Run ORT's calibrator over ``inputs`` and save the ranges to ``cache_path``; returns the image count.

    Done here rather than inside ``quantize_static`` because ``quantize_static`` cannot pass histogram
    sizes through: its entropy calibrator then uses 128 bins for 128 quantized levels, leaving a single
    candidate threshold (= min/max). TensorRT's own entropy calibrator uses 2048 bins, but ORT's
    threshold search is pure Python and roughly quadratic in the bin count: on the tiny model at size 128
    (1748 calibrated tensors, 4 images, 2 shared cores) 2048 bins took 630 s and 512 bins 374 s, against
    8 s for percentile and 10 s for minmax. So entropy uses 512 bins and percentile is the default.
    """
    from onnxruntime.quantization.calibrate import TensorsData, create_calibrator, save_tensors_data

    options: dict[str, Any] = {}
    if method == "entropy":
        options.update(num_bins=512, num_quantized_bins=128)
    elif method == "percentile":
        options.update(num_bins=2048, percentile=percentile)
    reader = _make_reader(input_name, inputs)
    with tempfile.TemporaryDirectory(prefix="hhrt-calib-") as tmp:
        calibrator = create_calibrator(
            model_path,
            list(op_types),
            augmented_model_path=str(Path(tmp) / "augmented.onnx"),
            calibrate_method=_ort_method(method),
            extra_options=options,
        )
        # CALIB_CHUNK images (of one shape) per collect_data call: ORT keeps every intermediate tensor of every image of a
        # call in memory (GBs per image for W32 at 512x960), while its histograms and min/max ranges
        # merge across calls. Merging re-bins histograms, so percentile/entropy thresholds move slightly
        # against one big call (small test net: percentile < 0.1 %, entropy up to ~5 %; minmax equal).
        while not reader.exhausted:
            before = reader.count
            try:
                with _ort_prints_to_log():
                    calibrator.collect_data(_Chunk(reader, CALIB_CHUNK))
            except ValueError:  # "No data is collected": the reader had nothing left for this call
                if reader.count != before:
                    raise
                break
        if reader.count == 0:
            raise CalibrationError("no calibration images were produced, so INT8 ranges cannot be computed")
        with _ort_prints_to_log():
            ranges = calibrator.compute_data()
        if not isinstance(ranges, TensorsData):  # pragma: no cover - ORT API contract
            raise CalibrationError(f"unexpected calibration result {type(ranges).__name__}")
    save_tensors_data(ranges, cache_path)
    return reader.count


@contextlib.contextmanager
def _ort_prints_to_log() -> Iterator[None]:
    """ONNX Runtime's calibrators report with ``print`` ("Collecting tensor data and making histogram ...",
    bin counts): caught and logged at debug level, so they reach neither stdout (data) nor the terminal
    between hhrt's own progress lines."""
    printed = io.StringIO()
    try:
        with contextlib.redirect_stdout(printed):
            yield
    finally:
        for line in printed.getvalue().splitlines():
            if line.strip():
                log.debug("onnxruntime: %s", line.strip())


def check_deconv_weight_axis(axis: int) -> int:
    """``axis`` if it is one of :data:`DECONV_WEIGHT_AXES`.

    Raises:
        InputError: any other value.
    """
    if axis not in DECONV_WEIGHT_AXES:
        raise InputError(
            f"{option('deconv_weight_axis')} must be 0 (per input channel) or 1 (per output channel), "
            f"got {axis!r}"
        )
    return int(axis)


def deconv_weight_overrides(
    model_path: Path, axis: int = DEFAULT_DECONV_WEIGHT_AXIS
) -> dict[str, list[dict[str, int]]]:
    """ORT ``TensorQuantOverrides`` putting every ConvTranspose weight initializer on ``axis``.

    ORT's Conv/ConvTranspose quantiser ignores ``QDQOpTypePerChannelSupportToAxis`` (it asks for the
    axis without the op type), so the axis is set per weight tensor instead.
    """
    import onnx

    axis = check_deconv_weight_axis(axis)
    model = onnx.load(str(model_path), load_external_data=False)
    initializers = {i.name for i in model.graph.initializer}
    return {
        node.input[1]: [{"axis": axis}]
        for node in model.graph.node
        if node.op_type == "ConvTranspose" and len(node.input) > 1 and node.input[1] in initializers
    }


def quantize_int8(
    fp32_onnx: str | Path,
    out_path: str | Path,
    *,
    calibration_inputs: Callable[[], Iterable[np.ndarray]],
    method: str = "percentile",
    cache_path: str | Path | None = None,
    input_name: str = INPUT_NAME,
    op_types: tuple[str, ...] = QUANT_OP_TYPES,
    percentile: float = 99.999,
    deconv_weight_axis: int = DEFAULT_DECONV_WEIGHT_AXIS,
) -> dict[str, Any]:
    """Write a Q/DQ INT8 copy of ``fp32_onnx`` calibrated on preprocessed images.

    Args:
        fp32_onnx: the fp32 graph.
        out_path: where to write the Q/DQ graph.
        calibration_inputs: returns an iterable of ``(1, 3, h, w)`` float32 inputs; only called when
            the ranges are not cached already.
        method: ``entropy`` | ``percentile`` | ``minmax``.
        cache_path: JSON file of computed ranges (ORT's ``save_tensors_data`` format); reused when
            present, written when not. ``None``: a temporary file (always calibrates).
        op_types: op types to quantize (see the module docstring for the default's reasons).
        percentile: for ``method="percentile"``.
        deconv_weight_axis: the ConvTranspose weight axis with one scale per slice (0 or 1; see
            :data:`DEFAULT_DECONV_WEIGHT_AXIS`). Activation ranges do not depend on it, so the range
            cache is shared by both.

    Returns:
        ``{"method", "cache_hit", "cache_file", "images", "op_types", "deconv_weight_axis"}`` for the
        sidecar.

    Raises:
        CalibrationError: no calibration input was produced, or the method is unknown.
        InputError: ``deconv_weight_axis`` is not 0 or 1.
    """
    from onnxruntime.quantization import QuantFormat, QuantType, quantize_static

    fp32_onnx, out_path = Path(fp32_onnx), Path(out_path)
    ort_method = _ort_method(method)
    deconv_weight_axis = check_deconv_weight_axis(deconv_weight_axis)
    if "calibration_cache_path" not in inspect.signature(quantize_static).parameters:
        raise CalibrationError(
            "this onnxruntime is too old for cached INT8 calibration (needs calibration_cache_path in "
            "quantize_static); pip install -U onnxruntime"
        )
    extra: dict[str, Any] = {
        "ActivationSymmetric": True,
        "WeightSymmetric": True,
        "QuantizeBias": False,
        # ORT widens weight scales so that an int32 bias would fit; biases stay float here, so that only
        # costs resolution (and ORT's version indexes the bias by the weight's channel axis, which breaks
        # on axis-0 ConvTranspose weights, whose bias runs along axis 1).
        "QDQDisableWeightAdjustForInt32Bias": True,
        # Q/DQ only on the inputs of quantized ops: the next conv quantizes its input anyway, and the
        # head's outputs (heatmaps, tags) stay float instead of being rounded to 256 levels.
        "OpTypesToExcludeOutputQuantization": list(op_types),
    }
    with tempfile.TemporaryDirectory(prefix="hhrt-quant-") as tmp:
        cache = Path(cache_path) if cache_path is not None else Path(tmp) / "ranges.calib.json"
        cache_hit = cache.is_file()
        model_in = preprocess_for_quantization(fp32_onnx, Path(tmp) / "preprocessed.onnx")
        if "ConvTranspose" in op_types:
            extra["TensorQuantOverrides"] = deconv_weight_overrides(model_in, deconv_weight_axis)
        images = None
        if not cache_hit:
            cache.parent.mkdir(parents=True, exist_ok=True)
            images = calibrate_ranges(
                model_in,
                cache,
                calibration_inputs(),
                method=method,
                op_types=op_types,
                input_name=input_name,
                percentile=percentile,
            )
        quantize_static(
            str(model_in),
            str(out_path),
            calibration_data_reader=None,  # ranges come from the cache written above (or earlier)
            quant_format=QuantFormat.QDQ,
            op_types_to_quantize=list(op_types),
            per_channel=True,
            reduce_range=False,
            activation_type=QuantType.QInt8,
            weight_type=QuantType.QInt8,
            calibrate_method=ort_method,
            extra_options=extra,
            calibration_cache_path=str(cache),
        )
    return {
        "method": method,
        "cache_hit": cache_hit,
        "cache_file": cache.name if cache_path is not None else None,
        "images": images,
        "op_types": list(op_types),
        "deconv_weight_axis": deconv_weight_axis if "ConvTranspose" in op_types else None,
    }


def qdq_summary(onnx_path: str | Path) -> Mapping[str, Any]:
    """Counts of Q/DQ nodes and quantized op inputs, for logs and tests."""
    import onnx

    model = onnx.load(str(onnx_path))
    ops = [n.op_type for n in model.graph.node]
    return {
        "QuantizeLinear": ops.count("QuantizeLinear"),
        "DequantizeLinear": ops.count("DequantizeLinear"),
        "Conv": ops.count("Conv"),
        "ConvTranspose": ops.count("ConvTranspose"),
    }
