"""ONNX export: dynamic N/H/W really work in ONNX Runtime, fp16 graph agreement, both exporters."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from hhrnet_rt.model.onnx_export import compare_onnx_with_torch, export_onnx

IO = dict(
    input_names=["image"],
    output_names=["out4", "out2"],
    dynamic_axes={
        "image": {0: "N", 2: "H", 3: "W"},
        "out4": {0: "N", 2: "H4", 3: "W4"},
        "out2": {0: "N", 2: "H2", 3: "W2"},
    },
)
EXAMPLE = torch.zeros(1, 3, 128, 128)  # neither of the golden sizes (256x256, 320x192) nor batch 2


@pytest.fixture(scope="module")
def golden_runs(golden_npz):
    fw = golden_npz("tiny_forward")
    x0, x1 = torch.from_numpy(fw["input_0"]), torch.from_numpy(fw["input_1"])
    return [x0, torch.cat([x1, x1.flip(3)])]  # 256x256, and a batch of 2 at 320x192


def _dims(value_info) -> list:
    return [d.dim_param or d.dim_value for d in value_info.type.tensor_type.shape.dim]


def test_fp32_export_matches_torch_at_other_sizes(tmp_path, tiny_network, golden_runs, golden_npz):
    path = export_onnx(tiny_network, tmp_path / "tiny.onnx", example_input=EXAMPLE, **IO)
    assert path.is_file() and [p.name for p in tmp_path.iterdir()] == ["tiny.onnx"]  # no temp file left
    model = onnx.load(str(path))
    assert max(o.version for o in model.opset_import if o.domain in ("", "ai.onnx")) >= 17
    assert _dims(model.graph.input[0]) == ["N", 3, "H", "W"]
    assert [_dims(o)[:2] for o in model.graph.output] == [["N", 34], ["N", 17]]

    errors = compare_onnx_with_torch(tiny_network, path, golden_runs)
    assert set(errors) == {"out4", "out2", "max"}
    assert errors["max"] <= 1e-4, errors

    # And against the official outputs directly (not only against our torch module).
    import onnxruntime as ort

    fw = golden_npz("tiny_forward")
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    out4, out2 = sess.run(None, {"image": fw["input_1"]})
    np.testing.assert_allclose(out4, fw["output_1_0"], atol=1e-4, rtol=1e-4)
    np.testing.assert_allclose(out2, fw["output_1_1"], atol=1e-4, rtol=1e-4)


def test_fp16_graph_with_fp32_io(tmp_path, tiny_network, golden_runs):
    path = export_onnx(tiny_network, tmp_path / "tiny_fp16.onnx", example_input=EXAMPLE, fp16=True, **IO)
    model = onnx.load(str(path))
    f32, f16 = onnx.TensorProto.FLOAT, onnx.TensorProto.FLOAT16
    assert [v.type.tensor_type.elem_type for v in (*model.graph.input, *model.graph.output)] == [f32] * 3
    weights = [t for t in model.graph.initializer if len(t.dims) == 4]
    assert weights and all(t.data_type == f16 for t in weights)  # conv weights really are half precision

    errors = compare_onnx_with_torch(tiny_network, path, golden_runs)
    with torch.no_grad():
        peak = max(float(o.abs().max()) for x in golden_runs for o in tiny_network(x))
    # Tolerance: float16 keeps 11 significant bits (relative step 2^-11 = 4.9e-4); through ~100 conv
    # layers and outputs up to |11|, the measured max abs error vs the fp32 module is 4.3e-3 (0.04% of
    # the output range). 1.5e-2 leaves ~3.5x headroom for other CPU kernels, while a real precision
    # bug (an fp16 overflow, a BN left unfolded in the wrong dtype) would be orders of magnitude larger.
    assert errors["max"] <= 1.5e-2, errors
    assert errors["max"] / peak <= 2e-3
    assert errors["max"] > 0  # it really is a different (half-precision) computation


class _ShapeOps(nn.Module):
    """The shape-dependent operations of the pose graph, small enough to export in a few seconds."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, stride=4, padding=1)
        self.up = nn.Upsample(scale_factor=2, mode="nearest")

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        y = self.up(self.conv(x))  # 1/2 resolution, nearest with a scale factor
        z = F.interpolate(y, size=x.shape[2:], mode="bilinear", align_corners=False)  # size from input
        return z + torch.flip(z, [3]), y


@pytest.mark.parametrize("exporter", ["torchscript", "dynamo"])
def test_both_exporters_give_dynamic_shapes(tmp_path, exporter):
    torch.manual_seed(0)
    module = _ShapeOps().eval()
    path = export_onnx(
        module,
        tmp_path / f"{exporter}.onnx",
        example_input=torch.zeros(1, 3, 64, 64),
        input_names=["image"],
        output_names=["full", "half"],
        dynamic_axes={"image": {0: "N", 2: "H", 3: "W"}},
        exporter=exporter,
    )
    runs = [torch.randn(1, 3, 96, 160), torch.randn(3, 3, 32, 224)]
    errors = compare_onnx_with_torch(module, path, runs)
    assert errors["max"] <= 1e-5, errors
    assert sorted(p.name for p in tmp_path.iterdir()) == [f"{exporter}.onnx"]


def test_bad_arguments(tmp_path, tiny_network):
    with pytest.raises(ValueError, match="opset"):
        export_onnx(tiny_network, tmp_path / "x.onnx", example_input=EXAMPLE, opset=13, **IO)
    with pytest.raises(ValueError, match="eval"):
        export_onnx(nn.BatchNorm2d(3).train(), tmp_path / "x.onnx", example_input=EXAMPLE, **IO)
    with pytest.raises(ValueError, match="exporter"):
        export_onnx(tiny_network, tmp_path / "x.onnx", example_input=EXAMPLE, exporter="tvm", **IO)
    assert not any(tmp_path.iterdir())
