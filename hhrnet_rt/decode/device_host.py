"""The host half of the device decode: adjust and refine bookkeeping on the few numbers that came back.

:mod:`.device` copies to the host only the candidates (position, value, tags, four neighbour values)
and, for refine, one pick per (person, missing joint). These kernels apply the official steps to them
with the same float32 operations as :mod:`.refine` (the quarter-offset rule has its one home there,
:func:`.refine.quarter_from_neighbours`), so the result is bit-identical to :func:`.parse.parse`.
"""

from __future__ import annotations

import numpy as np

from hhrnet_rt.decode.cache import kernel
from hhrnet_rt.decode.grouping import match_by_tag
from hhrnet_rt.decode.npsum import mean_rows_f32
from hhrnet_rt.decode.refine import quarter_from_neighbours
from hhrnet_rt.decode.refine import scores as score_people

# Columns of the neighbour arrays: the order quarter_from_neighbours takes them in.
RIGHT, LEFT, DOWN, UP = 0, 1, 2, 3


@kernel
def adjust_at_candidates(people, counts, flat, neighbours, width):
    """In place on (P, K, 3+L) float32 people: the official adjust, reading the four neighbour values
    of each grouped joint from its candidate row instead of the heatmap.

    Every joint with ``val > 0`` sits on a candidate pixel of its joint type (``match_by_tag`` only
    copies candidates), so the row is found by its flat index among the ``counts[j]`` candidates.

    Args:
        people: (P, K, 3+L) float32, from ``match_by_tag``.
        counts, flat: (K,), (K, k) candidates per joint (``flat = y * W + x``).
        neighbours: (K, k, 4) float32 heatmap values right, left, down, up of each candidate (clamped
            at the border, as the official code reads them).
        width: map width W.

    Returns:
        The number of grouped joints whose candidate was not found (0 unless the inputs disagree).
    """
    P, K, _ = people.shape
    half = np.float32(0.5)
    missing = 0
    for p in range(P):
        for j in range(K):
            if not (people[p, j, 2] > 0):
                continue
            x = int(people[p, j, 0])
            y = int(people[p, j, 1])
            f = y * width + x
            r = -1
            for c in range(counts[j]):
                if flat[j, c] == f:
                    r = c
                    break
            if r < 0:
                missing += 1
                continue
            nb = neighbours[j, r]
            dx, dy = quarter_from_neighbours(nb[RIGHT], nb[LEFT], nb[DOWN], nb[UP])
            people[p, j, 0] = (people[p, j, 0] + dx) + half
            people[p, j, 1] = (people[p, j, 1] + dy) + half
    return missing


@kernel
def refine_requests(people, tag_dims):
    """The (person, joint) pairs refine searches for, and each person's mean tag.

    Official refine: ``prev_tag`` is the float32 mean of the tags at ``int()`` of every joint with
    ``val > 0``; those are the joint's own candidate tags (the grouped row's tag columns, float32
    values copied through float64 unchanged), so no map is read. Joints with ``val == 0`` are
    searched; people without a joint above 0 are skipped.

    Returns:
        ``(pair_person (n,) int64, pair_joint (n,) int64, pair_prev_tag (n, L) float32)``.
    """
    P, K, _ = people.shape
    L = tag_dims
    n_pairs = 0
    for p in range(P):
        present = 0
        for j in range(K):
            if people[p, j, 2] > 0:
                present += 1
        if present == 0:
            continue
        for j in range(K):
            if people[p, j, 2] == 0:
                n_pairs += 1
    pair_person = np.empty(n_pairs, np.int64)
    pair_joint = np.empty(n_pairs, np.int64)
    pair_prev = np.empty((n_pairs, L), np.float32)
    found = np.empty((K, L), np.float32)
    prev = np.empty(L, np.float32)
    i = 0
    for p in range(P):
        n = 0
        for j in range(K):
            if people[p, j, 2] > 0:
                for d in range(L):
                    found[n, d] = people[p, j, 3 + d]
                n += 1
        if n == 0:
            continue
        mean_rows_f32(found, n, prev)
        for j in range(K):
            if people[p, j, 2] == 0:
                pair_person[i] = p
                pair_joint[i] = j
                pair_prev[i, :] = prev
                i += 1
    return pair_person, pair_joint, pair_prev


@kernel
def group_candidates(
    pack,
    pack_f32,
    k,
    tag_dims,
    width,
    joint_order,
    detection_threshold,
    tag_threshold,
    use_detection_val,
    ignore_too_much,
    do_adjust,
    do_refine,
):
    """Everything the host does with the candidate pack, in one compiled call.

    Args:
        pack: (K, k', 6 + L) int32 from :func:`.device_ops.candidate_pack`; ``pack_f32`` is the same
            memory viewed as float32 (columns 1.. hold float32 bits).
        k: ``max_num_people`` (k' = min(k, H * W)).
        The rest: as :func:`.grouping.match_by_tag` and :func:`.parse.parse`.

    Returns:
        ``(people (P, K, 3+L) float32, scores (P,) float32, pair_person, pair_joint, pair_prev_tag,
        not_found)``: the pairs refine searches (none without ``do_refine``) and how many grouped joints
        had no candidate row (0 unless the inputs disagree).
    """
    K, kk, _ = pack.shape
    L = tag_dims
    counts = np.zeros(K, np.int64)
    flat = np.full((K, k), -1, np.int64)
    vals = np.zeros((K, k), np.float32)
    cand_tags = np.zeros((K, k, L), np.float32)
    neighbours = np.zeros((K, k, 4), np.float32)
    for j in range(K):
        for r in range(kk):
            f = pack[j, r, 0]
            if f < 0:
                break  # the candidates are a prefix, best first
            counts[j] += 1
            flat[j, r] = f
            vals[j, r] = pack_f32[j, r, 1]
            for d in range(L):
                cand_tags[j, r, d] = pack_f32[j, r, 2 + d]
            for c in range(4):
                neighbours[j, r, c] = pack_f32[j, r, 2 + L + c]
    people = match_by_tag(
        counts,
        flat,
        vals,
        cand_tags,
        width,
        joint_order,
        detection_threshold,
        tag_threshold,
        k,
        use_detection_val,
        ignore_too_much,
    ).astype(np.float32)
    not_found = 0
    if do_adjust:
        not_found = adjust_at_candidates(people, counts, flat, neighbours, width)
    sc = score_people(people)
    if do_refine:
        pair_person, pair_joint, pair_prev = refine_requests(people, L)
    else:
        pair_person = np.zeros(0, np.int64)
        pair_joint = np.zeros(0, np.int64)
        pair_prev = np.zeros((0, L), np.float32)
    return people, sc, pair_person, pair_joint, pair_prev, not_found


@kernel
def apply_refine_picks(people, pair_person, pair_joint, pack, pack_f32, width):
    """In place: fill each searched joint whose pick has ``det > 0``, as the official refine does.

    Args:
        pack: (n, 7) int32 from :func:`.device_ops.refine_pack`, ``pack_f32`` the same memory as
            float32: flat index of the pick (-1: none), best penalised value, heatmap value at the pick
            and its neighbours right, left, down, up.
    """
    half = np.float32(0.5)
    for i in range(pair_person.shape[0]):
        idx = np.int64(pack[i, 0])
        val = pack_f32[i, 2]
        if idx < 0 or not (val > 0):
            continue
        y = idx // width
        x = idx - y * width
        nb = pack_f32[i, 3:]
        dx, dy = quarter_from_neighbours(nb[RIGHT], nb[LEFT], nb[DOWN], nb[UP])
        p = pair_person[i]
        j = pair_joint[i]
        people[p, j, 0] = (np.float32(x) + half) + dx
        people[p, j, 1] = (np.float32(y) + half) + dy
        people[p, j, 2] = val
