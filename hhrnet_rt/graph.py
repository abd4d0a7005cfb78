"""The computation every backend runs: network, flip test, multi-resolution aggregation, projection.

This is the official ``core/inference.py`` ``get_multi_stage_outputs`` + ``aggregate_results`` for one
scale, written as one ``nn.Module`` so that torch, ONNX Runtime and TensorRT run the same graph (it is
exported as one ONNX file). The float operations follow the official order, because the decoder's
rounding (``np.round`` of tag distances, ties in NMS) can turn a last-bit difference into another
grouping:

1. ``out0`` (1/4 resolution, K heatmaps + K tags) is bilinearly upsampled (align_corners=False) to the
   size of ``out1`` (1/2 resolution, K heatmaps); heatmaps = (up(out0)[:K] + out1) / 2; tags = up(out0)[K:].
2. Flip test: the same for the mirrored input, each output upsampled *first*, then flipped back, then
   channel-permuted with the flip index (heatmaps and tags; tags are not negated).
3. Projection (PROJECT2IMAGE): every heatmap and tag map is upsampled to the network input size, *then*
   heatmaps = (orig + flip) / 2 and tags are stacked as a last dimension (L = 2 with flip, else 1).

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

from hhrnet_rt.skeleton import flip_index_for


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
    ``tags (N, K, h, w, L)``; with ``project=False``, ``heatmaps (N, K, h/2, w/2, F)`` (F passes: original,
    then flipped-back) and ``tags (N, K, h/2, w/2, L)``. ``L = F = 2`` with flip, else 1.

    Example:
        >>> graph = PoseGraph(HigherHRNet(ModelSpec.preset("w32_512")).eval())   # doctest: +SKIP
        >>> heatmaps, tags = graph(x)
    """

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

    def _one_pass(self, x: torch.Tensor, mirrored: bool) -> tuple[torch.Tensor, torch.Tensor]:
        """Heatmaps (N, K, h/2, w/2) averaged over the two heads, and the 1/4-head tags upsampled to 1/2."""
        out0, out1 = self.network(x)
        k = out1.shape[1]
        up0 = _upsample(out0, out1.shape[2:])
        hm0, tags, hm1 = up0[:, :k], up0[:, k:], out1
        if mirrored:
            # Official order: upsample, then flip back, then swap left/right channels.
            hm0 = torch.flip(hm0, [3])[:, self.flip_index]
            tags = torch.flip(tags, [3])[:, self.flip_index]
            hm1 = torch.flip(hm1, [3])[:, self.flip_index]
        # Official: heatmaps_avg = 0 + hm0 + hm1, then / num_heatmaps (2).
        return (hm0 + hm1) / 2, tags

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        heatmaps, tags = self._one_pass(x, mirrored=False)
        hms, tgs = [heatmaps], [tags]
        if self.flip:
            heatmaps_f, tags_f = self._one_pass(torch.flip(x, [3]), mirrored=True)
            hms.append(heatmaps_f)
            tgs.append(tags_f)
        if not self.project:
            return torch.stack(hms, dim=4), torch.stack(tgs, dim=4)
        size = x.shape[2:]
        hms = [_upsample(h, size) for h in hms]
        tgs = [_upsample(t, size) for t in tgs]
        # Official aggregate_results: (h + h_flip) / 2.0 after projection; tags stacked on a new last dim.
        out = (hms[0] + hms[1]) / 2.0 if self.flip else hms[0]
        return out, torch.stack(tgs, dim=4)


def project_and_aggregate(
    per_scale: Sequence[tuple[float, torch.Tensor, torch.Tensor]], size_hw: tuple[int, int]
) -> tuple[torch.Tensor, torch.Tensor]:
    """Official multi-scale aggregation of ``PoseGraph(project=False)`` outputs.

    Args:
        per_scale: ``(scale, heatmaps (N, K, h, w, F), tags (N, K, h, w, L))`` for every test scale.
        size_hw: the base size (the scale-1.0 input size) to project to.

    Returns:
        ``heatmaps (N, K, H, W)`` = sum over scales, in descending scale order, of the pass-averaged
        projected heatmaps, divided by the number of scales; ``tags (N, K, H, W, L)`` from scale 1.0 only
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
        projected = [_upsample(heatmaps[..., f], size) for f in range(heatmaps.shape[-1])]
        avg = (projected[0] + projected[1]) / 2.0 if len(projected) == 2 else projected[0]
        final = avg if final is None else final + avg
        if scale == 1.0 or len(ordered) == 1:
            tags_out = torch.stack([_upsample(tags[..., j], size) for j in range(tags.shape[-1])], dim=4)
    if tags_out is None:
        raise ValueError(
            f"scales {[s for s, _, _ in ordered]} do not include 1.0; the official aggregation takes the "
            "tags from scale 1.0 only, so add 1.0 to the scales"
        )
    return final / float(len(ordered)), tags_out
