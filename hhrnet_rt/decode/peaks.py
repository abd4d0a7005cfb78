"""Peak NMS and top-k per joint: the official ``HeatmapParser.nms`` + ``top_k``, only for the peaks that count.

Official: ``det_nms = det * (maxpool_k(det) == det)`` (kernel 5, stride 1, padding 2; plateaus keep every
equal pixel), then ``torch.topk(30)`` over the whole flattened map, then ``match_by_tag`` keeps only
values ``> detection_threshold``. The full-map sort (80-120 ms at 17x512x704) is replaced by one pass
that tests the 5x5 window of only the pixels that can matter.

Equal values (``DecodeParams.topk_ties``): ``torch.topk`` leaves their order unspecified, and it decides
which person a joint joins. "cpu" (the default) replays torch's CPU kernel step by step
(:mod:`.peaks_torch`, :mod:`.topk_order`), as the official code gives on a CPU and as the golden data and
the accuracy fixtures were made; "index" ranks them by flat index, lowest first (a sorted insert over the
pixels above the threshold, in row-major order). Both give the same candidates wherever no two of them
are equal. What CUDA's ``topk`` does is described in docs/accuracy.md.

The same pass records the maximum of each 16x16 tile of every map: it decides which tiles (and
columns) are searched for peaks at all, and refine prunes its search by it, so no later stage reads
a whole heatmap again.

Non-finite values (the official code would let NaN win top-k slots and suppress its neighbourhood):
NaN pixels are never peaks and never suppress a neighbour; ``+inf`` is an ordinary (largest) value.

For a negative threshold the suppressed pixels (value 0 in ``det_nms``) also pass it; they are then
candidates with value 0, as in the official code.
"""

from __future__ import annotations

import numpy as np

from hhrnet_rt.decode.cache import kernel
from hhrnet_rt.decode.nms import TILE, band_maxima, column_runs, is_peak, is_peak_quick
from hhrnet_rt.decode.peaks_torch import torch_cpu_joint

__all__ = ["TILE", "float32_threshold", "gather_tags", "top_k_peaks"]


def float32_threshold(threshold: float) -> float:
    """The float32 ``t`` with ``v > t  <=>  float(v) > threshold`` for every float32 ``v``.

    The official code compares float32 peak values with the float64 threshold (0.1 is not a float32),
    so a peak of exactly ``np.float32(0.1)`` passes; comparing in float32 against ``np.float32(0.1)``
    would drop it. The largest float32 not above the threshold gives the official answer.
    """
    t = np.float32(threshold)
    if float(t) > threshold:
        t = np.nextafter(t, np.float32(-np.inf))
    return float(t)


@kernel
def _insert(vals, idx, n, k, v, flat):
    """Insert (v, flat) into the descending list vals[:n], idx[:n] of capacity k; return the new n.

    Pixels arrive in increasing flat index, so a new value goes after the values equal to it.
    """
    if n == k:
        if not (v > vals[k - 1]):
            return n
        pos = k - 1
    else:
        pos = n
        n += 1
    while pos > 0 and vals[pos - 1] < v:
        vals[pos] = vals[pos - 1]
        idx[pos] = idx[pos - 1]
        pos -= 1
    vals[pos] = v
    idx[pos] = flat
    return n


@kernel
def _index_joint(hm, tm, acc, run_x0, run_x1, threshold, k, radius, vals, flat):
    """One joint, equal values by flat index (``topk_ties="index"``); returns the candidate count.

    Bands of ``TILE`` rows get their per-tile maxima (which refine needs too), then only the tiles
    whose maximum is above a threshold >= 0 are searched, in row-major order (the order ``_insert``
    relies on), and in them only the columns whose band maximum is.
    """
    H, W = hm.shape
    tx_n = (W + TILE - 1) // TILE
    ty_n = (H + TILE - 1) // TILE
    thr = np.float32(threshold)
    zero = np.float32(0.0)
    n = 0
    for ty in range(ty_n):
        y0 = ty * TILE
        y1 = min(y0 + TILE, H)
        band = band_maxima(hm, y0, y1, acc, tm, ty * tx_n)
        if threshold >= 0.0:
            # A suppressed pixel becomes 0 <= threshold, so only v > thr can count: only tiles
            # whose maximum is above it (the maxima include 0, which is <= thr), and in them
            # only the columns whose band maximum is.
            if not (band > thr):
                continue
            n_runs = column_runs(tm, acc, ty * tx_n, tx_n, W, thr, run_x0, run_x1)
            for y in range(y0, y1):
                row = hm[y]
                for r in range(n_runs):
                    for x in range(run_x0[r], run_x1[r]):
                        v = row[x]
                        if v > thr and is_peak_quick(hm, y, x, v, radius):
                            n = _insert(vals, flat, n, k, v, y * W + x)
        else:
            for y in range(y0, y1):
                row = hm[y]
                for x in range(W):
                    v = row[x]
                    if v != v:
                        continue
                    nv = v if is_peak(hm, y, x, v, radius) else zero
                    if nv > thr:
                        n = _insert(vals, flat, n, k, nv, y * W + x)
    return n


@kernel
def _order_is_settled(vals, n, k):
    """True when torch's CPU top-k must give exactly these ``n`` candidates in this order: fewer than
    ``k`` (so every NMS value above the threshold is among torch's k, whatever lies below it) and no two
    equal (so descending value alone orders them). Then the replay of torch's kernel, which must visit
    the low values too, is not needed; with any tie it is."""
    if n >= k:
        return False
    for r in range(1, n):
        if vals[r] == vals[r - 1]:
            return False
    return True


@kernel
def top_k_peaks(heatmaps, threshold, k, radius, torch_cpu_order):
    """NMS + top-k per joint, keeping only NMS values strictly above ``threshold``; and per-tile maxima.

    Args:
        heatmaps: (K, H, W) float32.
        threshold: detection threshold (candidates must be ``> threshold``).
        k: top-k size (``max_num_people``).
        radius: NMS window half-size (``nms_kernel // 2``).
        torch_cpu_order: equal values in ``torch.topk``'s CPU order (:mod:`.peaks_torch`), else by flat
            index, lowest first.

    Returns:
        ``(counts (K,) int64, flat (K, k) int64, vals (K, k) float32, tmax (K, n_tiles) float32)``;
        row j holds ``counts[j]`` candidates, best first, ``flat = y * W + x``; ``tmax`` is the maximum
        of the positive pixels of each ``TILE`` x ``TILE`` tile (0 if none, NaN ignored), row-major.
    """
    K, H, W = heatmaps.shape
    tx_n = (W + TILE - 1) // TILE
    ty_n = (H + TILE - 1) // TILE
    counts = np.zeros(K, np.int64)
    flat = np.zeros((K, k), np.int64)
    vals = np.zeros((K, k), np.float32)
    tmax = np.empty((K, ty_n * tx_n), np.float32)
    acc = np.empty(W, np.float32)
    # Column ranges of the band that hold a value above the threshold (one range per such tile).
    run_x0 = np.empty(tx_n, np.int64)
    run_x1 = np.empty(tx_n, np.int64)
    for j in range(K):
        n = _index_joint(heatmaps[j], tmax[j], acc, run_x0, run_x1, threshold, k, radius, vals[j], flat[j])
        if torch_cpu_order and not _order_is_settled(vals[j], n, k):
            n = torch_cpu_joint(
                heatmaps[j], tmax[j], acc, run_x0, run_x1, threshold, k, radius, vals[j], flat[j]
            )
            if n < k:  # the slots below the threshold are not candidates: zero, as in the other order
                vals[j, n:] = 0.0
                flat[j, n:] = 0
        counts[j] = n
    return counts, flat, vals, tmax


@kernel
def gather_tags(tags, counts, flat):
    """Tags at the candidate pixels of (K, L, H, W) tag planes: (K, k, L) float32 (rows beyond
    ``counts[j]`` are zero)."""
    K, L, H, W = tags.shape
    k = flat.shape[1]
    out = np.zeros((K, k, L), np.float32)
    for j in range(K):
        for r in range(counts[j]):
            y = flat[j, r] // W
            x = flat[j, r] - y * W
            for d in range(L):
                out[j, r, d] = tags[j, d, y, x]
    return out
