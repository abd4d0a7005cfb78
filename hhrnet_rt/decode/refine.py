"""adjust, scores and refine: the official post-grouping steps on the *pre-NMS* heatmaps.

- adjust: each joint with ``val > 0`` moves a quarter pixel towards its larger neighbour (strict ``>``,
  so equal neighbours give -0.25; neighbours clamped at the border), then +0.5.
- scores: float32 ``person[:, 2].mean()`` over all K joints (missing = 0), after adjust, before refine.
- refine: ``prev_tag`` = float32 mean of the tags at ``int()`` of each present joint's (adjusted)
  coordinates; for every *missing* joint j, the first (row-major) argmax of
  ``det[j] - np.round(sqrt(sum_L (tag[j] - prev_tag)**2))`` in float32; filled when ``det > 0`` there,
  at ``+0.5 +-0.25`` with tag columns left 0. The official code also computes it for present joints
  and throws it away; skipping them gives the same result.

The refine pick is exact but rarely a full-map scan (see :mod:`.argmax`).

Non-finite values: NaN pixels of ``det - round(tt)`` are skipped (numpy's argmax would pick the first
NaN); if every pixel is NaN the joint is not filled. A person whose joints all have ``val <= 0`` (only
possible with a negative detection threshold) is not refined (numpy would average an empty list).
"""

from __future__ import annotations

import numpy as np

from hhrnet_rt.decode.argmax import positive_order, refine_pick
from hhrnet_rt.decode.cache import kernel
from hhrnet_rt.decode.nms import TILE
from hhrnet_rt.decode.npsum import mean_rows_f32, pairwise_sum_f32


@kernel
def quarter_from_neighbours(right, left, down, up):
    """Official quarter offsets (dx, dy) from the four neighbour values of a peak: +0.25 towards the
    strictly larger neighbour, else -0.25 (equal or NaN neighbours give -0.25)."""
    dx = np.float32(0.25) if right > left else np.float32(-0.25)
    dy = np.float32(0.25) if down > up else np.float32(-0.25)
    return dx, dy


@kernel
def _quarter(hm, y, x):
    """Official quarter offsets (dx, dy) for integer peak (x, y) of map ``hm`` (neighbours clamped)."""
    H, W = hm.shape
    return quarter_from_neighbours(
        hm[y, min(x + 1, W - 1)], hm[y, max(x - 1, 0)], hm[min(y + 1, H - 1), x], hm[max(y - 1, 0), x]
    )


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
def refine(people, heatmaps, tags, tmax, tile=TILE):
    """In place on (P, K, 3+L) float32 people: fill missing joints as the official ``refine`` does.

    ``tags``: (K, L, H, W) tag planes.

    ``tmax``: (K, n_tiles) per-tile maxima of the positive pixels from :func:`.peaks.top_k_peaks`
    with the same ``tile``; the NMS pass reads every pixel anyway, so refine needs no pass of its own.
    """
    P, K, _ = people.shape
    _, L, H, W = tags.shape
    n_tiles = tmax.shape[1]
    order = np.empty((K, n_tiles), np.int64)
    n_order = np.zeros(K, np.int64)
    have = np.zeros(K, np.bool_)
    # Tag bounding boxes per tile, made on first use and shared by all people (see .argmax); only
    # box_have needs clearing, the boxes are written before they are read.
    box_lo = np.empty((K, n_tiles, L), np.float32)
    box_hi = np.empty((K, n_tiles, L), np.float32)
    box_have = np.zeros((K, n_tiles), np.bool_)
    found = np.zeros((K, L), np.float32)
    prev = np.zeros(L, np.float32)
    hint_y = np.zeros(K, np.int64)
    hint_x = np.zeros(K, np.int64)
    half = np.float32(0.5)
    for p in range(P):
        n = 0
        for j in range(K):
            if people[p, j, 2] > 0:
                x = int(people[p, j, 0])
                y = int(people[p, j, 1])
                for d in range(L):
                    found[n, d] = tags[j, d, y, x]
                hint_y[n] = min(max(y, 0), H - 1)
                hint_x[n] = min(max(x, 0), W - 1)
                n += 1
        if n == 0:
            continue
        mean_rows_f32(found, n, prev)
        for j in range(K):
            if people[p, j, 2] != 0:
                continue
            if not have[j]:
                # Once per joint type, only for joint types some person is missing.
                n_order[j] = positive_order(tmax[j], order[j])
                have[j] = True
            i = refine_pick(
                heatmaps[j],
                tags[j],
                prev,
                tmax[j],
                order[j, : n_order[j]],
                box_lo[j],
                box_hi[j],
                box_have[j],
                tile,
                hint_y,
                hint_x,
                n,
            )
            if i >= 0:
                y = i // W
                x = i - y * W
                val = heatmaps[j, y, x]
                dx, dy = _quarter(heatmaps[j], y, x)
                people[p, j, 0] = (np.float32(x) + half) + dx
                people[p, j, 1] = (np.float32(y) + half) + dy
                people[p, j, 2] = val
