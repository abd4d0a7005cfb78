"""Checkpoint loading: pure remap on synthetic dicts, the official/MMPose/fp16 forms, and bad files."""

from __future__ import annotations

from collections import OrderedDict

import numpy as np
import pytest
import torch

from hhrnet_rt.core.errors import WeightsError
from hhrnet_rt.model.higherhrnet import HigherHRNet
from hhrnet_rt.model.remap import remap_state_dict
from hhrnet_rt.model.spec import ModelSpec
from hhrnet_rt.model.weights import build_from_checkpoint, load_weights, read_checkpoint

TINY_WIDTHS = ((8, 16), (8, 16, 32), (8, 16, 32, 64))


# ---------------------------------------------------------------------------------------------- remap
def _synthetic() -> OrderedDict[str, torch.Tensor]:
    return OrderedDict(
        [
            ("conv1.weight", torch.ones(2, 3, 3, 3)),
            ("bn1.num_batches_tracked", torch.tensor(7)),
            ("final_layers.0.bias", torch.arange(3.0)),
        ]
    )


def test_remap_plain_dict_is_unchanged_and_input_untouched():
    sd = _synthetic()
    out = remap_state_dict(sd)
    assert list(out) == list(sd)
    assert out is not sd and list(sd) == ["conv1.weight", "bn1.num_batches_tracked", "final_layers.0.bias"]


@pytest.mark.parametrize("prefix", ["module.", "1.", "module.1."])
def test_remap_strips_wrapper_prefixes(prefix):
    sd = OrderedDict((prefix + k, v) for k, v in _synthetic().items())
    assert list(remap_state_dict(sd)) == list(_synthetic())


def test_remap_mmpose_container_and_prefixes():
    inner = OrderedDict(
        [
            ("backbone.conv1.weight", torch.ones(2, 3, 3, 3)),
            ("backbone.bn1.num_batches_tracked", torch.tensor(7)),
            ("keypoint_head.final_layers.0.bias", torch.arange(3.0)),
        ]
    )
    ckpt = {"meta": {"epoch": 300, "config": "model = dict(...)"}, "state_dict": inner, "optimizer": {}}
    out = remap_state_dict(ckpt)
    assert list(out) == list(_synthetic())
    assert torch.equal(out["final_layers.0.bias"], torch.arange(3.0))


def test_remap_casts_fp16_and_numpy_and_keeps_ints():
    sd = {
        "a.weight": torch.ones(2, dtype=torch.float16),
        "b.weight": np.full((2, 2), 0.5, np.float32),
        "bn.num_batches_tracked": np.array(3, np.int64),
    }
    out = remap_state_dict(sd)
    assert out["a.weight"].dtype == torch.float32
    assert isinstance(out["b.weight"], torch.Tensor) and out["b.weight"].shape == (2, 2)
    assert out["bn.num_batches_tracked"].dtype == torch.int64 and out["bn.num_batches_tracked"].shape == ()
    assert sd["a.weight"].dtype == torch.float16  # input not modified


def test_remap_only_strips_a_prefix_every_key_has():
    sd = {"1.x": torch.zeros(1), "conv1.weight": torch.zeros(1)}
    assert set(remap_state_dict(sd)) == {"1.x", "conv1.weight"}


# ----------------------------------------------------------------------------------- real layouts
@pytest.fixture(scope="module")
def tiny_sd(golden_npz):
    return remap_state_dict(golden_npz("tiny_model"))


@pytest.fixture(scope="module")
def tiny_inputs(golden_npz):
    fw = golden_npz("tiny_forward")
    return [torch.from_numpy(fw[f"input_{i}"]) for i in range(2)], fw


def _run(model, xs):
    with torch.no_grad():
        return [model(x) for x in xs]


# The same weights give the golden outputs only up to float32 summation order: convolution kernels differ
# by CPU (an AVX-512 machine is off by up to 5.8e-6 on outputs of magnitude up to 11: about 6 float32
# ulps of those values). 1e-4 is ~17x that; a wrong mapping moves outputs by 2e-2 or more (two
# swapped same-shaped layer1 kernels, the smallest effect found; see test_a_wrong_mapping_is_caught).
SAME_WEIGHTS_ATOL = 1e-4


def assert_same_forward(actual: torch.Tensor, expected: np.ndarray) -> None:
    np.testing.assert_allclose(actual.numpy(), expected, rtol=0, atol=SAME_WEIGHTS_ATOL)


def _bn_keys(sd) -> set[str]:
    model = HigherHRNet(ModelSpec.from_state_dict(sd))
    keys = set()
    for name, mod in model.named_modules():
        if isinstance(mod, torch.nn.BatchNorm2d):
            keys |= {f"{name}.{k}" for k in mod.state_dict()}
    return keys


def test_official_fp16_wrapped_form_loads(tmp_path, tiny_sd, tiny_inputs):
    # tools/valid.py's network_to_half: keys "1.<key>", every tensor fp16 except BatchNorm's.
    bn = _bn_keys(tiny_sd)
    half = OrderedDict(
        ("1." + k, v if k in bn or not v.is_floating_point() else v.half()) for k, v in tiny_sd.items()
    )
    assert sum(v.dtype == torch.float16 for v in half.values()) == 305
    path = tmp_path / "pose_higher_hrnet_w8_640.pth"
    torch.save(half, path)
    model, spec = build_from_checkpoint(path)
    assert not model.training and spec.input_size == 640  # size read from the file name
    xs, fw = tiny_inputs
    for i, out in enumerate(_run(model, xs)):
        for j in range(2):
            # Tolerance: the golden tiny conv weights lie on a power-of-two grid and survive fp16 exactly;
            # what changes are the final-layer biases (|bias| up to 6.6; fp16 half-spacing in [4, 8) is
            # 2^-9 = 1.95e-3). Measured max |diff|: 1.2e-4 (1/4 output), 1.75e-3 (1/2 output). 2.5e-3
            # covers that rounding and nothing else (the fp32 form is checked to SAME_WEIGHTS_ATOL below).
            np.testing.assert_allclose(out[j].numpy(), fw[f"output_{i}_{j}"], atol=2.5e-3, rtol=0)


def test_mmpose_form_loads_to_the_golden_outputs(tmp_path, tiny_sd, tiny_inputs):
    n_backbone = 0
    inner = OrderedDict()
    for k, v in tiny_sd.items():
        head = k.startswith(("final_layers.", "deconv_layers."))
        n_backbone += not head
        inner[("keypoint_head." if head else "backbone.") + k] = v
    meta = {"mmcv_version": "1.0.0", "epoch": 300, "config": "model = dict(type='BottomUp')", "seed": None}
    path = tmp_path / "higher_hrnet8_coco_512x512-00000000_20200713.pth"
    torch.save({"meta": meta, "state_dict": inner}, path)
    assert n_backbone == 1752
    model, spec = build_from_checkpoint(path)
    assert spec.num_joints == 17 and spec.width == 8 and spec.input_size == 512
    xs, fw = tiny_inputs
    for i, out in enumerate(_run(model, xs)):
        for j in range(2):
            assert_same_forward(out[j], fw[f"output_{i}_{j}"])


def test_module_prefix_and_npz_file_load(tmp_path, tiny_sd, tiny_inputs):
    torch.save(OrderedDict(("module." + k, v) for k, v in tiny_sd.items()), tmp_path / "dp.pt")
    model = load_weights(HigherHRNet(ModelSpec.from_state_dict(tiny_sd)), tmp_path / "dp.pt").eval()
    xs, fw = tiny_inputs
    assert_same_forward(_run(model, xs[:1])[0][1], fw["output_0_1"])


def test_a_wrong_mapping_is_caught(tiny_sd, tiny_inputs):
    """The tolerance above still fails a mapping that swaps two same-shaped kernels (the mildest found)."""
    swapped = OrderedDict(tiny_sd)
    a, b = "layer1.2.conv1.weight", "layer1.3.conv1.weight"
    assert swapped[a].shape == swapped[b].shape and not torch.equal(swapped[a], swapped[b])
    swapped[a], swapped[b] = swapped[b], swapped[a]
    model = HigherHRNet(ModelSpec.from_state_dict(swapped))
    model.load_state_dict(swapped)
    xs, fw = tiny_inputs
    out = _run(model.eval(), xs[:1])[0]
    with pytest.raises(AssertionError):
        assert_same_forward(out[0], fw["output_0_0"])
    with pytest.raises(AssertionError):
        assert_same_forward(out[1], fw["output_0_1"])


# --------------------------------------------------------------------------------------- bad files
@pytest.fixture()
def tiny_pth(tmp_path, tiny_sd):
    path = tmp_path / "tiny.pth"
    torch.save(tiny_sd, path)
    return path


def test_truncated_file(tmp_path, tiny_pth):
    data = tiny_pth.read_bytes()
    bad = tmp_path / "cut.pth"
    bad.write_bytes(data[: len(data) // 2])
    with pytest.raises(WeightsError, match=r"truncated or corrupt.*download it again"):
        read_checkpoint(bad)


@pytest.mark.parametrize(
    ("content", "what"),
    [
        (b"this is a README, not weights\n", "text file"),
        (b"\xff\xd8\xff\xe0\x00\x10JFIF\x00" + bytes(range(256)), "JPEG image"),
        (b"<!DOCTYPE html><html><body>404</body></html>", "HTML page"),
        (b"", "empty"),
    ],
)
def test_not_a_checkpoint(tmp_path, content, what):
    path = tmp_path / "weights.pth"
    path.write_bytes(content)
    with pytest.raises(WeightsError, match="not a PyTorch checkpoint") as info:
        read_checkpoint(path)
    assert what in str(info.value)


class _Payload:
    """Pickles as a call to open(marker, "w"): running it would create the marker file."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


def test_pickle_with_code_is_refused_and_never_runs(tmp_path, tiny_sd):
    marker = tmp_path / "code_ran"
    path = tmp_path / "evil.pth"
    torch.save({"state_dict": tiny_sd, "payload": _Payload(marker)}, path)
    assert not marker.exists()
    with pytest.raises(WeightsError, match="refused") as info:
        build_from_checkpoint(path)
    msg = str(info.value)
    assert "open" in msg and "run code" in msg and "state_dict" in msg
    assert not marker.exists()


def test_missing_file():
    with pytest.raises(WeightsError, match="not found"):
        read_checkpoint("/nonexistent/w32.pth")


def test_unknown_name_lists_named_weights():
    with pytest.raises(WeightsError, match="named weights: w32_512, w32_640, w48_512") as info:
        build_from_checkpoint("w48_640")
    assert "official repository" in str(info.value)


def test_wrong_architecture_is_described(tiny_pth):
    with pytest.raises(WeightsError) as info:
        load_weights(HigherHRNet(ModelSpec.preset("w32_512")), tiny_pth)
    msg = str(info.value)
    assert "a W32 model with 17 joints" in msg
    assert "looks like a W8 HigherHRNet checkpoint with 17 joints" in msg
    assert "wrong shape" in msg and "conv1.weight" not in msg.split("wrong shape")[0][-200:]


def test_wrong_joint_count_is_described(tmp_path):
    spec14 = ModelSpec(stage_channels=TINY_WIDTHS, deconv_channels=(8,), num_joints=14)
    path = tmp_path / "crowdpose.pth"
    torch.save(HigherHRNet(spec14).state_dict(), path)
    spec17 = spec14.replace(num_joints=17)
    with pytest.raises(WeightsError) as info:
        load_weights(HigherHRNet(spec17), path)
    msg = str(info.value)
    assert "with 14 joints" in msg and "final_layers.0.weight (28, 8, 1, 1) (model: (34, 8, 1, 1))" in msg
    # ... while building from the file itself gives the 14-joint network.
    model, spec = build_from_checkpoint(path)
    assert spec.num_joints == 14


def test_missing_and_unexpected_keys_are_listed(tiny_sd):
    sd = OrderedDict(tiny_sd)
    del sd["conv1.weight"]
    sd["extra.weight"] = torch.zeros(1)
    with pytest.raises(WeightsError) as info:
        load_weights(HigherHRNet(ModelSpec.from_state_dict(tiny_sd)), sd)
    msg = str(info.value)
    assert "1 missing: conv1.weight" in msg and "1 unexpected: extra.weight" in msg


def test_numpy_values_in_meta_are_data_not_code(tmp_path, tiny_sd):
    # Frameworks keep numpy scalars/arrays in 'meta'; numpy's rebuild functions only create arrays.
    meta = {"seed": np.int64(3), "mean": np.arange(3.0), "dtype": np.dtype("float32")}
    torch.save({"meta": meta, "state_dict": tiny_sd}, tmp_path / "np_meta.pth")
    model, spec = build_from_checkpoint(tmp_path / "np_meta.pth")
    assert spec.width == 8
    # ... but numpy values do not open the door for anything else.
    marker = tmp_path / "code_ran"
    torch.save({"meta": meta, "state_dict": tiny_sd, "x": _Payload(marker)}, tmp_path / "mixed.pth")
    with pytest.raises(WeightsError, match="refused"):
        read_checkpoint(tmp_path / "mixed.pth")
    assert not marker.exists()


def test_random_network_is_seeded_and_leaves_the_callers_rng_alone():
    from hhrnet_rt.model.digest import state_dict_digest
    from hhrnet_rt.model.weights import random_network

    torch.manual_seed(123)
    expected_next = torch.rand(3)
    torch.manual_seed(123)
    a, b = random_network(), random_network()
    assert torch.equal(torch.rand(3), expected_next)  # caller's RNG untouched
    assert state_dict_digest(a) == state_dict_digest(b)
    assert state_dict_digest(random_network(seed=1)) != state_dict_digest(a)


def test_state_dict_digest_sees_one_changed_value():
    from hhrnet_rt.model.digest import state_dict_digest

    net = torch.nn.Sequential(torch.nn.Conv2d(1, 2, 1), torch.nn.BatchNorm2d(2))
    before = state_dict_digest(net)
    with torch.no_grad():
        net[1].running_var[1] += 1e-6
    assert state_dict_digest(net) != before
