"""adjust, scores and refine: the official post-grouping steps on the *pre-NMS* heatmaps.

- adjust: each joint with ``val > 0`` moves a quarter pixel towards its larger neighbour (strict ``>``,
  so equal neighbours give -0.25; neighbours clamped at the border), then +0.5.
- scores: float32 ``person[:, 2].mean()`` over all K joints (missing = 0), after adjust, before refine.
- refine: ``prev_tag`` = float32 mean of the tags at ``int()`` of each present joint's (adjusted)
  coordinates; for every *missing* joint j, the first (row-major) argmax of
  ``det[j] - np.round(sqrt(sum_L (tag[j] - prev_tag)**2))`` in float32; filled when ``det > 0`` there,
  at ``+0.5 +-0.25`` with tag columns left 0. The official code also computes it for present joints
  and throws it away; skipping them gives the same result.

The refine argmax is exact but not a full scan: the map is cut into tiles whose maxima of ``det`` bound
``det - round(tt) <= det`` (``round(tt) >= 0``), tiles are visited from the largest maximum down, and
the search stops once no remaining tile can reach the best value; equal values are resolved by flat
index, which is what "first occurrence" means.

Non-finite values: NaN pixels of ``det - round(tt)`` are skipped (numpy's argmax would pick the first
NaN); if every pixel is NaN the joint is not filled. A person whose joints all have ``val <= 0`` (only
possible with a negative detection threshold) is not refined (numpy would average an empty list).
"""

from __future__ import annotations

import numpy as np

from hhrnet_rt.decode.cache import kernel
from hhrnet_rt.decode.npsum import mean_rows_f32, pairwise_sum_f32

TILE = 16


@kernel
def _quarter(hm, y, x):
    """Official quarter offsets (dx, dy) for integer peak (x, y) of map ``hm``."""
    H, W = hm.shape
    dx = np.float32(0.25) if hm[y, min(x + 1, W - 1)] > hm[y, max(x - 1, 0)] else np.float32(-0.25)
    dy = np.float32(0.25) if hm[min(y + 1, H - 1), x] > hm[max(y - 1, 0), x] else np.float32(-0.25)
    return dx, dy


@kernel
def adjust(people, heatmaps):
    """In place on (P, K, 3+L) float32 people: quarter offset and +0.5 for every joint with val > 0."""
    P, K, _ = people.shape
    half = np.float32(0.5)
    for p in range(P):
        for j in range(K):
            if people[p, j, 2] > 0:
                x = int(people[p, j, 0])
                y = int(people[p, j, 1])
                dx, dy = _quarter(heatmaps[j], y, x)
                people[p, j, 0] = (people[p, j, 0] + dx) + half
                people[p, j, 1] = (people[p, j, 1] + dy) + half


@kernel
def scores(people):
    """Official score: float32 mean of the K joint values (numpy pairwise order)."""
    P, K, _ = people.shape
    out = np.zeros(P, np.float32)
    col = np.empty(K, np.float32)
    for p in range(P):
        for j in range(K):
            col[j] = people[p, j, 2]
        out[p] = pairwise_sum_f32(col, K) / np.float32(K)
    return out


@kernel
def tile_maxima(hm, tile):
    """Max of each tile of ``hm`` (NaN ignored; -inf for an all-NaN tile), and tile order by max desc."""
    H, W = hm.shape
    ty_n = (H + tile - 1) // tile
    tx_n = (W + tile - 1) // tile
    tmax = np.full(ty_n * tx_n, -np.inf, np.float32)
    for y in range(H):
        base = (y // tile) * tx_n
        for x in range(W):
            v = hm[y, x]
            t = base + x // tile
            if v > tmax[t]:
                tmax[t] = v
    # Stable: equal maxima stay in tile order, so ties tend to be met in flat-index order first.
    order = np.argsort(-tmax, kind="mergesort")
    return tmax, order


@kernel
def _refine_argmax(hm, tg, prev_tag, tmax, order, tile):
    """First-occurrence argmax of ``hm - rint(||tg - prev_tag||)`` (float32), NaN skipped; -1 if none."""
    H, W = hm.shape
    L = tg.shape[2]
    tx_n = (W + tile - 1) // tile
    best = np.float32(-np.inf)
    best_i = -1
    for o in range(order.shape[0]):
        t = order[o]
        if tmax[t] < best:
            break  # every remaining tile has det < best, hence det - round(tt) < best
        ty0 = (t // tx_n) * tile
        tx0 = (t % tx_n) * tile
        if tmax[t] == best and ty0 * W + tx0 > best_i:
            continue  # can at best tie, and only at larger flat indices
        for y in range(ty0, min(ty0 + tile, H)):
            for x in range(tx0, min(tx0 + tile, W)):
                s = np.float32(0.0)
                for d in range(L):
                    diff = tg[y, x, d] - prev_tag[d]
                    s = s + diff * diff
                v = hm[y, x] - np.rint(np.sqrt(s))
                i = y * W + x
                if v > best or (v == best and (best_i < 0 or i < best_i)):
                    best = v
                    best_i = i
    return best_i


@kernel
def refine(people, heatmaps, tags, tile=TILE):
    """In place on (P, K, 3+L) float32 people: fill missing joints as the official ``refine`` does."""
    P, K, _ = people.shape
    _, H, W, L = tags.shape
    n_tiles = ((H + tile - 1) // tile) * ((W + tile - 1) // tile)
    tmax = np.zeros((K, n_tiles), np.float32)
    order = np.zeros((K, n_tiles), np.int64)
    have = np.zeros(K, np.bool_)
    found = np.zeros((K, L), np.float32)
    prev = np.zeros(L, np.float32)
    half = np.float32(0.5)
    for p in range(P):
        n = 0
        for j in range(K):
            if people[p, j, 2] > 0:
                x = int(people[p, j, 0])
                y = int(people[p, j, 1])
                for d in range(L):
                    found[n, d] = tags[j, y, x, d]
                n += 1
        if n == 0:
            continue
        mean_rows_f32(found, n, prev)
        for j in range(K):
            if people[p, j, 2] != 0:
                continue
            if not have[j]:
                tmax[j], order[j] = tile_maxima(heatmaps[j], tile)
                have[j] = True
            i = _refine_argmax(heatmaps[j], tags[j], prev, tmax[j], order[j], tile)
            if i < 0:
                continue
            y = i // W
            x = i - y * W
            val = heatmaps[j, y, x]
            if val > 0:
                dx, dy = _quarter(heatmaps[j], y, x)
                people[p, j, 0] = (np.float32(x) + half) + dx
                people[p, j, 1] = (np.float32(y) + half) + dy
                people[p, j, 2] = val
