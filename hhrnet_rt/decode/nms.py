"""The official peak rule (``det * (maxpool(det) == det)``) for single pixels, and the per-tile maxima
that decide which parts of a map are searched at all.

Non-finite values: a NaN pixel is never a peak and never suppresses a neighbour; ``+inf`` is an ordinary
(largest) value.
"""

from __future__ import annotations

import numpy as np

from hhrnet_rt.decode.cache import kernel

TILE = 16  # side of the tiles whose maxima the NMS pass records (refine prunes by them)


@kernel
def is_peak(hm, y, x, v, radius):
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
def nms_key(hm, y, x, radius):
    """The official NMS map's value at (y, x), ``det * (maxpool == det)``, as a top-k key.

    A peak keeps its value; any other pixel becomes zero with its sign (``-0.5 * 0.0`` is ``-0.0``, as
    in the official product). hhrnet-rt's rules for non-finite values: NaN is ``-inf`` (never a
    candidate), and a ``-inf`` that is not a peak is ``-0.0`` (the official product would be NaN).
    """
    v = hm[y, x]
    if v != v:
        return np.float32(-np.inf)
    if is_peak(hm, y, x, v, radius):
        return v
    if v == -np.inf:
        return np.float32(-0.0)
    return v * np.float32(0.0)


@kernel
def band_maxima(hm, y0, y1, acc, tmax, t0):
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
def column_runs(tm, acc, t0, tx_n, W, thr, run_x0, run_x1):
    """The column ranges of one band of rows worth searching for values above ``thr``: in each tile whose
    maximum (``tm[t0 + tx]``) is above it, from its first to its last column whose band maximum (``acc``,
    from :func:`band_maxima`) is. Fills ``run_x0``/``run_x1`` and returns how many ranges there are."""
    n_runs = 0
    for tx in range(tx_n):
        if not (tm[t0 + tx] > thr):
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
    return n_runs


@kernel
def is_peak_quick(hm, y, x, v, radius):
    """:func:`is_peak`, after the cheap rejections: on a blob's flank a direct neighbour is larger
    (left/right first; up/down then leave about one pixel per blob to test the whole window for)."""
    H, W = hm.shape
    row = hm[y]
    if radius > 0 and ((x > 0 and row[x - 1] > v) or (x + 1 < W and row[x + 1] > v)):
        return False
    if radius > 0 and ((y > 0 and hm[y - 1, x] > v) or (y + 1 < H and hm[y + 1, x] > v)):
        return False
    return is_peak(hm, y, x, v, radius)
