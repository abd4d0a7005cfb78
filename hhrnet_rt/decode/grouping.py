"""``match_by_tag``: the official associative-embedding grouping, decision for decision.

What the official code does and this kernel keeps (see the reference notes d.8-d.13):

- joint types are visited in ``joint_order``; the first type with candidates starts one person each;
- people live in a dict keyed by the float32 value of the candidate's first tag dimension: insertion
  order is output order, and a new person whose key equals an existing key (``==``, so 0.0 == -0.0 and
  NaN never matches) overwrites that person's row for this joint and *resets* its tag list;
- only the first ``max_num_people`` people (insertion order) are matched against;
- a person's tag is the float32 ``np.mean`` of every tag appended so far (numpy's summation order,
  see :mod:`.npsum`); distances are float64 L2 norms over the L tag dimensions;
- cost = ``np.round(dist) * 100 - val`` (half-to-even), ``1e10`` columns when there are more
  candidates than people, munkres 1.1.x; a pair is accepted only if ``col < n_grouped`` and the
  *unrounded* distance ``< tag_threshold``, otherwise the candidate starts a new person.

Non-finite tags (not covered by the official code, which could loop in munkres): a NaN/inf distance is
never accepted, and every cost handed to munkres is made finite -- NaN becomes ``+1e15`` and values are
clipped to ``[-1e15, 1e15]`` (reached only by tag distances above 1e13 or infinite heatmap values).
"""

from __future__ import annotations

import numpy as np

from hhrnet_rt.decode.cache import kernel
from hhrnet_rt.decode.munkres import assign
from hhrnet_rt.decode.npsum import mean_rows_f32

_COST_LIMIT = 1e15


@kernel
def _start_person(people, keys, tag_list, tag_len, n_people, joint, cand_xy, val, tag):
    """``joint_dict.setdefault(tag[0], zeros)[joint] = row; tag_dict[tag[0]] = [tag]``; returns n_people."""
    key = tag[0]
    p = -1
    for q in range(n_people):
        if keys[q] == key:
            p = q
            break
    if p < 0:
        p = n_people
        n_people += 1
        keys[p] = key
        people[p, :, :] = 0.0
    L = tag.shape[0]
    people[p, joint, 0] = cand_xy[0]
    people[p, joint, 1] = cand_xy[1]
    people[p, joint, 2] = val
    for d in range(L):
        people[p, joint, 3 + d] = tag[d]
        tag_list[p, 0, d] = tag[d]
    tag_len[p] = 1
    return n_people


@kernel
def match_by_tag(
    counts,
    flat,
    vals,
    cand_tags,
    width,
    joint_order,
    detection_threshold,
    tag_threshold,
    max_num_people,
    use_detection_val,
    ignore_too_much,
):
    """Group the top-k candidates into people.

    Args:
        counts, flat, vals: from :func:`.peaks.top_k_peaks` ((K,), (K, k), (K, k)).
        cand_tags: (K, k, L) float32 tags at the candidates.
        width: map width W (flat index -> x, y).
        joint_order: (K,) int64 order in which joint types are grouped.

    Returns:
        (P, K, 3 + L) float64 people (x, y, val, tags; all zero for missing joints).
    """
    K, k = vals.shape
    L = cand_tags.shape[2]
    cap = K * k + 1
    people = np.zeros((cap, K, 3 + L), np.float64)
    keys = np.zeros(cap, np.float32)
    # A person gains at most one tag per joint type after its list was last reset: K + 1 is enough.
    tag_list = np.zeros((cap, K + 1, L), np.float32)
    tag_len = np.zeros(cap, np.int64)
    n_people = 0
    xy = np.zeros(2, np.float64)
    means = np.zeros((max_num_people, L), np.float32)
    thr = np.float32(detection_threshold)

    for i in range(K):
        j = joint_order[i]
        # The candidates that pass the threshold, in top-k order (a prefix when top_k used the same one).
        n_added = 0
        rows = np.empty(counts[j], np.int64)
        for r in range(counts[j]):
            if vals[j, r] > thr:
                rows[n_added] = r
                n_added += 1
        if n_added == 0:
            continue
        if i == 0 or n_people == 0:
            for a in range(n_added):
                r = rows[a]
                xy[1] = flat[j, r] // width
                xy[0] = flat[j, r] - xy[1] * width
                n_people = _start_person(
                    people, keys, tag_list, tag_len, n_people, j, xy, vals[j, r], cand_tags[j, r]
                )
            continue
        n_grouped = min(n_people, max_num_people)
        if ignore_too_much and n_grouped == max_num_people:
            continue
        for p in range(n_grouped):
            mean_rows_f32(tag_list[p], tag_len[p], means[p])
        n_cols = max(n_added, n_grouped)
        cost = np.full((n_added, n_cols), 1e10)
        dist = np.empty((n_added, n_grouped), np.float64)
        for a in range(n_added):
            r = rows[a]
            for p in range(n_grouped):
                s = 0.0
                for d in range(L):
                    diff = np.float64(cand_tags[j, r, d]) - np.float64(means[p, d])
                    s += diff * diff
                dist[a, p] = np.sqrt(s)
                c = dist[a, p]
                if use_detection_val:
                    c = np.rint(c) * 100.0 - np.float64(vals[j, r])
                if c != c:
                    c = _COST_LIMIT
                elif c > _COST_LIMIT:
                    c = _COST_LIMIT
                elif c < -_COST_LIMIT:
                    c = -_COST_LIMIT
                cost[a, p] = c
        col_of_row = assign(cost)
        for a in range(n_added):
            r = rows[a]
            col = col_of_row[a]
            xy[1] = flat[j, r] // width
            xy[0] = flat[j, r] - xy[1] * width
            if 0 <= col < n_grouped and dist[a, col] < tag_threshold:
                people[col, j, 0] = xy[0]
                people[col, j, 1] = xy[1]
                people[col, j, 2] = vals[j, r]
                for d in range(L):
                    people[col, j, 3 + d] = cand_tags[j, r, d]
                if tag_len[col] < tag_list.shape[1]:
                    for d in range(L):
                        tag_list[col, tag_len[col], d] = cand_tags[j, r, d]
                    tag_len[col] += 1
            else:
                n_people = _start_person(
                    people, keys, tag_list, tag_len, n_people, j, xy, vals[j, r], cand_tags[j, r]
                )
    return people[:n_people].copy()
