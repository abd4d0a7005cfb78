"""``parse_on_device``: the official decode with the map-sized work done where the maps are.

The maps stay on their device (torch CUDA outputs, TensorRT output buffers wrapped as torch tensors,
or torch CPU tensors); only O(K x max_num_people) numbers cross to the host. Output is bit-identical
to :func:`.parse.parse` (same people, same order, same float32 values).

What runs where:

1. device (:func:`.device_ops.candidate_pack`): official NMS (``max_pool2d`` kernel ``nms_kernel``,
   stride 1, padding ``nms_kernel // 2``; keep pixels equal to the pooled maximum, others become 0),
   top ``max_num_people`` per joint of the values above the detection threshold, and at those
   candidates: flat index, value, the L tags and the four neighbour values adjust reads.
   **One copy to the host**: (K, k, 6 + L) int32, 17 x 30 x 8 x 4 B = 16 KB with flip.
2. host, one compiled call (:func:`.device_host.group_candidates`): ``match_by_tag`` (munkres 1.1.x)
   on the candidates, adjust from the neighbour values, scores, and for refine each person's mean tag
   and the list of (person, missing joint) pairs.
3. device (:func:`.device_ops.refine_pack`), only with ``refine`` and missing joints: the mean tags go
   up (n x L floats); for all pairs at once, in chunks of bounded memory, the penalised map
   ``det[j] - round(||tag[j] - prev_tag||)``, its first maximum, and the heatmap value and four
   neighbour values there. **One copy to the host**: (n, 7) int32, at most P x K x 28 B.
4. host: fill the joints whose pick has ``det > 0`` (:func:`.device_host.apply_refine_picks`).

Equal peaks: the official code takes ``torch.topk`` of the NMS map, whose order among equal values is
implementation-defined (the golden cases have none). Like the host decoder, equal values are ordered
by flat index ``y * W + x``, lowest first, on every device: the top-k runs on int64 keys (value bits,
then the reversed flat index) that are all distinct, so the order never depends on ``topk``'s ties.
The refine pick is the first (row-major) maximum, as ``np.argmax`` and ``torch.argmax`` both take.

Non-finite values, as :func:`.parse.parse` documents them: a NaN pixel is never a candidate and never
suppresses a neighbour (NaN becomes -inf before the max-pool); ``+inf`` is an ordinary largest value;
refine skips NaN pixels of the penalised map (NaN becomes -inf before the argmax; when the best left
is -inf a second pass finds the first pixel that really is -inf, or none).

Inputs are converted to float32 on their device (fp16 maps included); any strides work (a
channels_last graph's outputs): the max-pool and the gathers read strided tensors as they are, with
no ``.contiguous()`` or transpose, and nothing map-sized ever goes to the host. Device memory: the
NMS stage makes a few map-sized temporaries (the largest: int64 sort keys, K x H x W x 8 B, 49 MB at
17 x 512 x 704); refine's are bounded by ``device_ops.REFINE_CHUNK_BYTES`` per tensor.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from hhrnet_rt.core.errors import InputError
from hhrnet_rt.decode.device_host import apply_refine_picks, group_candidates
from hhrnet_rt.decode.device_io import to_host, upload
from hhrnet_rt.decode.device_ops import candidate_pack, first_minus_inf, refine_pack
from hhrnet_rt.decode.params import DecodeParams
from hhrnet_rt.decode.parse import check_params
from hhrnet_rt.decode.peaks import float32_threshold


@dataclass
class DeviceParseResult:
    """Output of :func:`parse_on_device`.

    Attributes:
        grouped: (P, K, 3+L) float32, the same as ``parse()[0]``.
        scores: (P,) float32, the same as ``parse()[1]``.
        d2h_bytes: bytes copied device -> host by this call (every ``.cpu()``).
    """

    grouped: np.ndarray
    scores: np.ndarray
    d2h_bytes: int


class _ToHost:
    """Copies tensors to the host as numpy arrays (:func:`.device_io.to_host`) and counts the bytes."""

    def __init__(self) -> None:
        self.nbytes = 0

    def __call__(self, tensor: torch.Tensor) -> np.ndarray:
        # Counted on every device, the CPU included: what the copy costs where the maps are on a GPU.
        self.nbytes += tensor.numel() * tensor.element_size()
        return to_host(tensor)


def _as_device_maps(heatmaps, tags) -> tuple[torch.Tensor, torch.Tensor]:
    """Check shapes and devices; return float32 (K, H, W) heatmaps and (K, H, W, L) tags, converted on
    their device (no copy when they already are float32)."""
    hm = torch.as_tensor(heatmaps)
    tg = torch.as_tensor(tags)
    for name, t in (("heatmaps", hm), ("tags", tg)):
        if t.is_complex() or t.dtype == torch.bool:
            raise InputError(f"{name} must hold real numbers, got dtype {t.dtype}")
    if hm.device != tg.device:
        raise InputError(f"heatmaps and tags must be on the same device, got {hm.device} and {tg.device}")
    hm = hm.to(torch.float32)
    tg = tg.to(torch.float32)
    if hm.dim() != 3:
        raise InputError(
            f"heatmaps must have shape (K, H, W), got {tuple(hm.shape)}; drop the batch axis first"
        )
    if tg.dim() == 3:
        tg = tg.unsqueeze(-1)  # (K, H, W) tags: one tag dimension, as the official refine accepts
    if tg.dim() != 4 or tg.shape[:3] != hm.shape or tg.shape[3] < 1:
        raise InputError(
            f"tags must have shape (K, H, W, L) = {tuple(hm.shape) + ('L',)} with L >= 1, got {tuple(tg.shape)}"
        )
    return hm, tg


def parse_on_device(
    heatmaps,
    tags,
    params: DecodeParams | None = None,
    adjust: bool = True,
    refine: bool = True,
) -> DeviceParseResult:
    """Decode people exactly as :func:`.parse.parse`, with the map-sized work on the maps' device.

    Args:
        heatmaps: torch (K, H, W) heatmaps, any device, any strides, float32 or fp16.
        tags: torch (K, H, W, L) tags (or (K, H, W) for L = 1), on the same device.
        params: decoding settings; ``None`` means ``DecodeParams()``.
        adjust, refine: as in :func:`.parse.parse`.

    Returns:
        :class:`DeviceParseResult` (grouped and scores equal to ``parse()``'s, and the bytes copied).

    Raises:
        InputError: wrong shapes, dtypes or devices, or invalid ``params``.
    """
    params = DecodeParams() if params is None else params
    hm, tg = _as_device_maps(heatmaps, tags)
    K, H, W = hm.shape
    L = tg.shape[3]
    order = check_params(params, K)
    if K == 0 or H == 0 or W == 0:
        return DeviceParseResult(np.zeros((0, K, 3 + L), np.float32), np.zeros(0, np.float32), 0)
    reads = _ToHost()
    threshold = float32_threshold(float(params.detection_threshold))
    with torch.no_grad():
        pack = reads(
            candidate_pack(hm, tg, threshold, int(params.max_num_people), int(params.nms_kernel // 2))
        )
        people, sc, pair_person, pair_joint, pair_prev, not_found = group_candidates(
            pack,
            pack.view(np.float32),
            int(params.max_num_people),
            L,
            W,
            order,
            threshold,
            float(params.tag_threshold),
            bool(params.use_detection_val),
            bool(params.ignore_too_much),
            bool(adjust),
            bool(refine),
        )
        if not_found:
            raise AssertionError("a grouped joint is not one of the candidates")  # cannot happen
        if pair_person.shape[0]:
            _refine(people, hm, tg, pair_person, pair_joint, pair_prev, reads)
    return DeviceParseResult(grouped=people, scores=sc, d2h_bytes=reads.nbytes)


def _refine(people, hm, tg, pair_person, pair_joint, pair_prev, reads: _ToHost) -> None:
    """Device refine picks for the (person, missing joint) pairs, applied on the host in place.

    The pairs go up with :func:`.device_io.upload` (pinned, asynchronous): a pageable ``.to(device)``
    would block the host until the GPU is idle, twice per frame."""
    joint = upload(pair_joint, hm.device)
    prev = upload(pair_prev, hm.device)
    pack = reads(refine_pack(hm, tg, joint, prev))
    redo = np.flatnonzero(pack[:, 1].view(np.float32) == -np.inf)  # only with inf or NaN in the maps
    if redo.shape[0]:
        sel = upload(redo.astype(np.int64), hm.device)
        pack[redo] = reads(first_minus_inf(hm, tg, joint[sel], prev[sel]))
    apply_refine_picks(people, pair_person, pair_joint, pack, pack.view(np.float32), hm.shape[2])
