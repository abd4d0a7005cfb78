"""Official resize-and-align, normalisation and the way back, against golden pipeline/multiscale cases."""

from __future__ import annotations

import json

import numpy as np
import pytest

from hhrnet_rt.core.errors import InputError
from hhrnet_rt.runtime.preprocess import Affine, check_image_hw, multi_scale_size, normalize, resize_align


@pytest.fixture(scope="module")
def resize_cases(golden_dir):
    return json.loads((golden_dir / "pipeline_case.json").read_text())["resize_cases"]


def test_resize_cases_sizes_center_scale_matrices(resize_cases):
    assert len(resize_cases) == 8
    for case in resize_cases:
        size, center, scale = multi_scale_size(case["src_hw"], case["input_size"])
        assert size == tuple(case["resized_wh"]), case
        assert center.tolist() == case["center"]
        np.testing.assert_array_equal(scale, case["scale"])
        affine = Affine.build(center, scale, size)
        # Bit-exact: OpenCV's fixed-point warp weights depend on every bit of the matrix.
        np.testing.assert_array_equal(affine.forward, np.array(case["affine_fwd"]))
        np.testing.assert_array_equal(affine.inverse, np.array(case["affine_inv"]))


def test_resize_case_stored_image(golden_npz, resize_cases):
    z = golden_npz("pipeline_case")
    case = next(c for c in resize_cases if c["src_hw"] == [101, 203])
    resized, affine = resize_align(z["resize_case_101x203_src"], case["input_size"])
    np.testing.assert_array_equal(resized, z["resize_case_101x203_resized"])
    assert int(resized.sum(dtype=np.int64)) == case["resized_checksum_sum"]
    assert affine.size == tuple(case["resized_wh"])


@pytest.mark.parametrize("size", [128, 256])
def test_pipeline_resize_and_normalize(golden_npz, size):
    z = golden_npz("pipeline_case")
    image = z["image_rgb_uint8"]
    resized, affine = resize_align(image, size)
    np.testing.assert_array_equal(resized, z[f"s{size}_resized_uint8"])
    np.testing.assert_array_equal(affine.center, z[f"s{size}_center"])
    np.testing.assert_array_equal(affine.scale, z[f"s{size}_scale"])
    assert affine.size == tuple(z[f"s{size}_base_size_wh"].tolist())
    if size == 128:
        np.testing.assert_array_equal(normalize(resized), z["s128_input"])


def test_bgr_warp_and_lookup_equal_the_official_rgb_path(golden_npz):
    z = golden_npz("pipeline_case")
    bgr = np.ascontiguousarray(z["image_rgb_uint8"][:, :, ::-1])
    resized_bgr, _ = resize_align(bgr, 128)
    x = normalize(resized_bgr, bgr=True)
    np.testing.assert_array_equal(x, z["s128_input"])
    out = np.full_like(x, np.nan)
    assert normalize(resized_bgr, bgr=True, out=out) is out
    np.testing.assert_array_equal(out, z["s128_input"])


def test_normalize_matches_official_float32_formula():
    # Every grey level of every channel, computed the torchvision way in float32.
    rng = np.random.default_rng(0)
    img = rng.integers(0, 256, (16, 16, 3), dtype=np.uint8)
    img[0, :3] = [[0, 0, 0], [255, 255, 255], [128, 1, 254]]
    t = img.transpose(2, 0, 1).astype(np.float32) / np.float32(255)
    mean = np.array([0.485, 0.456, 0.406], np.float32)[:, None, None]
    std = np.array([0.229, 0.224, 0.225], np.float32)[:, None, None]
    np.testing.assert_array_equal(normalize(img)[0], (t - mean) / std)


def test_normalize_rejects_non_u8():
    with pytest.raises(InputError, match="uint8"):
        normalize(np.zeros((4, 4, 3), np.float32))


@pytest.mark.parametrize("prefix,scale", [("2p0", 2.0), ("1p0", 1.0), ("0p5", 0.5)])
def test_multiscale_resize(golden_npz, prefix, scale):
    m = golden_npz("multiscale_case")
    resized, affine = resize_align(m["image_rgb_uint8"], 128, scale, 0.5)
    np.testing.assert_array_equal(resized, m[f"scale{prefix}_resized_uint8"])
    np.testing.assert_array_equal(normalize(resized), m[f"scale{prefix}_input"])
    np.testing.assert_array_equal(affine.center, m[f"scale{prefix}_center"])
    np.testing.assert_array_equal(affine.scale, m[f"scale{prefix}_scale"])
    assert affine.size == tuple(m[f"scale{prefix}_size_wh"].tolist())


def test_multiscale_base_size_rounds_at_smallest_scale(golden_npz):
    m = golden_npz("multiscale_case")
    size, center, scale = multi_scale_size((480, 640), 128, 1.0, 0.5)
    assert size == tuple(m["base_size_wh"].tolist()) == (256, 128)
    np.testing.assert_array_equal(center, m["center"])
    np.testing.assert_array_equal(scale, m["scale"])
    assert multi_scale_size((480, 640), 128)[0] == (192, 128)  # single-scale differs


def test_final_preds_check(golden_npz):
    z = golden_npz("pipeline_case")
    affine = Affine.build(z["s256_center"], z["s256_scale"], (384, 256))
    inp = z["final_preds_check_in"]
    out = inp.copy()
    out[..., :2] = affine.to_image(inp[..., :2])
    np.testing.assert_array_equal(out, z["final_preds_check_out"])
    assert affine.to_image(inp[..., :2]).dtype == np.float32


def test_to_image_inverts_forward():
    affine = Affine.build(*multi_scale_size((427, 640), 512)[1:], multi_scale_size((427, 640), 512)[0])
    pts = np.array([[0.0, 0.0], [639.0, 426.0], [100.5, 200.25]])
    fwd = pts @ affine.forward[:, :2].T + affine.forward[:, 2]
    np.testing.assert_allclose(affine.to_image(fwd), pts, atol=1e-3)


def test_extreme_aspect_ratio_is_refused():
    with pytest.raises(InputError, match="aspect ratio"):
        resize_align(np.zeros((1, 100000, 3), np.uint8), 512)


@pytest.mark.parametrize("bad", [(0, 640), (480,), (480.5, 640), ("a", 640), None, (480, 640, 3)])
def test_image_hw_must_be_two_positive_integers(bad):
    """warmup(image_hw): anything but two positive ints is one InputError that shows what was given."""
    with pytest.raises(InputError, match="image_hw must be two positive integers"):
        check_image_hw(bad)
    assert check_image_hw((480, 640)) == (480, 640)
