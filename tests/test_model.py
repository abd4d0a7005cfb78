"""HigherHRNet architecture: official key layout, parameter counts, golden forward, spec inference."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from hhrnet_rt.core.errors import InputError, WeightsError
from hhrnet_rt.model.higherhrnet import HigherHRNet
from hhrnet_rt.model.spec import ModelSpec, nearest_valid_sizes
from hhrnet_rt.model.weights import load_weights


def _manifest(model: torch.nn.Module) -> list[list]:
    return [[k, list(v.shape), str(v.dtype).removeprefix("torch.")] for k, v in model.state_dict().items()]


@pytest.mark.parametrize(
    ("preset", "golden", "params"),
    [("w32_512", "w32_512_keys.json", 28_645_331), ("w48_640", "w48_640_keys.json", 63_827_139)],
)
def test_state_dict_equals_official_manifest(golden_dir, preset, golden, params):
    expected = json.loads((golden_dir / golden).read_text())
    model = HigherHRNet(ModelSpec.preset(preset))
    assert _manifest(model) == expected["state_dict"]  # names, order, shapes and dtypes
    n_params = sum(p.numel() for p in model.parameters())
    assert n_params == params == expected["num_parameters"]


def test_w32_640_has_w32_512_layout():
    a, b = HigherHRNet(ModelSpec.preset("w32_640")), HigherHRNet(ModelSpec.preset("w32_512"))
    assert _manifest(a) == _manifest(b)
    assert ModelSpec.preset("w32_640").input_size == 640
    assert ModelSpec.preset("w48_512").input_size == 512
    assert ModelSpec.preset("w48_512").width == 48


def test_unknown_preset_names_the_choices():
    with pytest.raises(ValueError, match="w32_512"):
        ModelSpec.preset("w64")


@pytest.fixture(scope="module")
def tiny_cfg(golden_dir):
    return json.loads((golden_dir / "tiny_model.json").read_text())


@pytest.mark.parametrize("how", ["from_official", "from_state_dict"])
def test_tiny_model_reproduces_golden_forward(golden_npz, tiny_cfg, how):
    weights = golden_npz("tiny_model")
    spec = (
        ModelSpec.from_official(tiny_cfg["MODEL"])
        if how == "from_official"
        else ModelSpec.from_state_dict(weights)
    )
    model = load_weights(HigherHRNet(spec), weights).eval()
    fw = golden_npz("tiny_forward")
    with torch.no_grad():
        for i in range(2):
            out = model(torch.from_numpy(fw[f"input_{i}"]))
            assert len(out) == 2
            for j in range(2):
                np.testing.assert_allclose(out[j].numpy(), fw[f"output_{i}_{j}"], atol=1e-4, rtol=1e-4)


def test_spec_inference_agrees_with_official_config(golden_npz, tiny_cfg):
    official = ModelSpec.from_official(tiny_cfg["MODEL"])
    inferred = ModelSpec.from_state_dict(golden_npz("tiny_model"))
    assert inferred.replace(name=official.name) == official
    assert inferred.stage_channels == ((8, 16), (8, 16, 32), (8, 16, 32, 64))
    # Full-size presets round-trip through their own random-init state dicts.
    for preset in ("w32_512", "w48_640"):
        spec = ModelSpec.preset(preset)
        sd = HigherHRNet(spec).state_dict()
        assert ModelSpec.from_state_dict(sd, input_size=spec.input_size).replace(name=preset) == spec


def test_crowdpose_14_joints_shapes():
    spec = ModelSpec(
        stage_channels=((8, 16), (8, 16, 32), (8, 16, 32, 64)), deconv_channels=(8,), num_joints=14
    )
    model = HigherHRNet(spec).eval()
    with torch.no_grad():
        out4, out2 = model(torch.zeros(2, 3, 64, 96))
    assert out4.shape == (2, 28, 16, 24)
    assert out2.shape == (2, 14, 32, 48)
    assert ModelSpec.from_state_dict(model.state_dict()).num_joints == 14


def test_tag_per_joint_false_gives_one_tag_map():
    spec = ModelSpec(
        stage_channels=((8, 16), (8, 16, 32), (8, 16, 32, 64)), deconv_channels=(8,), tag_per_joint=False
    )
    model = HigherHRNet(spec)
    assert model.final_layers[0].out_channels == 18
    inferred = ModelSpec.from_state_dict(model.state_dict())
    assert inferred.tag_per_joint is False and inferred.num_joints == 17


@pytest.mark.parametrize(
    ("h", "w", "hint"), [(250, 256, "height 250 -> 224 or 256"), (256, 330, "width 330 -> 320 or 352")]
)
def test_size_not_multiple_of_32_is_a_clear_input_error(h, w, hint):
    spec = ModelSpec(stage_channels=((8, 16), (8, 16, 32), (8, 16, 32, 64)), deconv_channels=(8,))
    model = HigherHRNet(spec).eval()
    with pytest.raises(InputError, match=hint) as info:
        model(torch.zeros(1, 3, h, w))
    assert isinstance(info.value, ValueError)
    assert f"{h}x{w}" in str(info.value)


def test_nearest_valid_sizes():
    assert nearest_valid_sizes(500) == (480, 512)
    assert nearest_valid_sizes(512) == (512, 512)
    assert nearest_valid_sizes(10) == (32, 32)


def test_from_state_dict_rejects_foreign_dicts():
    with pytest.raises(WeightsError, match="not a HigherHRNet state dict"):
        ModelSpec.from_state_dict({"fc.weight": torch.zeros(3, 3)})


def test_from_official_accepts_a_whole_config(tiny_cfg):
    whole = {
        "MODEL": tiny_cfg["MODEL"],
        "LOSS": {"WITH_AE_LOSS": [True, False]},
        "DATASET": {"INPUT_SIZE": 640},
    }
    spec = ModelSpec.from_official(whole)
    assert spec == ModelSpec.from_official(tiny_cfg["MODEL"], input_size=640)
    whole["LOSS"] = {"WITH_AE_LOSS": [False, False]}
    assert ModelSpec.from_official(whole).head_channels(0) == 17
    with pytest.raises(ValueError, match="EXTRA"):
        ModelSpec.from_official({"NUM_JOINTS": 17})
