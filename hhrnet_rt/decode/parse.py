"""``parse``: the official ``HeatmapParser.parse`` (NMS, top-k, match_by_tag, adjust, scores, refine).

One compiled call does the whole decode with the GIL released, so a pipeline thread decoding frame n
does not hold up capture or inference of frame n+1; the Python wrapper only checks and converts inputs.
"""

from __future__ import annotations

import numpy as np

from hhrnet_rt.core.errors import InputError
from hhrnet_rt.core.tag_layout import planar
from hhrnet_rt.decode.cache import kernel
from hhrnet_rt.decode.grouping import match_by_tag
from hhrnet_rt.decode.munkres import munkres
from hhrnet_rt.decode.params import TOPK_TIES, DecodeParams
from hhrnet_rt.decode.peaks import float32_threshold, gather_tags, top_k_peaks
from hhrnet_rt.decode.refine import adjust as _adjust
from hhrnet_rt.decode.refine import refine as _refine
from hhrnet_rt.decode.refine import scores as _scores


@kernel
def decode_maps(
    heatmaps,
    tags,
    joint_order,
    detection_threshold,
    tag_threshold,
    max_num_people,
    nms_radius,
    use_detection_val,
    ignore_too_much,
    do_adjust,
    do_refine,
    torch_cpu_order,
):
    """The whole decode on (K, H, W) float32 heatmaps and (K, L, H, W) float32 tag planes.

    ``detection_threshold`` must come from :func:`.peaks.float32_threshold` (float32 comparisons that
    agree with the official float64 ones).

    Returns:
        ``(people (P, K, 3+L) float32, scores (P,) float32)``.
    """
    W = heatmaps.shape[2]
    counts, flat, vals, tmax = top_k_peaks(
        heatmaps, detection_threshold, max_num_people, nms_radius, torch_cpu_order
    )
    cand_tags = gather_tags(tags, counts, flat)
    people = match_by_tag(
        counts,
        flat,
        vals,
        cand_tags,
        W,
        joint_order,
        detection_threshold,
        tag_threshold,
        max_num_people,
        use_detection_val,
        ignore_too_much,
    ).astype(np.float32)
    if do_adjust:
        _adjust(people, heatmaps)
    sc = _scores(people)
    if do_refine:
        _refine(people, heatmaps, tags, tmax)
    return people, sc


def check_params(params: DecodeParams, num_joints: int) -> np.ndarray:
    """Validate ``params`` for ``num_joints`` joints; return the joint order as int64."""
    if params.nms_kernel < 1 or params.nms_kernel % 2 == 0:
        raise InputError(
            f"DecodeParams.nms_kernel must be a positive odd number (the official value is 5), "
            f"got {params.nms_kernel}"
        )
    if params.max_num_people < 1:
        raise InputError(f"DecodeParams.max_num_people must be >= 1, got {params.max_num_people}")
    if params.topk_ties not in TOPK_TIES:
        raise InputError(f"DecodeParams.topk_ties must be one of {TOPK_TIES}, got {params.topk_ties!r}")
    try:
        order = params.order_for(num_joints)
    except ValueError as exc:
        raise InputError(f"{exc}; give a joint_order that lists every joint once") from exc
    return np.asarray(order, dtype=np.int64)


def as_maps(heatmaps, tags) -> tuple[np.ndarray, np.ndarray]:
    """Check shapes; return C-contiguous float32 (K, H, W) heatmaps and (K, L, H, W) tag planes.

    ``tags`` is (K, H, W, L) (or (K, H, W) for L = 1), as the official code indexes it; a view of planar
    memory (:func:`hhrnet_rt.core.tag_layout.by_pixel`, what the estimator passes) is used without a copy.
    """
    hm = np.ascontiguousarray(heatmaps, dtype=np.float32)
    tg = np.asarray(tags)
    if hm.ndim != 3:
        raise InputError(f"heatmaps must have shape (K, H, W), got {hm.shape}; drop the batch axis first")
    if tg.ndim == 3:
        tg = tg[..., None]  # (K, H, W) tags: one tag dimension, as the official refine accepts
    if tg.ndim != 4 or tg.shape[:3] != hm.shape or tg.shape[3] < 1:
        raise InputError(
            f"tags must have shape (K, H, W, L) = {hm.shape + ('L',)} with L >= 1, got {tg.shape}"
        )
    return hm, planar(tg)


def parse(
    heatmaps: np.ndarray,
    tags: np.ndarray,
    params: DecodeParams | None = None,
    adjust: bool = True,
    refine: bool = True,
) -> tuple[np.ndarray, np.ndarray]:
    """Decode people from aggregated heatmaps and tags exactly as the official ``HeatmapParser.parse``.

    Args:
        heatmaps: (K, H, W) float32 heatmaps (after flip averaging and projection).
        tags: (K, H, W, L) float32 tag maps (L = 2 with flip test, 1 without).
        params: decoding settings; ``None`` means the official COCO values ``DecodeParams()``.
        adjust: apply the quarter-pixel offset and +0.5 (official ``TEST.ADJUST``).
        refine: fill missing joints from the tag-distance-penalised heatmaps (``TEST.REFINE``).

    Returns:
        ``(grouped, scores)``: grouped (P, K, 3+L) float32 rows ``(x, y, val, tag_0..tag_{L-1})`` in
        heatmap pixels (missing joints all zero); scores (P,) float32, the mean joint value before
        refine. No people gives shapes (0, K, 3+L) and (0,).

    Non-finite values (the official code is undefined there: NaN would win top-k slots, and munkres
    can loop forever on NaN costs); parse never fails on them:

    - heatmap NaN: never a peak, never suppresses a neighbour, skipped by refine; ``+inf`` is an
      ordinary largest value (its joint value and score are inf); ``-inf`` never passes the threshold;
    - tag NaN/inf: the distance is NaN/inf, so the joint is never added to an existing person (it
      starts its own); munkres gets finite costs (NaN -> 1e15, clipped to +-1e15); a person whose
      mean tag is NaN gets no refined joints.

    Raises:
        InputError: wrong shapes or invalid ``params``.

    Example:
        >>> grouped, scores = parse(heatmaps, tags)  # doctest: +SKIP
    """
    params = DecodeParams() if params is None else params
    hm, tg = as_maps(heatmaps, tags)
    K, H, W = hm.shape
    L = tg.shape[1]
    order = check_params(params, K)
    if K == 0 or H == 0 or W == 0:
        return np.zeros((0, K, 3 + L), np.float32), np.zeros(0, np.float32)
    people, sc = decode_maps(
        hm,
        tg,
        order,
        float32_threshold(float(params.detection_threshold)),
        float(params.tag_threshold),
        int(params.max_num_people),
        int(params.nms_kernel // 2),
        bool(params.use_detection_val),
        bool(params.ignore_too_much),
        bool(adjust),
        bool(refine),
        params.topk_ties == "cpu",
    )
    return people, sc


def top_k(heatmaps: np.ndarray, tags: np.ndarray, params: DecodeParams | None = None) -> dict:
    """The candidates ``match_by_tag`` sees: NMS peaks above the threshold, best ``max_num_people`` first.

    Same content as the official ``top_k`` output rows restricted to ``val > detection_threshold``.

    Returns:
        dict with ``counts`` (K,) int64, ``loc_k`` (K, k, 2) int64 (x, y), ``val_k`` (K, k) float32 and
        ``tag_k`` (K, k, L) float32; only the first ``counts[j]`` rows of joint j are set (rest zero).
    """
    params = DecodeParams() if params is None else params
    hm, tg = as_maps(heatmaps, tags)
    check_params(params, hm.shape[0])
    W = max(hm.shape[2], 1)
    counts, flat, vals, _ = top_k_peaks(
        hm,
        float32_threshold(float(params.detection_threshold)),
        int(params.max_num_people),
        int(params.nms_kernel // 2),
        params.topk_ties == "cpu",
    )
    loc = np.zeros(flat.shape + (2,), np.int64)
    for j in range(hm.shape[0]):
        n = counts[j]
        loc[j, :n, 0] = flat[j, :n] % W
        loc[j, :n, 1] = flat[j, :n] // W
    return {"counts": counts, "loc_k": loc, "val_k": vals, "tag_k": gather_tags(tg, counts, flat)}


def warmup() -> None:
    """Compile (or load from the disk cache) every decode kernel for L = 1 and L = 2 tags.

    Call once at start-up so the first real frame is not slowed down by compilation.
    """

    rng = np.random.default_rng(0)
    munkres(np.array([[1.0, 2.0], [2.0, 1.0]]))
    for L in (1, 2):
        hm = rng.random((3, 12, 10), dtype=np.float32)
        tg = rng.random((3, 12, 10, L), dtype=np.float32)
        parse(hm, tg, DecodeParams(joint_order=(0, 1, 2)))
        top_k(hm, tg, DecodeParams(joint_order=(0, 1, 2)))
