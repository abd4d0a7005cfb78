"""INT8 as Q/DQ nodes in the ONNX file, inserted by ONNX Runtime's static quantiser.

Choices, and why:

* ``QuantFormat.QDQ`` with ``QInt8`` activations and weights, ``ActivationSymmetric`` and
  ``WeightSymmetric``: TensorRT's explicit quantization only accepts zero points of 0.
* Per-channel weights (one scale per output channel; axis 0 for Conv, 1 for ConvTranspose): HRNet's
  channels differ in range by orders of magnitude, and TensorRT supports per-channel weight scales.
* ``QuantizeBias=False``: biases stay float. ORT would otherwise store them as int32 behind a
  DequantizeLinear, which TensorRT does not import; TensorRT quantizes the bias itself when it fuses.
* Only ``Conv`` and ``ConvTranspose`` are quantized. They are ~all of the FLOPs, and TensorRT fuses
  DQ -> Conv -> (BN, ReLU, residual Add) -> Q into one int8 kernel. Resize (the multi-resolution fusion
  and the 1/4 -> 1/2 upsample), Gather (flip-back with FLIP_INDEX), the flip/averaging tail and the tag
  outputs stay float: they are cheap, and the tags' small differences decide the grouping, so they are
  precision-sensitive.
* The model is first run through ``quant_pre_process`` (shape inference + ORT's graph optimisation, which
  folds BatchNorm into Conv), so weights are quantized after folding -- otherwise BN would rescale
  already-rounded weights.

The activation ranges are cached as JSON (ORT's own ``save_tensors_data`` format, via
``quantize_static(calibration_cache_path=...)``) keyed by everything that changes them, so a rebuild
does not recalibrate; the calibration images are not even read on a cache hit.
"""

from __future__ import annotations

import hashlib
import inspect
import json
import logging
import tempfile
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from hhrnet_rt.errors import CalibrationError

log = logging.getLogger(__name__)

QUANT_OP_TYPES = ("Conv", "ConvTranspose")
CALIB_METHODS = ("entropy", "percentile", "minmax")


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
        raise CalibrationError(f"--calib-method must be one of {CALIB_METHODS}, got {method!r}")
    return table[method]


def _make_reader(input_name: str, batches: Iterable[np.ndarray]) -> Any:
    from onnxruntime.quantization import CalibrationDataReader

    class _Reader(CalibrationDataReader):
        """Feeds preprocessed images one at a time (each may have its own H, W)."""

        def __init__(self) -> None:
            self._it = iter(batches)
            self.count = 0

        def get_next(self) -> dict[str, np.ndarray] | None:
            x = next(self._it, None)
            if x is None:
                return None
            self.count += 1
            return {input_name: np.ascontiguousarray(x, dtype=np.float32)}

    return _Reader()


def preprocess_for_quantization(fp32_onnx: Path, out: Path) -> Path:
    """Shape inference + BN folding before quantization; falls back to the input on failure."""
    from onnxruntime.quantization.shape_inference import quant_pre_process

    try:
        quant_pre_process(str(fp32_onnx), str(out), skip_symbolic_shape=False)
    except Exception as exc:  # pre-processing is an optimisation; quantizing the raw graph still works
        log.warning("quant_pre_process failed (%s); quantizing the graph as exported", exc)
        return fp32_onnx
    return out


def quantize_int8(
    fp32_onnx: str | Path,
    out_path: str | Path,
    *,
    calibration_inputs: Callable[[], Iterable[np.ndarray]],
    method: str = "entropy",
    cache_path: str | Path | None = None,
    input_name: str = "image",
    op_types: tuple[str, ...] = QUANT_OP_TYPES,
    percentile: float = 99.999,
) -> dict[str, Any]:
    """Write a Q/DQ INT8 copy of ``fp32_onnx`` calibrated on preprocessed images.

    Args:
        fp32_onnx: the fp32 graph.
        out_path: where to write the Q/DQ graph.
        calibration_inputs: returns an iterable of ``(1, 3, h, w)`` float32 inputs; only called when
            the ranges are not cached already.
        method: ``entropy`` | ``percentile`` | ``minmax``.
        cache_path: JSON file of computed ranges; reused when present, written when not.
        op_types: op types to quantize (see the module docstring for the default's reasons).
        percentile: for ``method="percentile"``.

    Returns:
        ``{"method", "cache_hit", "cache_file", "images", "op_types"}`` for the sidecar.

    Raises:
        CalibrationError: no calibration input was produced.
    """
    from onnxruntime.quantization import QuantFormat, QuantType, quantize_static

    fp32_onnx, out_path = Path(fp32_onnx), Path(out_path)
    ort_method = _ort_method(method)
    cache = Path(cache_path) if cache_path is not None else None
    supports_cache = "calibration_cache_path" in inspect.signature(quantize_static).parameters
    cache_hit = bool(cache is not None and supports_cache and cache.is_file())
    reader = None if cache_hit else _make_reader(input_name, calibration_inputs())

    extra: dict[str, Any] = {
        "ActivationSymmetric": True,
        "WeightSymmetric": True,
        "QuantizeBias": False,
        # Q/DQ only on the inputs of quantized ops: the next conv quantizes its input anyway, and the
        # head's outputs (heatmaps, tags) stay float instead of being rounded to 256 levels.
        "OpTypesToExcludeOutputQuantization": list(op_types),
    }
    if method == "percentile":
        extra["CalibPercentile"] = percentile
    kwargs: dict[str, Any] = {}
    if supports_cache and cache is not None:
        cache.parent.mkdir(parents=True, exist_ok=True)
        kwargs["calibration_cache_path"] = str(cache)
    elif cache is not None:
        log.warning("this onnxruntime has no calibration cache support; calibrating without a cache")

    with tempfile.TemporaryDirectory(prefix="hhrt-quant-") as tmp:
        model_in = preprocess_for_quantization(fp32_onnx, Path(tmp) / "preprocessed.onnx")
        try:
            quantize_static(
                str(model_in),
                str(out_path),
                calibration_data_reader=reader,
                quant_format=QuantFormat.QDQ,
                op_types_to_quantize=list(op_types),
                per_channel=True,
                reduce_range=False,
                activation_type=QuantType.QInt8,
                weight_type=QuantType.QInt8,
                calibrate_method=ort_method,
                extra_options=extra,
                **kwargs,
            )
        except (ValueError, IndexError) as exc:
            if reader is not None and reader.count == 0:
                raise CalibrationError(
                    "no calibration images were produced, so INT8 ranges cannot be computed"
                ) from exc
            raise
    if reader is not None and reader.count == 0:
        raise CalibrationError("no calibration images were produced, so INT8 ranges cannot be computed")
    return {
        "method": method,
        "cache_hit": cache_hit,
        "cache_file": cache.name if cache is not None else None,
        "images": None if reader is None else reader.count,
        "op_types": list(op_types),
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
