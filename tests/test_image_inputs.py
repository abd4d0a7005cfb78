"""as_bgr_u8: every odd image either becomes a documented BGR uint8 image or a clear InputError."""

from __future__ import annotations

import numpy as np
import pytest

from hhrnet_rt.core.errors import InputError
from hhrnet_rt.runtime.preprocess import as_bgr_u8


def _bgr(h=5, w=7, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


def test_bgr_u8_passes_through_without_copy():
    img = _bgr()
    assert as_bgr_u8(img) is img


def test_non_contiguous_bgr_becomes_contiguous():
    img = _bgr(10, 10)[::2, ::2]
    out = as_bgr_u8(img)
    assert out.flags.c_contiguous
    np.testing.assert_array_equal(out, img)


@pytest.mark.parametrize("shape", [(5, 7), (5, 7, 1)])
def test_grayscale_is_replicated(shape):
    gray = np.arange(35, dtype=np.uint8).reshape(shape)
    out = as_bgr_u8(gray)
    assert out.shape == (5, 7, 3) and out.dtype == np.uint8
    for c in range(3):
        np.testing.assert_array_equal(out[:, :, c], gray.reshape(5, 7))


def test_bgra_drops_alpha():
    img = _bgr()
    alpha = np.full((5, 7, 1), 17, np.uint8)
    out = as_bgr_u8(np.concatenate([img, alpha], axis=2))
    assert out.flags.c_contiguous
    np.testing.assert_array_equal(out, img)


def test_uint16_keeps_top_byte():
    img16 = np.array([[[0, 255, 256], [65535, 32768, 511]]], np.uint16)
    np.testing.assert_array_equal(as_bgr_u8(img16), [[[0, 0, 1], [255, 128, 1]]])


def test_float_is_clipped_scaled_and_rounded():
    img = np.array([[[0.0, 1.0, 0.5], [-0.2, 1.7, 0.499 / 255 + 0.1]]], np.float32)
    expected = [[[0, 255, 128], [0, 255, 26]]]
    np.testing.assert_array_equal(as_bgr_u8(img), expected)
    np.testing.assert_array_equal(as_bgr_u8(img.astype(np.float64)), expected)


def test_float_nan_is_refused():
    img = np.zeros((2, 2, 3), np.float32)
    img[0, 0, 0] = np.nan
    with pytest.raises(InputError, match="NaN"):
        as_bgr_u8(img)


def test_bool_and_small_ints():
    np.testing.assert_array_equal(as_bgr_u8(np.array([[True, False]]))[0, :, 0], [255, 0])
    np.testing.assert_array_equal(as_bgr_u8(np.full((2, 2, 3), 200, np.int32)), np.full((2, 2, 3), 200))
    with pytest.raises(InputError, match="0..255"):
        as_bgr_u8(np.full((2, 2, 3), 300, np.int32))


@pytest.mark.parametrize(
    "image,match",
    [
        (None, "None"),
        (np.zeros((0, 5, 3), np.uint8), "empty"),
        (np.zeros((5, 0), np.uint8), "empty"),
        (np.zeros((1, 4, 4, 3), np.uint8), "one image at a time"),
        (np.zeros(5, np.uint8), "shape"),
        (np.zeros((4, 4, 2), np.uint8), "channels"),
        (np.zeros((4, 4, 5), np.uint8), "channels"),
        (np.zeros((4, 4, 3), np.complex64), "dtype"),
        (np.array([["a", "b"]]), "dtype"),
    ],
)
def test_bad_images_raise_input_error(image, match):
    with pytest.raises(InputError, match=match):
        as_bgr_u8(image)


def test_nested_list_is_accepted():
    out = as_bgr_u8([[[1, 2, 3]]])
    np.testing.assert_array_equal(out, [[[1, 2, 3]]])
    assert out.dtype == np.uint8
