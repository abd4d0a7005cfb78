"""Official resize-and-align, normalisation and the affine record for the way back.

Reproduces ``utils/transforms.py`` of the official HigherHRNet code bit-exactly: the short side becomes
the input size, the long side is rounded up to a multiple of 64 and zero-padded symmetrically about
``center`` by ``cv2.warpAffine`` with a float32-derived matrix (OpenCV's fixed-point bilinear weights
depend on that matrix, so numpy/torch resizing would differ by one grey level here and there).

Example:
    >>> resized, affine = resize_align(image_rgb, 512)          # doctest: +SKIP
    >>> x = normalize(resized)                                 # (1, 3, h, w) float32
    >>> xy_image = affine.to_image(xy_in_map_pixels)           # back to original-image pixels
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np

from hhrnet_rt.core.errors import ImageShapeError, InputError, option

MEAN = np.array([0.485, 0.456, 0.406], np.float32)
STD = np.array([0.229, 0.224, 0.225], np.float32)

# Refuse inputs whose resized size would be absurd (e.g. a 1x10000 strip at input size 512 becomes
# 512 x 5 million pixels); the warp alone would need gigabytes. A second line behind max_aspect, for
# large test scales and direct calls of resize_align.
MAX_RESIZED_PIXELS = 64 * 1024 * 1024
#: The default bound on the network input: its area at most this many times the square of its short side
#: (the input size), i.e. aspect ratios up to 4:1. A 233-byte 1x250 PNG would otherwise become a
#: 512x128000 input (3 GB of activations) that passes every size limit on the file itself.
DEFAULT_MAX_ASPECT = 4.0


def _ceil64(x: float) -> int:
    # Exactly the official int((x + 63) // 64 * 64), including its float arithmetic.
    return int((x + 63) // 64 * 64)


def multi_scale_size(
    image_hw: tuple[int, int], input_size: int, scale: float = 1.0, min_scale: float = 1.0
) -> tuple[tuple[int, int], np.ndarray, np.ndarray]:
    """Official ``get_multi_scale_size``: resized (w, h), center (int64) and scale (float64, in 200 px).

    The 64-rounding is done at ``min_scale`` and then multiplied by ``scale / min_scale``, so with
    several test scales the size at scale 1.0 can differ from a single-scale run.
    """
    h, w = int(image_hw[0]), int(image_hw[1])
    center = np.array([int(w / 2.0 + 0.5), int(h / 2.0 + 0.5)])
    min_input_size = _ceil64(min_scale * input_size)
    if w < h:
        w_resized = int(min_input_size * scale / min_scale)
        h_resized = int(_ceil64(min_input_size / w * h) * scale / min_scale)
        scale_w = w / 200.0
        scale_h = h_resized / w_resized * w / 200.0
    else:
        h_resized = int(min_input_size * scale / min_scale)
        w_resized = int(_ceil64(min_input_size / h * w) * scale / min_scale)
        scale_h = h / 200.0
        scale_w = w_resized / h_resized * h / 200.0
    return (w_resized, h_resized), center, np.array([scale_w, scale_h])


def check_image_hw(image_hw: Sequence[int]) -> tuple[int, int]:
    """``(height, width)`` as two positive ints, or an :class:`InputError` that says what was given."""
    try:
        h, w = (int(v) for v in image_hw)
        ok = (h, w) == tuple(image_hw) and h > 0 and w > 0
    except (TypeError, ValueError):
        ok = False
    if not ok:
        raise InputError(f"image_hw must be two positive integers (height, width), got {image_hw!r}")
    return h, w


def check_aspect(image_hw: tuple[int, int], input_size: int, max_aspect: float = DEFAULT_MAX_ASPECT) -> None:
    """Refuse an image whose network input (at scale 1) would exceed ``max_aspect`` x ``input_size``²:
    the one home of that bound, for every caller of the estimator (CLI, server, Ray workers, library).

    Raises:
        ImageShapeError: with the image's aspect ratio, the bound and how to raise it.
    """
    (w, h), _, _ = multi_scale_size(image_hw, input_size)
    short = min(w, h)
    if short > 0 and w * h <= max_aspect * short * short:
        return
    ih, iw = int(image_hw[0]), int(image_hw[1])
    needed = math.ceil(w * h / max(short, 1) ** 2)
    raise ImageShapeError(
        f"an image of {iw}x{ih} pixels (aspect ratio {max(iw, ih) / max(min(iw, ih), 1):.3g}:1) would become "
        f"a {w}x{h} network input; the bound is {max_aspect:g}:1 (area {max_aspect:g} x {input_size}²): "
        f"crop the image, or raise the bound with {option('max_aspect', needed)}"
    )


def check_resized(
    image_hw: tuple[int, int], size: tuple[int, int], input_size: int, scale: float = 1.0
) -> None:
    """The absolute bound (:data:`MAX_RESIZED_PIXELS`) on one resized size, whatever ``max_aspect`` says."""
    if size[0] <= 0 or size[1] <= 0 or size[0] * size[1] > MAX_RESIZED_PIXELS:
        raise ImageShapeError(
            f"an image of {image_hw[1]}x{image_hw[0]} pixels would be resized to {size[0]}x{size[1]} "
            f"at input size {input_size} and scale {scale}; crop it to a less extreme aspect ratio"
        )


def affine_matrix(center, scale, output_size, *, inverse: bool = False) -> np.ndarray:
    """Official ``get_affine_transform(center, scale, rot=0, output_size, inv)`` as a (2, 3) float64 matrix.

    The official code builds three float32 point pairs from the *width* of ``scale * 200`` only (so the
    transform is isotropic) and asks ``cv2.getAffineTransform`` for the matrix; the float32 rounding of
    those points is part of the result, so it is kept.
    """
    scale_px = np.asarray(scale, np.float64) * 200.0
    src_w = scale_px[0]
    dst_w, dst_h = output_size[0], output_size[1]
    center = np.asarray(center)
    # rot = 0: the rotated direction vector is (0*cos - v*sin, 0*sin + v*cos) with sin=0, cos=1.
    src_dir = np.array([0.0, src_w * -0.5])
    dst_dir = np.array([0, dst_w * -0.5], np.float32)
    src = np.zeros((3, 2), np.float32)
    dst = np.zeros((3, 2), np.float32)
    src[0] = center
    src[1] = center + src_dir
    dst[0] = [dst_w * 0.5, dst_h * 0.5]
    dst[1] = np.array([dst_w * 0.5, dst_h * 0.5]) + dst_dir
    src[2] = _third_point(src[0], src[1])
    dst[2] = _third_point(dst[0], dst[1])
    if inverse:
        return cv2.getAffineTransform(dst, src)
    return cv2.getAffineTransform(src, dst)


def _third_point(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    # b + (a - b) rotated by 90 degrees, in float32 like the official helper.
    d = a - b
    return b + np.array([-d[1], d[0]], np.float32)


@dataclass(frozen=True, eq=False)
class Affine:
    """How an image was resized into the network input, and the way back.

    Attributes:
        center: (2,) int64 image point mapped to the map centre (official ``center``).
        scale: (2,) float64 official ``scale`` (size of the mapped image region / 200).
        size: (w, h) of the maps the coordinates live in (the network input under PROJECT2IMAGE;
            the scale-1.0 base size with several test scales).
        forward: (2, 3) float64 image -> map matrix.
        inverse: (2, 3) float64 map -> image matrix (official ``get_affine_transform(..., inv=1)``).
    """

    center: np.ndarray
    scale: np.ndarray
    size: tuple[int, int]
    forward: np.ndarray
    inverse: np.ndarray

    @classmethod
    def build(cls, center, scale, size: tuple[int, int]) -> Affine:
        size = (int(size[0]), int(size[1]))
        return cls(
            center=np.asarray(center),
            scale=np.asarray(scale, np.float64),
            size=size,
            forward=affine_matrix(center, scale, size),
            inverse=affine_matrix(center, scale, size, inverse=True),
        )

    def to_image(self, xy: np.ndarray) -> np.ndarray:
        """Map ``(..., 2)`` map-pixel coordinates to original-image pixels (official ``transform_preds``).

        The official code multiplies each point with the float64 inverse matrix and stores the result in
        the float32 array it came from, so the output is float32.
        """
        xy = np.asarray(xy)
        m = self.inverse
        x = xy[..., 0].astype(np.float64)
        y = xy[..., 1].astype(np.float64)
        out = np.empty(xy.shape[:-1] + (2,), np.float32)
        # Same products and summation order as np.dot(m, [x, y, 1.0]).
        out[..., 0] = m[0, 0] * x + m[0, 1] * y + m[0, 2]
        out[..., 1] = m[1, 0] * x + m[1, 1] * y + m[1, 2]
        return out


def resize_align(
    image: np.ndarray, input_size: int, scale: float = 1.0, min_scale: float = 1.0
) -> tuple[np.ndarray, Affine]:
    """Official ``resize_align_multi_scale``: warp an (H, W, C) uint8 image to the network input size.

    Channel order is irrelevant to the warp (channels are independent), so BGR and RGB images both work.

    Returns:
        The resized uint8 image and the :class:`Affine` of this scale (``size`` = the resized size).
    """
    size, center, scale_arr = multi_scale_size(image.shape[:2], input_size, scale, min_scale)
    check_resized(image.shape[:2], size, input_size, scale)
    affine = Affine.build(center, scale_arr, size)
    resized = cv2.warpAffine(image, affine.forward, size)
    return resized, affine


def _normalize_lut() -> np.ndarray:
    # Every uint8 value maps to one float32 per channel, computed with exactly the official float32
    # operations (ToTensor: /255, then (t - mean) / std), so a table lookup is bit-exact and one pass.
    v = np.arange(256, dtype=np.float32) / np.float32(255)
    return ((v[None, :] - MEAN[:, None]) / STD[:, None]).astype(np.float32)


_LUT = _normalize_lut()


def normalize(resized: np.ndarray, *, bgr: bool = False, out: np.ndarray | None = None) -> np.ndarray:
    """RGB + ImageNet normalisation of an (h, w, 3) uint8 image into a (1, 3, h, w) float32 array.

    Args:
        resized: the warped image, RGB (official) or BGR with ``bgr=True`` (the swap is folded into the
            lookup, so BGR frames need no ``cvtColor``).
        bgr: the input is BGR.
        out: optional (1, 3, h, w) float32 buffer to write into.
    """
    if resized.dtype != np.uint8 or resized.ndim != 3 or resized.shape[2] != 3:
        raise InputError(f"normalize expects an (h, w, 3) uint8 image, got {resized.shape} {resized.dtype}")
    h, w = resized.shape[:2]
    if out is None:
        out = np.empty((1, 3, h, w), np.float32)
    for c in range(3):
        src = 2 - c if bgr else c
        # Fancy indexing with the uint8 plane as index: ~7x faster than np.take here (measured 1.3 ms vs
        # 8 ms for 704x512), since np.take first converts the indices to intp.
        out[0, c] = _LUT[c][resized[:, :, src]]
    return out


def as_bgr_u8(image) -> np.ndarray:
    """Validate an image and convert it to a contiguous (H, W, 3) uint8 BGR array.

    Conversions (documented behaviour, no guessing beyond this):
        - (H, W) or (H, W, 1) grayscale: replicated to three channels.
        - (H, W, 4): taken as BGRA (what OpenCV gives); the alpha channel is dropped.
        - uint16: scaled to 8 bits by ``>> 8`` (keeps the top byte, as OpenCV's 16-to-8-bit conversion
          for display does with ``/256``).
        - float: assumed to be in 0..1; clipped to 0..1, multiplied by 255 and rounded to nearest.
          NaN or infinite values are refused.
        - bool: False -> 0, True -> 255.
        - other integer types: accepted when every value is in 0..255.
        - A uint8 contiguous BGR image is returned as it is (no copy).

    Raises:
        InputError: None, not an array, empty, wrong number of dimensions or channels, unsupported dtype.
    """
    if image is None:
        raise InputError(
            "image is None: nothing was read (cv2.imread returns None when a file is missing or unreadable)"
        )
    if not isinstance(image, np.ndarray):
        try:
            image = np.asarray(image)
        except Exception as exc:  # e.g. ragged nested lists
            raise InputError(f"cannot use a {type(image).__name__} as an image: {exc}") from None
    if image.ndim == 2:
        image = image[:, :, None]
    if image.ndim != 3:
        hint = " (a batch? pass one image at a time)" if image.ndim == 4 else ""
        raise InputError(f"expected an (H, W, 3) image, got an array of shape {image.shape}{hint}")
    if image.shape[0] == 0 or image.shape[1] == 0:
        raise InputError(f"the image is empty (shape {image.shape})")
    channels = image.shape[2]
    if channels not in (1, 3, 4):
        raise InputError(
            f"expected 1 (grayscale), 3 (BGR) or 4 (BGRA) channels, got {channels} (shape {image.shape})"
        )
    image = _to_u8(image)
    if channels == 1:
        return cv2.cvtColor(np.ascontiguousarray(image), cv2.COLOR_GRAY2BGR)
    if channels == 4:
        image = image[:, :, :3]
    return np.ascontiguousarray(image)


def _to_u8(image: np.ndarray) -> np.ndarray:
    dt = image.dtype
    if dt == np.uint8:
        return image
    if dt == np.uint16:
        return (image >> 8).astype(np.uint8)
    if dt == np.bool_:
        return image.astype(np.uint8) * np.uint8(255)
    if np.issubdtype(dt, np.floating):
        if not np.isfinite(image).all():
            raise InputError("the float image contains NaN or infinite values")
        return np.rint(np.clip(image, 0.0, 1.0) * 255.0).astype(np.uint8)
    if np.issubdtype(dt, np.integer):
        lo, hi = int(image.min()), int(image.max())
        if lo < 0 or hi > 255:
            raise InputError(
                f"a {dt} image must hold values in 0..255 (got {lo}..{hi}); convert it to uint8 first"
            )
        return image.astype(np.uint8)
    raise InputError(f"unsupported image dtype {dt}; use uint8 (or uint16, or float in 0..1)")
