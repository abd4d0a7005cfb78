"""Per deconvolution of an int8 build: its weight-scale axis, its output error against fp32, and whether
TensorRT ran it in int8.

Which ConvTranspose weight axis TensorRT's int8 kernels take is not settled by its documentation
(:data:`hhrnet_rt.export.quantize.DEFAULT_DECONV_WEIGHT_AXIS`), so one build answers it for the user's
TensorRT and GPU:

* :func:`deconv_errors` runs the fp32 and the Q/DQ graph in ONNX Runtime with each ConvTranspose's output
  exposed as an extra graph output (in-memory copies; the files are not touched) and measures the int8
  output against fp32. ONNX Runtime's quantiser folds the BatchNorm behind a deconvolution into it, so its
  output is the tensor of the same name in the fp32 graph (the BatchNorm's output); a deconvolution whose
  output name is missing from the fp32 graph is reported without an error figure.
* :func:`inspector_deconvolutions` reads TensorRT's engine inspector JSON (the engine is built with
  detailed profiling verbosity) and says, per ConvTranspose node, whether the engine layer that holds it
  takes int8 input (a deconvolution left in fp32/fp16 is the sign that no int8 kernel fit the weight scales).

The TensorRT engine's own per-deconvolution output is not measured: marking a deconvolution's output as a
network output stops TensorRT fusing it with what follows, so a debug engine would not be the engine shipped.
The error figure is that of the same Q/DQ file TensorRT builds from, in ONNX Runtime.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from hhrnet_rt.artifacts.sidecar import INPUT_NAME
from hhrnet_rt.core.errors import option


def deconv_nodes(model: Any) -> list[dict[str, Any]]:
    """Name, output tensor and weight quantization (axis, scale count) of each ConvTranspose node of an
    ONNX ``ModelProto``, in graph order. ``axis`` is None for a float weight."""
    from onnx import numpy_helper

    init = {i.name: i for i in model.graph.initializer}
    producers = {out: node for node in model.graph.node for out in node.output}
    rows = []
    for node in model.graph.node:
        if node.op_type != "ConvTranspose":
            continue
        dq = producers.get(node.input[1]) if len(node.input) > 1 else None
        axis = scales = None
        if dq is not None and dq.op_type == "DequantizeLinear" and dq.input[1] in init:
            scales = int(numpy_helper.to_array(init[dq.input[1]]).size)
            axis = next((a.i for a in dq.attribute if a.name == "axis"), 1) if scales > 1 else None
        rows.append({"name": node.name, "output": node.output[0], "weight_axis": axis, "scales": scales})
    return rows


def _with_outputs(model: Any, names: Sequence[str]) -> bytes:
    """A serialized copy of ``model`` with ``names`` added as float graph outputs."""
    import onnx

    copy = onnx.ModelProto()
    copy.CopyFrom(model)
    present = {o.name for o in copy.graph.output}
    for name in names:
        if name not in present:
            copy.graph.output.append(onnx.helper.make_tensor_value_info(name, onnx.TensorProto.FLOAT, None))
    return copy.SerializeToString()


def deconv_errors(
    fp32_onnx: str | Path, int8_onnx: str | Path, inputs: Sequence[np.ndarray], *, threads: int | None = None
) -> list[dict[str, Any]]:
    """:func:`deconv_nodes` of ``int8_onnx`` plus ``max_abs``, ``mean_abs`` and ``rel_max`` (max |err|
    over the fp32 output's max |value|) of each deconvolution's output over ``inputs``."""
    import onnx
    import onnxruntime as ort

    q_model = onnx.load(str(int8_onnx))
    f_model = onnx.load(str(fp32_onnx))
    rows = deconv_nodes(q_model)
    fp32_tensors = {out for node in f_model.graph.node for out in node.output}
    names = [r["output"] for r in rows if r["output"] in fp32_tensors]
    if not names:
        return [{**r, "max_abs": None, "mean_abs": None, "rel_max": None} for r in rows]
    opts = ort.SessionOptions()
    if threads:
        opts.intra_op_num_threads = threads
    cpu = ["CPUExecutionProvider"]
    ref = ort.InferenceSession(_with_outputs(f_model, names), opts, providers=cpu)
    oth = ort.InferenceSession(_with_outputs(q_model, names), opts, providers=cpu)
    stats = {n: [0.0, 0.0, 0, 0.0] for n in names}  # max |err|, sum |err|, count, max |fp32|
    for x in inputs:
        for n, a, b in zip(
            names, ref.run(names, {INPUT_NAME: x}), oth.run(names, {INPUT_NAME: x}), strict=True
        ):
            err = np.abs(a.astype(np.float64) - b)
            s = stats[n]
            s[0], s[1], s[2] = max(s[0], float(err.max())), s[1] + float(err.sum()), s[2] + err.size
            s[3] = max(s[3], float(np.abs(a).max()))
    out = []
    for r in rows:
        figures: dict[str, float | None] = {"max_abs": None, "mean_abs": None, "rel_max": None}
        got = stats.get(r["output"])
        if got is not None:
            big, total, count, ref_max = got
            figures = {
                "max_abs": big,
                "mean_abs": total / max(count, 1),
                "rel_max": big / ref_max if ref_max else None,
            }
        out.append({**r, **figures})
    return out


def _mentions(text: str, node_name: str) -> bool:
    # The node name whole: "/a/ConvTranspose" must not match "/a/ConvTranspose_1".
    return re.search(re.escape(node_name) + r"(?![\w.])", text) is not None


def inspector_deconvolutions(info_json: str, node_names: Sequence[str]) -> dict[str, dict[str, Any]]:
    """Per ONNX ConvTranspose node name: ``{"int8": bool | None, "layer": str | None, "format": str}``
    from an engine inspector JSON (``get_engine_information(LayerInformationFormat.JSON)``).

    A layer holds the node when its ``Name`` or ``Metadata`` (``[ONNX Layer: NAME]``) names it; ``int8``
    is whether that layer's first input is in an Int8 format (TensorRT's ``Format/Datatype`` text), or,
    where the input format is absent, whether its weights are Int8. ``None``: no layer names the node, or
    the engine was built without detailed profiling verbosity (layers are then bare names).
    """
    try:
        layers = json.loads(info_json).get("Layers", [])
    except (ValueError, AttributeError):
        layers = []
    out: dict[str, dict[str, Any]] = {}
    for name in node_names:
        found = [
            layer
            for layer in layers
            if isinstance(layer, Mapping)
            and _mentions(f"{layer.get('Name', '')} {layer.get('Metadata', '')}", name)
        ]
        # A node's weight-quantize layer may name it too; the layer doing the convolution is the one.
        conv = [
            lay
            for lay in found
            if "onvolution" in f"{lay.get('ParameterType', '')}{lay.get('LayerType', '')}"
        ]
        candidates = conv or found
        if not candidates:
            detailed = any(isinstance(lay, Mapping) for lay in layers)
            why = "not named by any engine layer" if detailed else "engine inspector gave no layer details"
            out[name] = {"int8": None, "layer": None, "format": why}
            continue
        layer = candidates[0]
        inputs = layer.get("Inputs") or [{}]
        fmt = str(inputs[0].get("Format/Datatype", "")) if isinstance(inputs[0], Mapping) else ""
        weights = layer.get("Weights")
        weights = weights if isinstance(weights, Mapping) else {}
        int8 = "int8" in fmt.lower() if fmt else str(weights.get("Type", "")).lower() == "int8"
        out[name] = {"int8": int8, "layer": str(layer.get("Name", "")), "format": fmt or f"weights {weights}"}
    return out


def engine_deconvolutions(trt: Any, engine: Any, node_names: Sequence[str]) -> dict[str, dict[str, Any]]:
    """:func:`inspector_deconvolutions` of a built ``ICudaEngine`` (TensorRT's documented inspector API)."""
    inspector = engine.create_engine_inspector()
    return inspector_deconvolutions(
        inspector.get_engine_information(trt.LayerInformationFormat.JSON), node_names
    )


def _num(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3g}"


def report_lines(
    deconvs: Sequence[Mapping[str, Any]], tensorrt: Mapping[str, Any] | None = None
) -> list[str]:
    """One line per deconvolution: name, weight axis, ONNX Runtime int8-vs-fp32 output error and, with
    ``tensorrt`` (node name -> :func:`inspector_deconvolutions` row), whether the engine ran it in int8."""
    lines = []
    for d in deconvs:
        axis = "float weights" if d.get("scales") is None else (
            f"weight scales on axis {d['weight_axis']} ({d['scales']})" if d.get("weight_axis") is not None
            else "one weight scale"
        )  # fmt: skip
        rel = d.get("rel_max")
        share = "" if rel is None else f" ({_num(100 * rel)}% of the fp32 range)"
        err = (
            f"ONNX Runtime int8 vs fp32 output: max |err| {_num(d.get('max_abs'))}{share}, "
            f"mean {_num(d.get('mean_abs'))}"
        )
        if tensorrt is None:
            trt_part = "TensorRT: not built yet"
        else:
            row = tensorrt.get(d["name"], {"int8": None})
            trt_part = {True: "TensorRT: int8", False: f"TensorRT: NOT int8 ({row.get('format')})",
                        None: f"TensorRT: unknown ({row.get('format', 'not in the engine report')})"}[row.get("int8")]  # fmt: skip
            if row.get("int8") is False and d.get("weight_axis") in (0, 1):
                trt_part += f"; try a rebuild with {option('deconv_weight_axis', 1 - d['weight_axis'])}"
        lines.append(f"deconvolution {d['name']}: {axis}; {err}; {trt_part}")
    return lines
