"""Top-k of one joint's NMS map in ``torch.topk``'s CPU order (``DecodeParams.topk_ties == "cpu"``).

:mod:`.topk_order` replays libstdc++ on (value, flat index) pairs. For a real map (``64 * k <= H * W``:
every input size hhrnet-rt accepts, with the official k = 30) that is ``std::partial_sort``: a heap of the
first k pixels' NMS values, then every later pixel whose NMS value beats the heap's smallest replaces it.
Only the order of those events matters, so the whole map need not be visited: once the smallest value in
the heap is >= 0 (after a few pixels of a real map), only NMS peaks above it can enter, and the
per-tile maxima (which the pass records anyway, for refine) tell which tiles and columns can hold one.
Before that point every pixel is replayed exactly. Small maps (``64 * k > H * W``) take torch's other
branch, ``nth_element`` + ``sort``, on every pixel's NMS value.
"""

from __future__ import annotations

import numpy as np

from hhrnet_rt.decode.cache import kernel
from hhrnet_rt.decode.nms import TILE, band_maxima, column_runs, is_peak_quick, nms_key
from hhrnet_rt.decode.topk_order import adjust_heap, make_heap, sort_heap, topk_in_place, uses_heap


@kernel
def _leading_above(vals, k, threshold):
    """How many of the first ``k`` (descending) values are ``> threshold``."""
    n = 0
    while n < k and vals[n] > threshold:
        n += 1
    return n


@kernel
def _replay(hm, hv, hi, k, radius, pos, end, while_negative):
    """Replay ``std::__heap_select`` for pixels ``pos .. end - 1`` (each pixel's NMS value computed), with
    ``while_negative`` only as long as the heap's smallest value is < 0; return the next pixel."""
    W = hm.shape[1]
    while pos < end and not (while_negative and hv[0] >= 0.0):
        y = pos // W
        key = nms_key(hm, y, pos - y * W, radius)
        if key > hv[0]:
            adjust_heap(hv, hi, 0, 0, k, key, pos)
        pos += 1
    return pos


@kernel
def heap_joint(hm, tm, acc, run_x0, run_x1, threshold, k, radius, vals, flat):
    """One joint through torch's ``partial_sort`` branch; fills ``tm`` (per-tile maxima), ``vals`` and
    ``flat`` (the k results, best first) and returns how many are ``> threshold``."""
    H, W = hm.shape
    tx_n = (W + TILE - 1) // TILE
    ty_n = (H + TILE - 1) // TILE
    for p in range(k):
        y = p // W
        vals[p] = nms_key(hm, y, p - y * W, radius)
        flat[p] = p
    make_heap(vals, flat, 0, k)
    pos = k
    for ty in range(ty_n):
        y0 = ty * TILE
        y1 = min(y0 + TILE, H)
        band = band_maxima(hm, y0, y1, acc, tm, ty * tx_n)
        end = y1 * W
        pos = _replay(hm, vals, flat, k, radius, pos, end, True)
        # The rest of the current row too, so the search below starts on a row boundary.
        pos = _replay(hm, vals, flat, k, radius, pos, min((pos + W - 1) // W * W, end), False)
        if pos >= end:
            continue
        # From here only an NMS peak above the heap's smallest value (>= 0, never falling) can enter.
        thr = vals[0]
        if not (band > thr):
            pos = end
            continue
        n_runs = column_runs(tm, acc, ty * tx_n, tx_n, W, thr, run_x0, run_x1)
        for y in range(pos // W, y1):
            row = hm[y]
            for r in range(n_runs):
                for x in range(run_x0[r], run_x1[r]):
                    v = row[x]
                    if v > vals[0] and is_peak_quick(hm, y, x, v, radius):
                        adjust_heap(vals, flat, 0, 0, k, v, y * W + x)
        pos = end
    sort_heap(vals, flat, 0, k)
    return _leading_above(vals, k, threshold)


@kernel
def small_joint(hm, tm, acc, threshold, k, radius, vals, flat):
    """One joint through torch's ``nth_element`` branch (``64 * k > H * W``; ``k`` is capped at H * W,
    where torch would refuse); fills ``tm``, ``vals[:k']``, ``flat[:k']`` and returns the count above
    ``threshold``."""
    H, W = hm.shape
    tx_n = (W + TILE - 1) // TILE
    for ty in range((H + TILE - 1) // TILE):
        band_maxima(hm, ty * TILE, min(ty * TILE + TILE, H), acc, tm, ty * tx_n)
    n = H * W
    qv = np.empty(n, np.float32)
    qi = np.arange(n)
    for p in range(n):
        y = p // W
        qv[p] = nms_key(hm, y, p - y * W, radius)
    kk = min(k, n)
    topk_in_place(qv, qi, kk)
    vals[:kk] = qv[:kk]
    flat[:kk] = qi[:kk]
    return _leading_above(vals, kk, threshold)


@kernel
def torch_cpu_joint(hm, tm, acc, run_x0, run_x1, threshold, k, radius, vals, flat):
    """One joint's top-k in torch's CPU order (either branch); returns the count above ``threshold``."""
    if uses_heap(k, hm.shape[0] * hm.shape[1]):
        return heap_joint(hm, tm, acc, run_x0, run_x1, threshold, k, radius, vals, flat)
    return small_joint(hm, tm, acc, threshold, k, radius, vals, flat)
