"""The computation every backend runs: network, flip test, multi-resolution aggregation, projection.

This is the official ``core/inference.py`` ``get_multi_stage_outputs`` + ``aggregate_results`` for one
scale, written as one ``nn.Module`` so that torch, ONNX Runtime and TensorRT run the same graph (it is
exported as one ONNX file). The float operations follow the official order, because the decoder's
rounding (``np.round`` of tag distances, ties in NMS) can turn a last-bit difference into another
grouping:

1. ``out0`` (1/4 resolution, K heatmaps + K tags) is bilinearly upsampled (align_corners=False) to the
   size of ``out1`` (1/2 resolution, K heatmaps); heatmaps = (up(out0)[:K] + out1) / 2; tags = up(out0)[K:].
2. Flip test: the same for the mirrored input, each output upsampled *first*, then flipped back, then
   channel-permuted with the flip index (heatmaps and tags; tags are not negated). The mirrored input
   does not get a second network pass: ``[x, flip(x)]`` runs as one batch of 2N and is split after the
   upsampling (one copy of each convolution in the exported ONNX graph; half the kernel launches).
3. Projection (PROJECT2IMAGE): every heatmap and tag map is upsampled to the network input size, *then*
   heatmaps = (orig + flip) / 2 and the tags of both passes are kept (L = 2 with flip, else 1).

Tags leave the graph as planes, ``(N, K, L, H, W)`` (:mod:`hhrnet_rt.core.tag_layout`): the two passes' tags
are paired per joint at 1/2 resolution (a quarter of the full-size data) and projected in one upsampling,
whose output already is that layout. The official code stacks them on a last dimension, (N, K, H, W, L);
:func:`hhrnet_rt.core.tag_layout.by_pixel` is that view of the same memory, and the decoders read it as such.
Bilinear upsampling treats every channel alone, so pairing the channels first changes no value.

Several test scales need step 3 with a target size other than the input size (the scale-1.0 size), and
the official code projects each scale's 1/2-resolution maps directly to that size. Rather than making
the target size a graph input (an extra dynamic input every backend and engine profile would have to
carry for a rarely used mode), ``PoseGraph(project=False)`` stops before step 3 and returns the per-pass
maps, and :func:`project_and_aggregate` does step 3 and the cross-scale sum in torch on the host.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from hhrnet_rt.core.skeleton import flip_index_for


def _upsample(t: torch.Tensor, size) -> torch.Tensor:
    return F.interpolate(t, size=size, mode="bilinear", align_corners=False)


class PoseGraph(nn.Module):
    """Network + flip test + aggregation (+ projection to the input size).

    Args:
        network: module whose ``forward(x)`` returns ``(out0 (N, 2K, h/4, w/4), out1 (N, K, h/2, w/2))``.
        flip: run the mirrored pass (official FLIP_TEST).
        flip_index: left/right channel permutation; default: COCO for 17 joints, CrowdPose for 14.
        project: upsample to the input size and average the passes. ``False`` returns the per-pass maps
            at 1/2 resolution for :func:`project_and_aggregate` (several test scales).

    ``forward(x (N, 3, h, w) float32)`` returns, with ``project=True``, ``heatmaps (N, K, h, w)`` and
    ``tags (N, K, L, h, w)``; with ``project=False``, ``heatmaps (N, K, F, h/2, w/2)`` (F passes: original,
    then flipped-back) and ``tags (N, K, L, h/2, w/2)``. ``L = F = 2`` with flip, else 1.

    Example:
        >>> graph = PoseGraph(HigherHRNet(ModelSpec.preset("w32_512")).eval())   # doctest: +SKIP
        >>> heatmaps, tags = graph(x)
    """

    # The structure of the exported computation. Caches of exported files key on it (the ONNX Runtime
    # backend's), so a file exported by an older layout (the two-pass flip test, interleaved tags) is not
    # reused.
    LAYOUT = "flip-as-batch-2n/planar-tags"

    def __init__(
        self,
        network: nn.Module,
        *,
        flip: bool = True,
        flip_index: Sequence[int] | None = None,
        project: bool = True,
        num_joints: int | None = None,
    ) -> None:
        super().__init__()
        self.network = network
        self.flip = bool(flip)
        self.project = bool(project)
        if num_joints is None:
            spec = getattr(network, "spec", None)
            num_joints = getattr(spec, "num_joints", None)
        self.num_joints = num_joints
        if self.flip:
            if flip_index is None:
                if num_joints is None:
                    raise ValueError("flip test needs flip_index or a network with .spec.num_joints")
                flip_index = flip_index_for(int(num_joints))
            index = torch.as_tensor(list(flip_index), dtype=torch.long)
            if num_joints is not None and index.numel() != num_joints:
                raise ValueError(f"flip_index has {index.numel()} entries for {num_joints} joints")
            self.register_buffer("flip_index", index, persistent=False)
        else:
            self.flip_index = None

    def _heads(self, out0: torch.Tensor, out1: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """``(hm0, tags, hm1)`` at 1/2 resolution: the 1/4 head upsampled to the size of the 1/2 head."""
        k = out1.shape[1]
        up0 = _upsample(out0, out1.shape[2:])
        return up0[:, :k], up0[:, k:], out1

    def _flip_back(self, t: torch.Tensor) -> torch.Tensor:
        # Official order: upsample (done by the caller), then flip back, then swap left/right channels.
        return torch.flip(t, [3])[:, self.flip_index]

    def _passes(self, x: torch.Tensor) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        """Per-pass heatmaps (N, K, h/2, w/2) averaged over the two heads, and tags: [original(, flipped)].

        With flip, the network runs ONCE on the batch ``[x, flip(x)]`` of 2N images (each convolution
        reads its weights once; one launch per layer instead of two) and the result is split after the
        1/4-head upsampling, which is per image, so the float operations per element are the official
        ones. Only the convolution kernels see a batch of 2N instead of N (see tests/test_flip_batch.py
        for what that changes on the CPU: nothing, measured).
        """
        if self.flip:
            n = x.shape[0]
            out0, out1 = self.network(torch.cat([x, torch.flip(x, [3])], dim=0))
        else:
            out0, out1 = self.network(x)
        hm0, tags, hm1 = self._heads(out0, out1)
        # Official: heatmaps_avg = 0 + hm0 + hm1, then / num_heatmaps (2).
        if not self.flip:
            return [(hm0 + hm1) / 2], [tags]
        hm0_f, tags_f, hm1_f = (self._flip_back(t[n:]) for t in (hm0, tags, hm1))
        return [(hm0[:n] + hm1[:n]) / 2, (hm0_f + hm1_f) / 2], [tags[:n], tags_f]

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        hms, tgs = self._passes(x)
        tags = _paired(tgs)
        if not self.project:
            return _paired(hms), tags
        size = x.shape[2:]
        hms = [_upsample(h, size) for h in hms]
        # Official aggregate_results: (h + h_flip) / 2.0 after projection; tags of both passes kept.
        out = (hms[0] + hms[1]) / 2.0 if self.flip else hms[0]
        return out, _project_planes(tags, size)


def _paired(maps: Sequence[torch.Tensor]) -> torch.Tensor:
    """(N, K, h, w) maps of each pass as planes (N, K, P, h, w); one pass is a view, no copy."""
    if len(maps) == 1:
        return maps[0].unsqueeze(2)
    return torch.stack(list(maps), dim=2)


def _project_planes(planes: torch.Tensor, size) -> torch.Tensor:
    """Upsample (N, K, P, h, w) planes to ``size`` in one call; bilinear is per channel, so each plane
    gets exactly the values a separate upsampling would give."""
    n, k, p, h, w = planes.shape
    up = _upsample(planes.reshape(n, k * p, h, w), size)
    return up.reshape(n, k, p, up.shape[2], up.shape[3])


def project_and_aggregate(
    per_scale: Sequence[tuple[float, torch.Tensor, torch.Tensor]], size_hw: tuple[int, int]
) -> tuple[torch.Tensor, torch.Tensor]:
    """Official multi-scale aggregation of ``PoseGraph(project=False)`` outputs.

    Args:
        per_scale: ``(scale, heatmaps (N, K, F, h, w), tags (N, K, L, h, w))`` for every test scale.
        size_hw: the base size (the scale-1.0 input size) to project to.

    Returns:
        ``heatmaps (N, K, H, W)`` = sum over scales, in descending scale order, of the pass-averaged
        projected heatmaps, divided by the number of scales; ``tags (N, K, L, H, W)`` from scale 1.0 only
        (or from the only scale, when there is one), as the official code does.

    Raises:
        ValueError: no scales, or several scales without 1.0 (the official code would have no tags).
    """
    if not per_scale:
        raise ValueError("project_and_aggregate needs at least one scale")
    ordered = sorted(per_scale, key=lambda item: item[0], reverse=True)
    size = (int(size_hw[0]), int(size_hw[1]))
    final = None
    tags_out = None
    for scale, heatmaps, tags in ordered:
        projected = [_upsample(heatmaps[:, :, f], size) for f in range(heatmaps.shape[2])]
        avg = (projected[0] + projected[1]) / 2.0 if len(projected) == 2 else projected[0]
        final = avg if final is None else final + avg
        if scale == 1.0 or len(ordered) == 1:
            tags_out = _project_planes(tags, size)
    if tags_out is None or final is None:
        raise ValueError(
            f"scales {[s for s, _, _ in ordered]} do not include 1.0; the official aggregation takes the "
            "tags from scale 1.0 only, so add 1.0 to the scales"
        )
    return final / float(len(ordered)), tags_out
