"""The official resize-align warp and normalisation in torch, for preprocessing on the inference device.

``warp_affine_torch`` equals ``cv2.warpAffine(INTER_LINEAR, BORDER_CONSTANT=0)`` up to OpenCV's
fixed-point arithmetic: OpenCV rounds source coordinates to 1/32 pixel and the bilinear weights to
1/2**15 (``INTER_TAB_SIZE``, ``INTER_REMAP_COEF_BITS``), while ``grid_sample`` uses exact float
coordinates. After rounding to uint8 most pixels are equal; the rest differ by one grey level (measured
on CPU in tests/test_torch_cuda.py: at most 1 level, < 5% of values), so the GPU path is not bit-exact
with the CPU path (documented, not a bug; ``PoseEstimator(device_preprocess=False)`` keeps OpenCV).
Every torch device works, "cpu" included, which is how the tests check it without a GPU.
"""

from __future__ import annotations

import functools
from typing import Any

import numpy as np

from hhrnet_rt.decode.device_io import upload

# ImageNet statistics as used by the official ToTensor + Normalize (RGB order).
_MEAN = (0.485, 0.456, 0.406)
_STD = (0.229, 0.224, 0.225)


def sampling_grid(forward: np.ndarray, in_hw: tuple[int, int], size: tuple[int, int], device: Any) -> Any:
    """``grid_sample`` grid (1, h, w, 2) float32 on ``device`` for the warp ``forward`` of an ``in_hw`` image.

    Computed in float64 on the host (like OpenCV inverts the matrix) and uploaded once; a video keeps
    one frame size, so :class:`hhrnet_rt.runtime.device_prep.DevicePreprocessor` caches it.
    """
    h_in, w_in = int(in_hw[0]), int(in_hw[1])
    w_out, h_out = int(size[0]), int(size[1])
    m = np.vstack([np.asarray(forward, np.float64), [0.0, 0.0, 1.0]])
    inv = np.linalg.inv(m)[:2]  # output pixel -> source pixel, as OpenCV does internally
    # Fold "source pixel -> grid_sample's [-1, 1] (align_corners=True)" into the matrix, in float64.
    to_norm = np.array([[2.0 / max(w_in - 1, 1), 0, -1.0], [0, 2.0 / max(h_in - 1, 1), -1.0], [0, 0, 1.0]])
    theta = (to_norm @ np.vstack([inv, [0, 0, 1.0]]))[:2]
    ys, xs = np.meshgrid(
        np.arange(h_out, dtype=np.float64), np.arange(w_out, dtype=np.float64), indexing="ij"
    )
    grid = np.stack(
        [
            theta[0, 0] * xs + theta[0, 1] * ys + theta[0, 2],
            theta[1, 0] * xs + theta[1, 1] * ys + theta[1, 2],
        ],
        axis=-1,
    )
    return upload(grid.astype(np.float32)[None], device)


def warp_affine_torch(image: Any, forward: np.ndarray, size: tuple[int, int], *, grid: Any = None) -> Any:
    """Bilinear affine warp of ``image (H, W, C) uint8`` (any device) like ``cv2.warpAffine``.

    Args:
        image: torch uint8 tensor (H, W, C).
        forward: (2, 3) image -> output matrix (what ``cv2.warpAffine`` takes).
        size: output (w, h).
        grid: the :func:`sampling_grid` of these arguments, when the caller has it cached.

    Returns:
        (1, C, h, w) float32 tensor with values rounded to integers 0..255 (like OpenCV's uint8 output).
    """
    import torch.nn.functional as F

    if grid is None:
        grid = sampling_grid(forward, image.shape[:2], size, image.device)
    src = image.permute(2, 0, 1)[None].float()
    out = F.grid_sample(src, grid, mode="bilinear", padding_mode="zeros", align_corners=True)
    return out.round_().clamp_(0, 255)


@functools.lru_cache(maxsize=8)
def _stats(device: Any) -> tuple[Any, Any]:
    mean = upload(np.array(_MEAN, np.float32).reshape(1, 3, 1, 1), device)
    std = upload(np.array(_STD, np.float32).reshape(1, 3, 1, 1), device)
    return mean, std


def normalize_torch(warped: Any, *, bgr: bool = True) -> Any:
    """(1, 3, h, w) 0..255 float -> RGB ImageNet-normalised float32 (the official /255, -mean, /std).

    BGR -> RGB is a concatenation of the three channel slices (views): indexing with a Python list
    (``warped[:, [2, 1, 0]]``) would build the index tensor on the host and upload it, blocking, on
    every frame.
    """
    import torch

    x = torch.cat([warped[:, 2:3], warped[:, 1:2], warped[:, 0:1]], dim=1) if bgr else warped
    mean, std = _stats(x.device)
    return ((x / 255.0) - mean) / std
