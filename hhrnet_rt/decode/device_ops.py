"""The torch half of the device decode: candidate selection and refine picks, on the maps' device.

Everything here is fixed-shape torch work with no host synchronisation; each function returns one
small packed int32 tensor (float32 values bit-cast, so NaN and -0.0 survive the trip) that the caller
copies to the host once. See :mod:`.device` for the rules and why they match :func:`.parse.parse`.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

_NO_KEY = torch.iinfo(torch.int64).min  # sort key of a pixel that is not a candidate
_LOW32 = 1 << 32

# Bytes of (pair, pixel) float32 work tensors alive at once in refine; about four such tensors live
# per chunk, so a chunk stays near 64 MB whatever the frame size (1080p, 30 people: ~950 MB unchunked).
REFINE_CHUNK_BYTES = 16 << 20


def _as_bits(values: torch.Tensor) -> torch.Tensor:
    """float32 -> int32 with the same bits (a view, no copy)."""
    return values.view(torch.int32)


def _order_key(values: torch.Tensor) -> torch.Tensor:
    """int64 keys that sort like (value descending, flat index ascending) for non-NaN float32 values.

    The float32 bits become an int32 in the order of the values (negative floats have their magnitude
    bits flipped; -0.0 is first made +0.0 so it ties with 0.0 as ``==`` does), in the high 32 bits;
    the low 32 bits hold ``2**32 - 1 - flat index``. Every key is distinct, so ``topk`` has no ties and
    its order is the host's whatever the implementation.
    """
    K = values.shape[0]
    bits = _as_bits(values + 0.0).reshape(K, -1)
    ordered = torch.where(bits < 0, bits ^ 0x7FFFFFFF, bits).to(torch.int64)
    flat = torch.arange(bits.shape[1], device=values.device, dtype=torch.int64)
    return ordered * _LOW32 + (_LOW32 - 1 - flat)


def _neighbours(hm: torch.Tensor, j: torch.Tensor, y: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """Heatmap values right, left, down, up of pixels (j, y, x), clamped at the border: (..., 4)."""
    H, W = hm.shape[1], hm.shape[2]
    return torch.stack(
        [
            hm[j, y, (x + 1).clamp(max=W - 1)],
            hm[j, y, (x - 1).clamp(min=0)],
            hm[j, (y + 1).clamp(max=H - 1), x],
            hm[j, (y - 1).clamp(min=0), x],
        ],
        dim=-1,
    )


def candidate_pack(hm: torch.Tensor, tg: torch.Tensor, threshold: float, k: int, radius: int) -> torch.Tensor:
    """NMS + top-k per joint and everything grouping and adjust read at the candidates.

    Args:
        hm: (K, H, W) float32 heatmaps (any strides).
        tg: (K, H, W, L) float32 tags (any strides).
        threshold: float32 detection threshold (from :func:`.peaks.float32_threshold`).
        k: candidates per joint (``max_num_people``).
        radius: NMS window half-size.

    Returns:
        (K, k', 2 + L + 4) int32, k' = min(k, H * W): per candidate, best first, the flat index
        (-1 past the last candidate), then the bits of the value, the L tags and the neighbour values
        right, left, down, up.
    """
    K, H, W = hm.shape
    nan = hm.isnan()
    clean = hm.masked_fill(nan, float("-inf"))  # NaN never suppresses a neighbour
    pooled = F.max_pool2d(clean, kernel_size=2 * radius + 1, stride=1, padding=radius)
    # Official det * (maxpool == det): a suppressed pixel is 0 (it can pass a negative threshold).
    value = torch.where(clean == pooled, hm, torch.zeros((), dtype=hm.dtype, device=hm.device))
    is_candidate = (value > threshold) & ~nan
    keys = _order_key(value).masked_fill_(~is_candidate.reshape(K, -1), _NO_KEY)
    top_keys, top_flat = torch.topk(keys, min(k, H * W), dim=1, largest=True, sorted=True)
    valid = top_keys != _NO_KEY
    y = torch.div(top_flat, W, rounding_mode="floor")
    x = top_flat - y * W
    j = torch.arange(K, device=hm.device).unsqueeze(1).expand_as(top_flat)
    fields = [
        torch.where(valid, top_flat, -1).to(torch.int32).unsqueeze(-1),
        _as_bits(value[j, y, x]).unsqueeze(-1),
        _as_bits(tg[j, y, x]),
        _as_bits(_neighbours(hm, j, y, x)),
    ]
    return torch.cat(fields, dim=-1)


def _penalised(
    hm: torch.Tensor, tg: torch.Tensor, joint: torch.Tensor, prev_tag: torch.Tensor
) -> torch.Tensor:
    """``det[j] - round(sqrt(sum_L (tag[j] - prev_tag)**2))`` per pair, in the host's float32 steps:
    ``s = d0*d0``, then ``s = s + d*d`` for each next dimension (``0 + d0*d0`` is exactly ``d0*d0``),
    separate multiply and add (no fused multiply-add), round half to even. (n, H, W), new tensor."""
    acc = tg[joint, :, :, 0].sub_(prev_tag[:, 0, None, None])  # advanced indexing: a copy of the tags
    acc.mul_(acc)
    for d in range(1, tg.shape[3]):
        diff = tg[joint, :, :, d].sub_(prev_tag[:, d, None, None])
        diff.mul_(diff)
        acc.add_(diff)
    acc.sqrt_().round_()
    return hm[joint].sub_(acc)


def refine_pack(
    hm: torch.Tensor, tg: torch.Tensor, joint: torch.Tensor, prev_tag: torch.Tensor
) -> torch.Tensor:
    """The official refine pick for each (person, joint) pair, all pairs batched (chunked for memory).

    Args:
        hm, tg: the maps as in :func:`candidate_pack`.
        joint: (n,) int64 joint of each pair, on ``hm.device``.
        prev_tag: (n, L) float32 mean tag of the pair's person, on ``hm.device``.

    Returns:
        (n, 7) int32: flat index of the first maximum of the penalised map with NaN pixels skipped,
        the bits of that maximum (-inf when no pixel beats -inf: see :func:`first_minus_inf`), of the
        heatmap value there, and of its neighbours right, left, down, up.
    """
    _, H, W = hm.shape
    step = max(1, REFINE_CHUNK_BYTES // (4 * H * W))
    packs = []
    for s in range(0, joint.shape[0], step):
        j = joint[s : s + step]
        target = _penalised(hm, tg, j, prev_tag[s : s + step]).reshape(j.shape[0], H * W)
        target.masked_fill_(target.isnan(), float("-inf"))
        flat = target.argmax(dim=1)  # first maximal index, as np.argmax
        packs.append(_pick_fields(hm, j, flat, target.gather(1, flat[:, None])[:, 0]))
    return torch.cat(packs, dim=0)


def first_minus_inf(
    hm: torch.Tensor, tg: torch.Tensor, joint: torch.Tensor, prev_tag: torch.Tensor
) -> torch.Tensor:
    """For pairs whose best non-NaN penalised value is -inf (or that have none): the first pixel whose
    value is -inf and not NaN (flat index -1 if there is none), packed as :func:`refine_pack`.

    Only maps with infinite or NaN values get here, so this runs one pair at a time.
    """
    _, H, W = hm.shape
    packs = []
    for i in range(joint.shape[0]):
        j = joint[i : i + 1]
        target = _penalised(hm, tg, j, prev_tag[i : i + 1]).reshape(1, H * W)
        is_minus_inf = target == float("-inf")
        flat = is_minus_inf.to(torch.uint8).argmax(dim=1)
        flat = torch.where(is_minus_inf.any(dim=1), flat, -1)
        best = torch.full((1,), float("-inf"), dtype=torch.float32, device=hm.device)
        packs.append(_pick_fields(hm, j, flat, best))
    return torch.cat(packs, dim=0)


def _pick_fields(hm: torch.Tensor, j: torch.Tensor, flat: torch.Tensor, best: torch.Tensor) -> torch.Tensor:
    """Pack (flat index, best, det, 4 neighbours) of picks into (n, 7) int32."""
    W = hm.shape[2]
    safe = flat.clamp(min=0)
    y = torch.div(safe, W, rounding_mode="floor")
    x = safe - y * W
    fields = [
        flat.to(torch.int32).unsqueeze(-1),
        _as_bits(best.contiguous()).unsqueeze(-1),
        _as_bits(hm[j, y, x]).unsqueeze(-1),
        _as_bits(_neighbours(hm, j, y, x)),
    ]
    return torch.cat(fields, dim=-1)
