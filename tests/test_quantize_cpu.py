"""CPU-shaped INT8 (``--target cpu``): the graph layout ONNX Runtime's CPU kernels want, agreement with
fp32 on the golden tiny model, the sidecar, and running the file through the ONNX Runtime backend."""

from __future__ import annotations

import json
import sys

import cv2
import numpy as np
import onnx
import pytest
from onnx import helper
from typer.testing import CliRunner

from hhrnet_rt.cli import app
from hhrnet_rt.core.errors import CalibrationError
from hhrnet_rt.export.quantize_cpu import cpu_int8_layout, quantizable_nodes, quantize_int8_cpu

runner = CliRunner()


def _fake_graph(names_and_ops):
    nodes = [helper.make_node(op, ["x"], [f"y{i}"], name=name) for i, (name, op) in enumerate(names_and_ops)]
    return helper.make_model(helper.make_graph(nodes, "g", [], []))


def test_quantizable_nodes_keep_final_layers_and_tail_float():
    model = _fake_graph([
        ("/network/conv1/Conv", "Conv"),
        ("/network/stage2/Add", "Add"),
        ("/network/stage2/Resize", "Resize"),
        ("/network/final_layers.0/Conv", "Conv"),
        ("/network/final_layers.1/Conv", "Conv"),
        ("/network/deconv_layers.0/ConvTranspose", "ConvTranspose"),
        ("/network/Concat", "Concat"),
        ("/Resize", "Resize"),  # projection tail
        ("/Add_1", "Add"),  # flip averaging
    ])  # fmt: skip
    assert quantizable_nodes(model) == [
        "/network/conv1/Conv",
        "/network/stage2/Add",
        "/network/stage2/Resize",
        "/network/deconv_layers.0/ConvTranspose",
    ]


def test_not_a_pose_graph_is_refused():
    with pytest.raises(CalibrationError, match="PoseGraph"):
        quantizable_nodes(_fake_graph([("conv", "Conv")]))


def test_unknown_format_is_refused(tmp_path):
    with pytest.raises(CalibrationError, match="format"):
        quantize_int8_cpu(
            tmp_path / "x.onnx", tmp_path / "y.onnx", calibration_inputs=list, quant_format="q4"
        )


@pytest.fixture
def workdir(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HHRT_CACHE_DIR", str(tmp_path / "cache"))  # where the range caches go
    monkeypatch.setitem(sys.modules, "tensorrt", None)  # --target cpu must not need (or try) TensorRT
    folder = tmp_path / "calibration"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for i in range(7):
        small = rng.integers(0, 256, (12, 16, 3), dtype=np.uint8)
        cv2.imwrite(str(folder / f"f{i}.png"), cv2.resize(small, (160, 120), interpolation=cv2.INTER_CUBIC))
    return tmp_path


def test_fp16_for_the_cpu_is_refused(workdir):
    result = runner.invoke(
        app, ["build-engine", "--weights", "random", "--precision", "fp16", "--target", "cpu"]
    )
    assert result.exit_code == 2, result.output
    assert "fp32 or int8" in result.output


@pytest.mark.slow
def test_cpu_int8_build_layout_agreement_and_run(workdir, golden_dir, one_torch_thread):
    weights = str(golden_dir / "tiny_model.npz")
    args = ["build-engine", "--weights", weights, "--precision", "int8", "--target", "cpu", "--input-size",
            "64", "--out", "eng", "--calib-count", "4", "--calib-method", "minmax"]  # fmt: skip
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output  # no TensorRT step for --target cpu
    path = workdir / "eng" / "tiny_model-64-int8-cpu.onnx"
    assert path.is_file(), result.output
    assert "--backend onnxruntime --engine" in result.output

    layout = cpu_int8_layout(path)
    print("layout:", layout)
    assert layout["activation_dtypes"] == {"uint8"}  # u8 activations, not TensorRT's symmetric s8
    assert layout["qlinear_ops"] > 100  # QOperator: the network runs as QLinear* ops (tiny model: ~930)
    assert layout["final_convs"] > 0 and layout["float_final_convs"] == layout["final_convs"]
    assert layout["quantized_ops_in_tail"] == 0  # the flip/projection tail reads float outputs only
    # Quantized outputs: residual adds are int8 ops too (TensorRT's layout quantizes only conv inputs and
    # runs every Add in float), so int8 flows conv -> add -> conv without a float round trip.
    ops = [n.op_type for n in onnx.load(str(path)).graph.node]
    assert ops.count("QLinearAdd") > 0 and ops.count("QLinearConv") > 0

    # The QDQ form of the same layout, from the range cache the build wrote (no second calibration).
    caches = list((workdir / "cache" / "calibration").glob("*.calib.json"))
    assert len(caches) == 1
    qdq = workdir / "qdq.onnx"

    def no_images():
        raise AssertionError("a cached calibration must not read the images again")

    info = quantize_int8_cpu(workdir / "eng" / "tiny_model-64-int8-cpu.fp32.onnx", qdq, calibration_inputs=no_images,
                             method="minmax", cache_path=caches[0], quant_format="qdq")  # fmt: skip
    assert info["cache_hit"] and info["format"] == "qdq"
    qdq_layout = cpu_int8_layout(qdq)
    assert qdq_layout["activation_dtypes"] == {"uint8"} and qdq_layout["dequantize_ops"] > 100
    assert qdq_layout["float_final_convs"] == qdq_layout["final_convs"] > 0
    assert qdq_layout["quantized_ops_in_tail"] == 0
    qdq_model = onnx.load(str(qdq))
    quantized = {n.input[0] for n in qdq_model.graph.node if n.op_type == "QuantizeLinear"}
    adds = [n for n in qdq_model.graph.node if n.op_type == "Add" and n.name.startswith("/network/")]
    assert adds and sum(a.output[0] in quantized for a in adds) >= len(adds) // 2

    side = json.loads((workdir / "eng" / "tiny_model-64-int8-cpu.json").read_text())
    assert side["precision"] == "int8" and side["tensorrt"] is None
    assert side["calibration"]["target"] == "cpu" and side["calibration"]["format"] == "qoperator"
    agreement = side["agreement"]
    print("agreement:", agreement)
    assert "held-out" in agreement["images_from"]
    # Measured on the tiny model (size 64, minmax, 4 calibration images): heatmap max |err| 0.064 (QDQ:
    # 0.078), mean 0.011, peak agreement 0.97 (QDQ: 0.95). The tiny model (random weights, 8..64 channels) quantizes far worse than
    # a trained W32; these bounds catch broken scales or zero points (errors of order 1, peaks near 0).
    assert 0 < agreement["heatmap_max_abs"] < 0.25
    assert agreement["heatmap_mean_abs"] < 0.04
    assert agreement["peak_agreement"] > 0.7

    from hhrnet_rt.runtime.backends.onnxruntime_backend import OnnxRuntimeBackend

    backend = OnnxRuntimeBackend(path, threads=1)
    assert backend.precision == "int8"
    heatmaps, tags = backend.run(np.zeros((1, 3, 64, 96), np.float32))
    assert heatmaps.shape[-2:] == (64, 96) and heatmaps.dtype == np.float32 and np.isfinite(tags).all()
