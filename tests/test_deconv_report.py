"""The per-deconvolution report of an int8 build: TensorRT's engine inspector JSON read on the CPU, the
report line, and the TensorRT build asking for that JSON (through tests/fake_tensorrt.py).

The inspector samples below are made by us, shaped like the detailed JSON NVIDIA documents for
``IEngineInspector.get_engine_information(LayerInformationFormat.JSON)`` ("Layers" objects with Name,
LayerType, Inputs[].Format/Datatype, Weights, Metadata "[ONNX Layer: ...]"); they are not TensorRT output.
"""

from __future__ import annotations

import json
import sys

import pytest

from hhrnet_rt.export.deconv_report import inspector_deconvolutions, report_lines

DECONV = "/network/deconv_layers.0/deconv_layers.0.0/deconv_layers.0.0.0/ConvTranspose"


def _layer(name, fmt, *, metadata="", kind="CaskDeconvolution", weights="Int8"):
    return {
        "Name": name,
        "LayerType": kind,
        "Inputs": [
            {"Name": "x", "Location": "Device", "Dimensions": [1, 64, 32, 32], "Format/Datatype": fmt}
        ],
        "Outputs": [
            {"Name": "y", "Location": "Device", "Dimensions": [1, 32, 64, 64], "Format/Datatype": fmt}
        ],
        "ParameterType": "Deconvolution" if "Deconv" in kind else "",
        "Weights": {"Type": weights, "Count": 1024},
        "Metadata": metadata,
        "TacticName": "sm90_xmma_deconv",
    }


def _info(*layers):
    return json.dumps({"Layers": list(layers), "Bindings": ["image", "heatmaps", "tags"]})


def test_int8_deconvolution_is_found_by_its_fused_name_or_metadata():
    info = _info(
        _layer(
            "/network/final_layers.0/Conv",
            "Thirty-two wide channel vectorized row major Int8 format",
            kind="CaskConvolution",
        ),  # fmt: skip
        # Q/DQ fusion gives a layer a new name; the ONNX node is in its metadata.
        _layer(
            "fused deconv 7",
            "Thirty-two wide channel vectorized row major Int8 format",
            metadata=f"[ONNX Layer: {DECONV}]\x1f[ONNX Layer: /network/deconv_layers.0/Relu]",
        ),  # fmt: skip
    )
    rows = inspector_deconvolutions(info, [DECONV])
    assert rows[DECONV]["int8"] is True and rows[DECONV]["layer"] == "fused deconv 7"


def test_deconvolution_left_in_half_precision_is_not_int8():
    info = _info(
        # The weight's quantize layer names the node too; the convolution layer decides.
        _layer(f"{DECONV} weights quantize", "Row major linear Int8 format", kind="Scale", weights="Float"),
        _layer(
            f"{DECONV} + /network/deconv_layers.0/Relu",
            "Channel major FP16 format where channel % 8 == 0",
            weights="Half",
        ),  # fmt: skip
    )
    row = inspector_deconvolutions(info, [DECONV])[DECONV]
    assert row["int8"] is False and "FP16" in row["format"]


def test_node_names_match_whole_and_odd_inspector_output_gives_none():
    other = _layer(f"{DECONV}_1", "Row major linear Int8 format")  # a different node: ConvTranspose_1
    assert inspector_deconvolutions(_info(other), [DECONV])[DECONV]["int8"] is None
    # Built without detailed profiling verbosity, the inspector lists bare layer names.
    names_only = json.dumps({"Layers": [DECONV], "Bindings": []})
    row = inspector_deconvolutions(names_only, [DECONV])[DECONV]
    assert row["int8"] is None and "no layer details" in row["format"]
    assert inspector_deconvolutions("not json", [DECONV])[DECONV]["int8"] is None
    # No input format given: the weights' type says it.
    bare = {"Name": DECONV, "LayerType": "CaskDeconvolution", "Weights": {"Type": "Int8", "Count": 8}}
    assert inspector_deconvolutions(_info(bare), [DECONV])[DECONV]["int8"] is True


def test_report_line_names_the_deconvolution_its_axis_error_and_engine_precision():
    row = {"name": DECONV, "output": "y", "weight_axis": 0, "scales": 64, "max_abs": 0.0125, "mean_abs": 0.0021,
           "rel_max": 0.031}  # fmt: skip
    (before,) = report_lines([row])
    assert before.startswith(f"deconvolution {DECONV}: weight scales on axis 0 (64)")
    assert "max |err| 0.0125 (3.1% of the fp32 range), mean 0.0021" in before
    assert before.endswith("TensorRT: not built yet")
    (ran,) = report_lines([row], {DECONV: {"int8": True, "layer": "L", "format": "Int8"}})
    assert ran.endswith("TensorRT: int8")
    (fell_back,) = report_lines([row], {DECONV: {"int8": False, "layer": "L", "format": "FP16 format"}})
    assert "TensorRT: NOT int8 (FP16 format); try a rebuild with deconv_weight_axis=1" in fell_back
    (unknown,) = report_lines([{**row, "max_abs": None, "rel_max": None, "mean_abs": None}], {})
    assert "max |err| n/a, mean n/a" in unknown and "TensorRT: unknown" in unknown


@pytest.fixture
def fake_trt(monkeypatch):
    import fake_tensorrt

    monkeypatch.setitem(sys.modules, "tensorrt", fake_tensorrt.make_fake("10.12.0"))
    return fake_tensorrt


def test_engine_build_asks_for_detailed_layers_and_reports_each_deconvolution(
    fake_trt, tmp_path, monkeypatch
):
    import hhrnet_rt.export.tensorrt_build as tb
    from hhrnet_rt.artifacts.shape_profile import default_profile

    monkeypatch.setattr(tb, "gpu_facts", lambda: ("G", (9, 0)))
    fake_trt.FakeInspector.info = _info(_layer(DECONV, "Channel major FP16 format"))
    facts = tb.build_engine(tmp_path / "m.onnx", tmp_path / "m.engine", default_profile(256),
                            deconv_names=[DECONV])  # fmt: skip
    assert fake_trt.Builder.last_config.profiling_verbosity is fake_trt.ProfilingVerbosity.DETAILED
    assert fake_trt.FakeInspector.asked == [fake_trt.LayerInformationFormat.JSON]
    assert facts["deconvolutions"][DECONV]["int8"] is False
    # fp16/fp32 builds name no deconvolutions: no inspector call, no key.
    fake_trt.FakeInspector.asked = []
    facts = tb.build_engine(tmp_path / "m.onnx", tmp_path / "m2.engine", default_profile(256))
    assert "deconvolutions" not in facts and fake_trt.FakeInspector.asked == []
