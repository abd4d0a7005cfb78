"""INT8 for ONNX Runtime's CPU kernels (``hhrt build-engine --target cpu --precision int8``).

The TensorRT-shaped file of :mod:`hhrnet_rt.export.quantize` (signed activations, Q/DQ only in front of
convolutions, everything between them float) runs *slower* than fp32 in ONNX Runtime on the CPU: every
conv dequantizes its output to float for the residual Add / Resize and quantizes it again for the next
conv. ORT's CPU kernels are fastest on the layout its documentation recommends for x86:

* **unsigned 8-bit activations, signed 8-bit weights** (U8S8, the VNNI/AMX dot-product shape) with
  asymmetric activation ranges (ReLU outputs are non-negative, so a zero point of 0 in u8 uses all 256
  levels where symmetric s8 wastes half of them);
* **quantized operator outputs**: Conv, Add, Relu and Resize are quantized as a chain, so the int8 tensor
  flows from one conv through the residual add and the fusion resize into the next conv without going
  back to float; ORT fuses each DQ -> op -> Q group into QLinearConv / QLinearAdd at session creation
  (QDQ format) or the file holds those ops directly (QOperator format). Both are built and timed by
  ``benchmarks/bench_cpu.py``; QOperator is the default: in the same interleaved run (W32, 640x480 frame,
  2 shared cores) it ran 2.40x the fp32 speed against 2.07x for QDQ at input 512 with flip, and was
  faster at the fast preset too (``benchmarks/results/bench_cpu.md``), even though it leaves the deconv
  stage's transposed conv in float (ORT has no QLinearConvTranspose in that format);
* **per-channel weights** (one scale per output channel): HRNet's channels differ in range by orders
  of magnitude;
* **float where precision decides**: the final 1x1 layers (heatmaps and tags; tags' small differences
  decide the grouping) and the whole flip / projection tail after the network (Resize to input
  resolution, flip-back Gather, averaging) stay float. They are a few percent of the FLOPs. The input
  image itself is quantized for the first conv (and the tail's flip of it reads the same rounded copy):
  u8 over the normalised range has a step of ~0.018, the same as the 8-bit pixels it came from.

Calibration reuses :func:`hhrnet_rt.export.quantize.calibrate_ranges` and its JSON range cache; the cache
key must include ``target="cpu"`` because these ranges cover more tensors (outputs of Add, Relu, Resize).
Both formats calibrate the same tensors, so one cached range file serves either.

Example:
    >>> quantize_int8_cpu("w.fp32.onnx", "w.int8cpu.onnx", calibration_inputs=lambda: imgs)  # doctest: +SKIP
"""

from __future__ import annotations

import inspect
import re
import tempfile
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from hhrnet_rt.core.errors import CalibrationError
from hhrnet_rt.export.quantize import _ort_method, calibrate_ranges, preprocess_for_quantization

CPU_FORMATS = ("qdq", "qoperator")
# Resize and Add carry the multi-resolution fusion; Relu is folded into the conv/add before it. Not
# Concat: the network's only Concat joins the features with the final layer's heatmaps, and a quantized
# Concat would round the heatmap tensor that the tail also reads (ORT rewires every consumer of a
# quantized tensor to its DequantizeLinear).
CPU_OP_TYPES = ("Conv", "ConvTranspose", "Add", "Relu", "Resize")
# torch.onnx names nodes by module path; PoseGraph holds the net as ``.network`` (a second call site of
# the same module, e.g. its forward's torch.cat, gets the scope "/network_1/").
NETWORK_SCOPE = re.compile(r"^/network(_\d+)?/")
FLOAT_SCOPE = re.compile(r"^/network(_\d+)?/final_layers")  # output convs: heatmaps and tags stay float


def in_network(name: str) -> bool:
    return NETWORK_SCOPE.match(name) is not None


def in_final_layers(name: str) -> bool:
    return FLOAT_SCOPE.match(name) is not None


def quantizable_nodes(model: Any, op_types: Iterable[str] = CPU_OP_TYPES) -> list[str]:
    """Names of the nodes to quantize: ``op_types`` inside the network, minus its final layers.

    Everything outside the network scope (the flip / projection tail) is left float.

    Raises:
        CalibrationError: the graph has no node under the network scope (not a PoseGraph export), so
            the float/int8 split cannot be made and quantizing blindly would round the outputs.
    """
    wanted = set(op_types)
    names = [
        n.name
        for n in model.graph.node
        if n.op_type in wanted and in_network(n.name) and not in_final_layers(n.name)
    ]
    if not names:
        raise CalibrationError(
            "no quantizable node under '/network/' in the graph: CPU int8 needs a PoseGraph export "
            "(from `hhrt build-engine`)"
        )
    return names


def quantize_int8_cpu(
    fp32_onnx: str | Path,
    out_path: str | Path,
    *,
    calibration_inputs: Callable[[], Iterable[np.ndarray]],
    method: str = "percentile",
    cache_path: str | Path | None = None,
    quant_format: str = "qoperator",
    reduce_range: bool = False,
    input_name: str = "image",
    percentile: float = 99.999,
) -> dict[str, Any]:
    """Write an ONNX Runtime CPU-shaped INT8 copy of the PoseGraph file ``fp32_onnx``.

    Args:
        fp32_onnx: the fp32 PoseGraph export (node names under ``/network/``).
        out_path: where to write the int8 graph.
        calibration_inputs: returns an iterable of ``(1, 3, h, w)`` float32 inputs; called only when the
            ranges are not cached.
        method: ``entropy`` | ``percentile`` | ``minmax``.
        cache_path: range cache (JSON); reused when present, written when not; ``None``: always calibrate.
        quant_format: ``qoperator`` (default) or ``qdq`` (see the module docstring).
        reduce_range: 7-bit weights; only for CPUs without VNNI (AVX2-only), where U8S8 products can
            saturate. Off by default: CI-class Xeons and EPYCs have VNNI.

    Returns:
        ``{"target", "format", "method", "cache_hit", "cache_file", "images", "op_types",
        "quantized_nodes", "reduce_range"}`` for the sidecar.

    Raises:
        CalibrationError: no calibration input, unknown method or format, not a PoseGraph export.
    """
    import onnx
    from onnxruntime.quantization import QuantFormat, QuantType, quantize_static

    if quant_format not in CPU_FORMATS:
        raise CalibrationError(f"CPU int8 format must be one of {CPU_FORMATS}, got {quant_format!r}")
    fp32_onnx, out_path = Path(fp32_onnx), Path(out_path)
    ort_method = _ort_method(method)
    if "calibration_cache_path" not in inspect.signature(quantize_static).parameters:
        raise CalibrationError(
            "this onnxruntime is too old for cached INT8 calibration; pip install -U onnxruntime"
        )
    op_types = (
        CPU_OP_TYPES if quant_format == "qdq" else tuple(t for t in CPU_OP_TYPES if t != "ConvTranspose")
    )
    with tempfile.TemporaryDirectory(prefix="hhrt-quant-cpu-") as tmp:
        cache = Path(cache_path) if cache_path is not None else Path(tmp) / "ranges.calib.json"
        cache_hit = cache.is_file()
        model_in = preprocess_for_quantization(fp32_onnx, Path(tmp) / "preprocessed.onnx")
        nodes = quantizable_nodes(onnx.load(str(model_in), load_external_data=False), op_types)
        images = None
        if not cache_hit:
            cache.parent.mkdir(parents=True, exist_ok=True)
            images = calibrate_ranges(
                model_in, cache, calibration_inputs(), method=method, op_types=CPU_OP_TYPES,
                input_name=input_name, percentile=percentile,
            )  # fmt: skip
        quantize_static(
            str(model_in),
            str(out_path),
            calibration_data_reader=None,  # ranges come from the cache
            quant_format=QuantFormat.QDQ if quant_format == "qdq" else QuantFormat.QOperator,
            op_types_to_quantize=list(op_types),
            nodes_to_quantize=nodes,
            per_channel=True,
            reduce_range=reduce_range,
            activation_type=QuantType.QUInt8,
            weight_type=QuantType.QInt8,
            calibrate_method=ort_method,
            extra_options={"ActivationSymmetric": False, "WeightSymmetric": True},
            calibration_cache_path=str(cache),
        )
    return {
        "target": "cpu",
        "format": quant_format,
        "method": method,
        "cache_hit": cache_hit,
        "cache_file": cache.name if cache_path is not None else None,
        "images": images,
        "op_types": list(op_types),
        "quantized_nodes": len(nodes),
        "reduce_range": reduce_range,
    }


def cpu_int8_layout(onnx_path: str | Path) -> Mapping[str, Any]:
    """What the file holds, for tests and logs: activation zero-point dtypes, quantized/float op counts.

    Keys: ``activation_dtypes`` (set of numpy dtype names of QuantizeLinear zero points),
    ``qlinear_ops`` (QLinear* nodes), ``dequantize_ops``, ``final_convs`` / ``float_final_convs`` (final
    layer convs, and those with float weights), ``quantized_ops_in_tail`` (tail ops that are QLinear* or
    read a DequantizeLinear output other than the input image's; 0 when the tail runs on float outputs of float final layers).
    """
    import onnx
    from onnx import numpy_helper

    model = onnx.load(str(onnx_path), load_external_data=False)
    init = {i.name: i for i in model.graph.initializer}
    zp_dtypes = {
        numpy_helper.to_array(init[n.input[2]]).dtype.name
        for n in model.graph.node
        if n.op_type == "QuantizeLinear" and len(n.input) > 2 and n.input[2] in init
    }
    producers = {o: n for n in model.graph.node for o in n.output}
    qdq = ("QuantizeLinear", "DequantizeLinear")

    def float_weight(conv: Any) -> bool:  # weight is a float initializer, not a DequantizeLinear output
        w = init.get(conv.input[1])
        return w is not None and w.data_type == onnx.TensorProto.FLOAT

    tail = [n for n in model.graph.node if not in_network(n.name) and n.op_type not in qdq]
    graph_inputs = {i.name for i in model.graph.input}  # the image: quantized for the first conv (lossless)

    def quantized_source(tensor: str) -> str:  # the float tensor behind a DQ <- Q chain
        while tensor in producers and producers[tensor].op_type in qdq:
            tensor = producers[tensor].input[0]
        return tensor

    def reads_quantized(n: Any) -> bool:
        return any(
            i in producers
            and producers[i].op_type == "DequantizeLinear"
            and quantized_source(i) not in graph_inputs
            for i in n.input
        )

    return {
        "activation_dtypes": zp_dtypes,
        "qlinear_ops": sum(n.op_type.startswith("QLinear") for n in model.graph.node),
        "dequantize_ops": sum(n.op_type == "DequantizeLinear" for n in model.graph.node),
        "final_convs": sum(n.op_type == "Conv" and in_final_layers(n.name) for n in model.graph.node),
        "float_final_convs": sum(
            n.op_type == "Conv" and in_final_layers(n.name) and float_weight(n) for n in model.graph.node
        ),
        "quantized_ops_in_tail": sum(n.op_type.startswith("QLinear") or reads_quantized(n) for n in tail),
    }
