"""Several frames through the network in one backend call: grouping by input shape, stacking, splitting.

The official preprocessing gives each aspect ratio its own network input (the short side becomes the
input size, the long side is rounded up to a multiple of 64), so frames of different shapes cannot share
a tensor without letterboxing, which would change the maps and break parity. Frames are therefore
grouped by the shapes of their inputs (all test scales) and each group is ONE backend call per scale:
frames from several cameras of the same resolution, or consecutive frames of one file, share a call.

Per frame the result is what :meth:`PoseEstimator.infer` gives for that frame alone: every operation
after the convolutions (upsampling, flip-back, projection, aggregation) is per image, and on the host
path the batch's maps cross to the host in one copy and are handed out as per-frame views (each a
C-contiguous slice of the batch). The convolution kernels may differ with the batch size (oneDNN picks
kernels by shape), which can move a map value in its last bits; tests/test_batch_infer.py measures that.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from hhrnet_rt.core.tag_layout import by_pixel
from hhrnet_rt.decode.device_io import upload
from hhrnet_rt.runtime.device_transfer import hand_over, maps_to_host, take_over
from hhrnet_rt.runtime.stage_data import Maps, Prepared


def shape_key(prepared: Prepared) -> tuple:
    """What must be equal for two frames to share a backend call: per scale, the input's shape and kind
    (host array or device tensor), and the size the maps are projected to."""
    inputs = tuple((s, tuple(int(d) for d in x.shape), isinstance(x, np.ndarray)) for s, x in prepared.inputs)
    return inputs, tuple(prepared.affine.size)


def group_by_shape(prepared: Sequence[Prepared]) -> list[list[int]]:
    """Indices of ``prepared`` grouped by :func:`shape_key`, groups in order of their first frame."""
    groups: dict[tuple, list[int]] = {}
    for i, p in enumerate(prepared):
        groups.setdefault(shape_key(p), []).append(i)
    return list(groups.values())


def stack_inputs(frames: Sequence[Prepared], scale_index: int, device: Any) -> Any:
    """The inputs of one scale of ``frames`` as one (n, 3, h, w) torch tensor on ``device``.

    Host inputs are concatenated on the host and uploaded once (:func:`~hhrnet_rt.decode.device_io.upload`:
    pinned and asynchronous on CUDA; on the CPU the tensor shares the array's memory, which ONNX Runtime's
    ``run_torch`` shares back: no copy). Device inputs (device preprocessing) are concatenated on the
    device after this thread's stream has waited for each frame's preprocessing event.
    """
    import torch

    xs = [p.inputs[scale_index][1] for p in frames]
    if isinstance(xs[0], np.ndarray):
        return upload(xs[0] if len(xs) == 1 else np.concatenate(xs, axis=0), device)
    for p, x in zip(frames, xs, strict=True):
        take_over(p.ready, x)
    return xs[0] if len(xs) == 1 else torch.cat(xs, dim=0)


def split_maps(heatmaps: Any, tags: Any, count: int, on_device: bool) -> list[Maps]:
    """Per-frame :class:`Maps` of batch maps (``heatmaps (n, K, H, W)``, planar ``tags (n, K, L, H, W)``).

    Host: one device -> host copy for the whole batch, each frame gets a view and its share of the bytes.
    Device: per-frame views of the device tensors, all marked complete by one event. Either way a frame's
    tags are the ``(K, H, W, L)`` view of its planes (:func:`hhrnet_rt.core.tag_layout.by_pixel`, no copy).
    """

    if on_device:
        ready = hand_over(heatmaps, tags)
        return [Maps(heatmaps[i], by_pixel(tags[i]), ready=ready) for i in range(count)]
    heatmaps, tags, nbytes = maps_to_host(heatmaps, tags)
    share = nbytes // count
    return [Maps(heatmaps[i], by_pixel(tags[i]), infer_d2h_bytes=share) for i in range(count)]
