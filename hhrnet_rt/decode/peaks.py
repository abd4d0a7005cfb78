"""Peak NMS and top-k per joint: the official ``HeatmapParser.nms`` + ``top_k``, only for the peaks that count.

Official: ``det_nms = det * (maxpool_k(det) == det)`` (kernel 5, stride 1, padding 2; plateaus keep every
equal pixel), then ``torch.topk(30)`` over the whole flattened map, then ``match_by_tag`` keeps only
values ``> detection_threshold``. With a threshold >= 0 only NMS peaks above it can survive, so one
pass that tests the 5x5 window of just the pixels above the threshold and keeps a sorted list of the
best ``k`` gives the same candidates, in the same order (descending value; equal values by flat index,
lowest first -- the order of ties in ``torch.topk`` is implementation-defined, and the official golden
cases have none). The full-map sort (80-120 ms at 17x512x704) is gone.

The same pass records the maximum of each 16x16 tile of every map: it decides which tiles (and
columns) are searched for peaks at all, and refine prunes its search by it, so no later stage reads
a whole heatmap again.

Non-finite values (the official code would let NaN win top-k slots and suppress its neighbourhood):
NaN pixels are never peaks and never suppress a neighbour; ``+inf`` is an ordinary (largest) value.

For a negative threshold the suppressed pixels (value 0 in ``det_nms``) also pass it; they are then
candidates with value 0, as in the official code, ranked after equal peaks by flat index.
"""

from __future__ import annotations

import numpy as np

from hhrnet_rt.decode.cache import kernel

TILE = 16  # side of the tiles whose maxima the NMS pass records (refine prunes by them)


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
def _is_peak(hm, y, x, v, radius):
    """True when no pixel of the (clamped) window around (y, x) is greater than ``v`` (NaN ignored)."""
    H, W = hm.shape
    y0 = max(y - radius, 0)
    y1 = min(y + radius + 1, H)
    x0 = max(x - radius, 0)
    x1 = min(x + radius + 1, W)
    for yy in range(y0, y1):
        for xx in range(x0, x1):
            if hm[yy, xx] > v:
                return False
    return True


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
def _band_maxima(hm, y0, y1, acc, tmax, t0):
    """Per tile of rows [y0, y1), the maximum of its positive pixels (0 if none; NaN ignored), into
    ``tmax[t0 + tx]``; returns the band's maximum and leaves the per-column maxima in ``acc`` (W,).

    Column-wise maxima first, four rows per sweep: element-wise, so LLVM vectorises it, and ``acc``
    is loaded and stored once per four rows. The per-tile reduction then touches W values per band,
    with four independent running maxima per tile (one running max is a chain of dependent steps).
    ``v if v > a else a`` keeps ``a`` for NaN; all values are >= 0 and not NaN after that, so the
    order of the maxima does not matter.
    """
    W = hm.shape[1]
    acc[:] = 0.0
    y = y0
    while y + 4 <= y1:
        r0 = hm[y]
        r1 = hm[y + 1]
        r2 = hm[y + 2]
        r3 = hm[y + 3]
        for x in range(W):
            a = acc[x]
            v = r0[x]
            a = v if v > a else a
            v = r1[x]
            a = v if v > a else a
            v = r2[x]
            a = v if v > a else a
            v = r3[x]
            a = v if v > a else a
            acc[x] = a
        y += 4
    while y < y1:
        r0 = hm[y]
        for x in range(W):
            v = r0[x]
            acc[x] = v if v > acc[x] else acc[x]
        y += 1
    band = np.float32(0.0)
    n_full = W // TILE
    for tx in range(n_full):
        s = tx * TILE
        m0 = acc[s]
        m1 = acc[s + 1]
        m2 = acc[s + 2]
        m3 = acc[s + 3]
        for x in range(s + 4, s + TILE, 4):
            m0 = acc[x] if acc[x] > m0 else m0
            m1 = acc[x + 1] if acc[x + 1] > m1 else m1
            m2 = acc[x + 2] if acc[x + 2] > m2 else m2
            m3 = acc[x + 3] if acc[x + 3] > m3 else m3
        m0 = m1 if m1 > m0 else m0
        m2 = m3 if m3 > m2 else m2
        m0 = m2 if m2 > m0 else m0
        tmax[t0 + tx] = m0
        band = m0 if m0 > band else band
    if n_full * TILE < W:
        m0 = np.float32(0.0)
        for x in range(n_full * TILE, W):
            m0 = acc[x] if acc[x] > m0 else m0
        tmax[t0 + n_full] = m0
        band = m0 if m0 > band else band
    return band


@kernel
def top_k_peaks(heatmaps, threshold, k, radius):
    """NMS + top-k per joint, keeping only NMS values strictly above ``threshold``; and per-tile maxima.

    One pass over each map: bands of ``TILE`` rows get their per-tile maxima (which refine needs
    too), then only the tiles whose maximum is above a threshold >= 0 are searched, in row-major
    order (the order ``_insert`` relies on), and in them only the columns whose band maximum is.

    Args:
        heatmaps: (K, H, W) float32.
        threshold: detection threshold (candidates must be ``> threshold``).
        k: top-k size (``max_num_people``).
        radius: NMS window half-size (``nms_kernel // 2``).

    Returns:
        ``(counts (K,) int64, flat (K, k) int64, vals (K, k) float32, tmax (K, n_tiles) float32)``;
        row j holds ``counts[j]`` candidates in ``torch.topk`` order, ``flat = y * W + x``; ``tmax``
        is the maximum of the positive pixels of each ``TILE`` x ``TILE`` tile (0 if none, NaN
        ignored), tiles row-major.
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
    thr = np.float32(threshold)
    zero = np.float32(0.0)
    for j in range(K):
        hm = heatmaps[j]
        tm = tmax[j]
        n = 0
        for ty in range(ty_n):
            y0 = ty * TILE
            y1 = min(y0 + TILE, H)
            band = _band_maxima(hm, y0, y1, acc, tm, ty * tx_n)
            if threshold >= 0.0:
                # A suppressed pixel becomes 0 <= threshold, so only v > thr can count: only tiles
                # whose maximum is above it (the maxima include 0, which is <= thr), and in them
                # only the columns whose band maximum is.
                if not (band > thr):
                    continue
                n_runs = 0
                for tx in range(tx_n):
                    if not (tm[ty * tx_n + tx] > thr):
                        continue
                    x0 = tx * TILE
                    x1 = min(x0 + TILE, W)
                    while not (acc[x0] > thr):
                        x0 += 1
                    while not (acc[x1 - 1] > thr):
                        x1 -= 1
                    run_x0[n_runs] = x0
                    run_x1[n_runs] = x1
                    n_runs += 1
                for y in range(y0, y1):
                    row = hm[y]
                    for r in range(n_runs):
                        for x in range(run_x0[r], run_x1[r]):
                            v = row[x]
                            if not (v > thr):
                                continue
                            # On a blob's flank a direct neighbour is larger: reject before the window
                            # (left/right first; up/down then leave about one pixel per blob).
                            if radius > 0 and ((x > 0 and row[x - 1] > v) or (x + 1 < W and row[x + 1] > v)):
                                continue
                            if radius > 0 and (
                                (y > 0 and hm[y - 1, x] > v) or (y + 1 < H and hm[y + 1, x] > v)
                            ):
                                continue
                            if _is_peak(hm, y, x, v, radius):
                                n = _insert(vals[j], flat[j], n, k, v, y * W + x)
            else:
                for y in range(y0, y1):
                    row = hm[y]
                    for x in range(W):
                        v = row[x]
                        if v != v:
                            continue
                        nv = v if _is_peak(hm, y, x, v, radius) else zero
                        if nv > thr:
                            n = _insert(vals[j], flat[j], n, k, nv, y * W + x)
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
