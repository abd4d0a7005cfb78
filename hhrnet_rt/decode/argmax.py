"""The refine pick without a full-map scan per joint: exact first-occurrence argmax by bounds.

The official refine takes, for a missing joint j of a person, the first (row-major) argmax of
``target = det[j] - np.round(sqrt(sum_L (tag[j] - prev_tag)**2))`` (float32) and fills the joint when
``det > 0`` there. Only two things matter: whether the first argmax has ``det > 0`` and, if so, where
it is. So:

1. the best pixel among those with ``det > 0`` is found with 16x16 tiles visited by decreasing
   maximum of ``det``, stopping once a tile's maximum is below the best value (``round(tt) >= 0``
   makes ``target <= det``); equal values go to the smaller flat index ("first occurrence");
2. if that value is > 0, no pixel with ``det <= 0`` can beat it: fill there;
3. otherwise one pixel with ``det <= 0`` that beats it (greater, or equal at a smaller index) rules
   the fill out. It is looked for first in the tiles at the person's own joints (their tags are the
   person's, so such a pixel is usually there), then everywhere.

Both searches also skip tiles whose tag bounding box is too far from ``prev_tag``: ``round(tt)`` is at
least the rounded distance to the box. The boxes are made per tile on first use and shared by all
people of the frame, so a tile's tags are read about once per joint type.

Bounds are computed with float32 operations that are monotone, so they never cut off a pixel the full
scan would pick. NaN pixels of the target are skipped (numpy's argmax would return the first NaN).
"""

from __future__ import annotations

import numpy as np

from hhrnet_rt.decode.cache import kernel


@kernel
def positive_tiles(hm, tile):
    """Per tile, the maximum of its positive pixels (0 if none; NaN ignored), and the tiles that have
    one, by decreasing maximum (stable, so equal maxima stay in tile order)."""
    H, W = hm.shape
    ty_n = (H + tile - 1) // tile
    tx_n = (W + tile - 1) // tile
    tmax = np.zeros(ty_n * tx_n, np.float32)
    acc = np.zeros(W, np.float32)
    for ty in range(ty_n):
        # Column-wise max over the band's rows first: element-wise, so it vectorises; the per-tile
        # reduction then touches W values per band instead of W * tile.
        acc[:] = 0.0
        for y in range(ty * tile, min(ty * tile + tile, H)):
            row = hm[y]
            for x in range(W):
                v = row[x]
                acc[x] = v if v > acc[x] else acc[x]
        for tx in range(tx_n):
            m = np.float32(0.0)
            for x in range(tx * tile, min(tx * tile + tile, W)):
                if acc[x] > m:
                    m = acc[x]
            tmax[ty * tx_n + tx] = m
    pos = np.flatnonzero(tmax > 0)
    order = pos[np.argsort(-tmax[pos], kind="mergesort")]
    return tmax, order


@kernel
def _tile_box(tg, lo, hi, have, t, tile, tx_n):
    """Make tile t's tag bounding box (NaN ignored; an all-NaN tile gets lo=+inf > hi=-inf)."""
    H, W, L = tg.shape
    ty0 = (t // tx_n) * tile
    tx0 = (t % tx_n) * tile
    for d in range(L):
        lo[t, d] = np.inf
        hi[t, d] = -np.inf
    for y in range(ty0, min(ty0 + tile, H)):
        for x in range(tx0, min(tx0 + tile, W)):
            for d in range(L):
                v = tg[y, x, d]
                lo[t, d] = v if v < lo[t, d] else lo[t, d]
                hi[t, d] = v if v > hi[t, d] else hi[t, d]
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
    for d in range(tg.shape[2]):
        diff = tg[y, x, d] - prev_tag[d]
        s = s + diff * diff
    return hm[y, x] - np.rint(np.sqrt(s))


@kernel
def _scan_positive(hm, tg, prev_tag, best, best_i, y0, x0, y1, x1):
    """Update (best, best_i) with the pixels of [y0, y1) x [x0, x1) that have ``det > 0``."""
    W = hm.shape[1]
    for y in range(y0, y1):
        for x in range(x0, x1):
            d = hm[y, x]
            # target <= det: a pixel below best cannot win (equal may, at a smaller index).
            if not (d > 0) or (best_i >= 0 and d < best):
                continue
            v = _target(hm, tg, prev_tag, y, x)
            i = y * W + x
            if v > best or (v == best and (best_i < 0 or i < best_i)):
                best = v
                best_i = i
    return best, best_i


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
        hm, tg: (H, W) heatmap and (H, W, L) tags of the joint.
        prev_tag: (L,) the person's mean tag.
        tmax, order: from :func:`positive_tiles`.
        lo, hi, have: (n_tiles, L), (n_tiles, L), (n_tiles,) per-tile tag boxes of this joint, made
            here on first use (pass the same arrays for every person of the frame).
        hint_y, hint_x, n_hint: pixel positions of the person's present joints.
    """
    H, W = hm.shape
    tx_n = (W + tile - 1) // tile
    best = np.float32(-np.inf)
    best_i = -1
    # 1. Best among det > 0. The person's own joints' tiles first: a good early value prunes more.
    for h in range(n_hint):
        ty0 = (hint_y[h] // tile) * tile
        tx0 = (hint_x[h] // tile) * tile
        best, best_i = _scan_positive(
            hm, tg, prev_tag, best, best_i, ty0, tx0, min(ty0 + tile, H), min(tx0 + tile, W)
        )
    for o in range(order.shape[0]):
        t = order[o]
        if best_i >= 0 and tmax[t] < best:
            break  # tiles come by decreasing maximum: every remaining pixel has target < best
        ty0 = (t // tx_n) * tile
        tx0 = (t % tx_n) * tile
        if best_i >= 0:
            ub = tmax[t] - _tag_floor(tg, lo, hi, have, t, tile, tx_n, prev_tag)
            if ub < best or (ub == best and ty0 * W + tx0 > best_i):
                continue  # below best, or equal only at larger flat indices
        best, best_i = _scan_positive(
            hm, tg, prev_tag, best, best_i, ty0, tx0, min(ty0 + tile, H), min(tx0 + tile, W)
        )
    if best_i < 0:
        return -1  # no positive pixel: whatever wins has det <= 0 (or everything is NaN)
    if best > 0:
        return best_i  # a det <= 0 pixel has target <= 0 < best
    # 2. Is there a det <= 0 pixel that beats it? Then the pick has det <= 0: no fill.
    for h in range(n_hint):
        ty0 = (hint_y[h] // tile) * tile
        tx0 = (hint_x[h] // tile) * tile
        if _beaten_in(hm, tg, prev_tag, best, best_i, ty0, tx0, min(ty0 + tile, H), min(tx0 + tile, W)):
            return -1
    # A tie (best == 0) can only be lost to smaller flat indices: tiles up to best's row suffice.
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
