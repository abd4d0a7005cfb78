"""The refine pick without a full-map scan per joint: exact first-occurrence argmax by bounds.

The official refine takes, for a missing joint j of a person, the first (row-major) argmax of
``target = det[j] - np.round(sqrt(sum_L (tag[j] - prev_tag)**2))`` (float32) and fills the joint when
``det > 0`` there. Only two things matter: whether the first argmax has ``det > 0`` and, if so, where
it is. So:

1. all pixels of the 16x16 tiles at the person's own joints are evaluated first (their tags are the
   person's, so this gives a high starting value, often 0 at an empty pixel);
2. then the pixels with ``det > 0`` anywhere, tiles visited by decreasing maximum of ``det``, which
   bounds ``target <= det`` (``round(tt) >= 0``); equal values go to the smaller flat index ("first
   occurrence"). If the best so far is a ``det <= 0`` pixel and no ``det > 0`` pixel beats it, the
   pick has ``det <= 0``: no fill, wherever exactly it is;
3. if the best is a ``det > 0`` pixel with value > 0, no ``det <= 0`` pixel can beat it: fill there;
   if its value is <= 0, one ``det <= 0`` pixel anywhere that beats it rules the fill out.

Steps 2 and 3 skip tiles whose tag bounding box is too far from ``prev_tag``: ``round(tt)`` is at
least the rounded distance to the box. The boxes are made per tile on first use and shared by all
people of the frame, so a tile's tags are read about once per joint type.

Bounds are computed with float32 operations that are monotone, so they never cut off a pixel the full
scan would pick. NaN pixels of the target are skipped (numpy's argmax would return the first NaN).
"""

from __future__ import annotations

import numpy as np

from hhrnet_rt.decode.cache import kernel

# Distinct tiles at the person's joints scanned first for a starting value (see refine_pick).
# Three: with one, 20 synthetic people decode 2-5% faster, but at 10 people one pick starts so low
# that refine takes 0.49 ms instead of 0.35 ms; a better start is the more robust choice.
_HINT_TILES = 3


@kernel
def positive_order(tmax, order):
    """Write the tiles with a positive maximum into ``order`` by decreasing maximum (stable, so equal
    maxima stay in tile order); return how many there are."""
    n = 0
    for t in range(tmax.shape[0]):
        if tmax[t] > 0:
            order[n] = t
            n += 1
    if n > 1:
        srt = np.argsort(-tmax[order[:n]], kind="mergesort")
        order[:n] = order[:n][srt]
    return n


@kernel
def _tile_box(tg, lo, hi, have, t, tile, tx_n):
    """Make tile t's tag bounding box (NaN ignored; an all-NaN tile gets lo=+inf > hi=-inf).

    ``tg`` is the joint's (L, H, W) tag planes. The running min/max live in arrays allocated here:
    LLVM knows fresh arrays do not alias ``tg`` and vectorises the row loop. Measured: reused scratch
    arrays (aliasing unknown) and scalar running values are both slower (20 people: ~2.4 ms per parse
    against ~2.1 ms).
    """
    L, H, W = tg.shape
    ty0 = (t // tx_n) * tile
    tx0 = (t % tx_n) * tile
    n = min(tx0 + tile, W) - tx0
    a = np.full(L * n, np.inf, np.float32)
    b = np.full(L * n, -np.inf, np.float32)
    for y in range(ty0, min(ty0 + tile, H)):
        for d in range(L):
            # Element-wise over the row's contiguous run in each plane, so it vectorises; then fold.
            seg = tg[d, y, tx0 : tx0 + n]  # indexed by the loop counter: no negative-index checks
            for i in range(n):
                v = seg[i]
                k = d * n + i
                a[k] = v if v < a[k] else a[k]
                b[k] = v if v > b[k] else b[k]
    for d in range(L):
        m_lo = np.float32(np.inf)
        m_hi = np.float32(-np.inf)
        for k in range(d * n, (d + 1) * n):
            m_lo = min(m_lo, a[k])
            m_hi = max(m_hi, b[k])
        lo[t, d] = m_lo
        hi[t, d] = m_hi
    have[t] = True


@kernel
def _tag_floor(tg, lo, hi, have, t, tile, tx_n, prev_tag):
    """``np.round`` of the distance from ``prev_tag`` to tile t's tag box: a lower bound of
    ``round(tt)`` over the tile (same float32 steps, all monotone). +inf for an all-NaN tile."""
    if not have[t]:
        _tile_box(tg, lo, hi, have, t, tile, tx_n)
    s = np.float32(0.0)
    for d in range(prev_tag.shape[0]):
        if not (lo[t, d] <= hi[t, d]):
            return np.float32(np.inf)  # every tag of the tile is NaN: no pixel has a target
        if prev_tag[d] < lo[t, d]:
            diff = lo[t, d] - prev_tag[d]
        elif prev_tag[d] > hi[t, d]:
            diff = hi[t, d] - prev_tag[d]
        else:
            diff = np.float32(0.0)
        s = s + diff * diff
    return np.rint(np.sqrt(s))


@kernel
def _target(hm, tg, prev_tag, y, x):
    """``det - np.round(sqrt(sum_L (tag - prev_tag)**2))`` at one pixel, all in float32."""
    s = np.float32(0.0)
    for d in range(tg.shape[0]):
        diff = tg[d, y, x] - prev_tag[d]
        s = s + diff * diff
    return hm[y, x] - np.rint(np.sqrt(s))


@kernel
def _scan(hm, tg, prev_tag, best, best_i, best_pos, y0, x0, y1, x1, positive_only):
    """Update the running first-occurrence max (best, best_i, best_pos = det > 0 there) with the
    pixels of [y0, y1) x [x0, x1) (only those with ``det > 0`` if ``positive_only``)."""
    W = hm.shape[1]
    for y in range(y0, y1):
        for x in range(x0, x1):
            d = hm[y, x]
            if positive_only and not (d > 0):
                continue
            # target <= det: a pixel below best cannot win, an equal one only at a smaller index.
            i = y * W + x
            if best_i >= 0 and (d < best or (d == best and i > best_i)):
                continue
            v = _target(hm, tg, prev_tag, y, x)
            if v > best or (v == best and (best_i < 0 or i < best_i)):
                best = v
                best_i = i
                best_pos = d > 0
    return best, best_i, best_pos


@kernel
def _beaten_in(hm, tg, prev_tag, best, best_i, y0, x0, y1, x1):
    """Whether a pixel of [y0, y1) x [x0, x1) with ``det <= 0`` beats (best, best_i)."""
    W = hm.shape[1]
    for y in range(y0, y1):
        for x in range(x0, x1):
            if not (hm[y, x] <= 0):
                continue
            v = _target(hm, tg, prev_tag, y, x)
            if v > best or (v == best and y * W + x < best_i):
                return True
    return False


@kernel
def refine_pick(hm, tg, prev_tag, tmax, order, lo, hi, have, tile, hint_y, hint_x, n_hint):
    """Flat index of the official refine pick if it fills the joint (``det > 0`` there), else -1.

    Args:
        hm, tg: (H, W) heatmap and (L, H, W) tag planes of the joint.
        prev_tag: (L,) the person's mean tag.
        tmax: (n_tiles,) maximum of the positive pixels per tile (from :func:`.peaks.top_k_peaks`).
        order: the tiles with a positive maximum, by decreasing maximum (:func:`positive_order`).
        lo, hi, have: (n_tiles, L), (n_tiles, L), (n_tiles,) per-tile tag boxes of this joint, made
            here on first use (pass the same arrays for every person of the frame).
        hint_y, hint_x, n_hint: pixel positions of the person's present joints.
    """
    H, W = hm.shape
    tx_n = (W + tile - 1) // tile
    best = np.float32(-np.inf)
    best_i = -1
    best_pos = False
    # 1. Every pixel of the person's own joints' tiles: their tags are the person's, so this gives a
    #    high first value (often 0 at an empty pixel) that lets the bounds prune nearly everything.
    #    A few distinct tiles are enough for that; each costs up to a full tile of tag distances.
    seen = np.full(_HINT_TILES, -1, np.int64)
    n_seen = 0
    for h in range(n_hint):
        if n_seen == _HINT_TILES:
            break
        t = (hint_y[h] // tile) * tx_n + hint_x[h] // tile
        dup = False
        for k in range(n_seen):
            dup = dup or seen[k] == t
        if dup:
            continue
        seen[n_seen] = t
        n_seen += 1
        ty0 = (t // tx_n) * tile
        tx0 = (t % tx_n) * tile
        best, best_i, best_pos = _scan(
            hm, tg, prev_tag, best, best_i, best_pos, ty0, tx0, min(ty0 + tile, H), min(tx0 + tile, W), False
        )
    # 2. Pixels with det > 0 anywhere, tiles by decreasing maximum.
    for o in range(order.shape[0]):
        t = order[o]
        if best_i >= 0 and tmax[t] < best:
            break  # every remaining pixel with det > 0 has target <= det < best
        ty0 = (t // tx_n) * tile
        tx0 = (t % tx_n) * tile
        if best_i >= 0:
            ub = tmax[t] - _tag_floor(tg, lo, hi, have, t, tile, tx_n, prev_tag)
            if ub < best or (ub == best and ty0 * W + tx0 > best_i):
                continue  # below best, or equal only at larger flat indices
        best, best_i, best_pos = _scan(
            hm, tg, prev_tag, best, best_i, best_pos, ty0, tx0, min(ty0 + tile, H), min(tx0 + tile, W), True
        )
    if best_i < 0 or not best_pos:
        # No det > 0 pixel beats the best found (or there is none): the pick has det <= 0, no fill.
        return -1
    if best > 0:
        return best_i  # a det <= 0 pixel has target <= 0 < best
    # 3. best <= 0 at a det > 0 pixel: a det <= 0 pixel beating it anywhere means no fill.
    #    A tie (best == 0) can only be lost to smaller flat indices: tiles up to best's row suffice.
    ty_end = H if best < 0 else best_i // W + 1
    for ty0 in range(0, ty_end, tile):
        for tx0 in range(0, W, tile):
            t = (ty0 // tile) * tx_n + tx0 // tile
            # A det <= 0 pixel's target is at most -round(tag distance) <= -floor of the tile.
            ub = -_tag_floor(tg, lo, hi, have, t, tile, tx_n, prev_tag)
            if ub < best or (ub == best and ty0 * W + tx0 > best_i):
                continue
            if _beaten_in(hm, tg, prev_tag, best, best_i, ty0, tx0, min(ty0 + tile, H), min(tx0 + tile, W)):
                return -1
    return best_i
