"""CLEAR-MOT counts for pose tracks against ground truth (Bernardin and Stiefelhagen, 2008).

Per frame, each ground-truth person is matched to at most one tracked person (``ids >= 0``; people the
tracker has not confirmed are not reported tracks) with OKS >= ``min_oks``: a correspondence from the
frame before is kept while it still holds, the rest are paired by an optimal assignment on OKS. Then:

- a miss: a ground-truth person with no match; a false positive: a tracked person with no match;
- an ID switch: a ground-truth person matched to another ID than at its previous match;
- a fragmentation: a ground-truth person matched again after frames in which it was present but not
  matched (its track was interrupted);
- MOTA = 1 - (misses + false positives + ID switches) / ground-truth people.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from hhrnet_rt.decode.munkres import munkres
from hhrnet_rt.poses import Poses
from hhrnet_rt.track.oks import oks_matrix


@dataclass(frozen=True)
class ClearMot:
    frames: int
    truth: int  # ground-truth people, summed over frames
    matches: int
    misses: int
    false_positives: int
    id_switches: int
    fragmentations: int
    ids: int  # distinct IDs the tracker reported

    @property
    def mota(self) -> float:
        return 1.0 - (self.misses + self.false_positives + self.id_switches) / max(self.truth, 1)

    def per_100_frames(self, count: int) -> float:
        return 100.0 * count / max(self.frames, 1)


def clear_mot(truth: Sequence[Poses], tracked: Sequence[Poses], *, min_oks: float = 0.5) -> ClearMot:
    """CLEAR-MOT counts of ``tracked`` (``ids`` set) against ``truth`` (``ids`` = identity), frame by frame."""
    if len(truth) != len(tracked):
        raise ValueError(f"{len(truth)} ground-truth frames but {len(tracked)} tracked frames")
    last_id: dict[int, int] = {}  # truth identity -> ID at its last match
    broken: set[int] = set()  # identities matched before, then present but unmatched
    counts = dict(truth=0, matches=0, misses=0, false_positives=0, id_switches=0, fragmentations=0)
    reported: set[int] = set()
    for gt, hyp in zip(truth, tracked, strict=True):
        if gt.ids is None or hyp.ids is None:
            raise ValueError("clear_mot needs ids on both the ground truth and the tracked people")
        reported_people = hyp.ids >= 0
        hyp_ids = hyp.ids[reported_people]
        hyp = hyp[reported_people]
        reported.update(hyp_ids.tolist())
        oks = oks_matrix(gt.keypoints, hyp.keypoints)
        pairs = _match(gt.ids, hyp_ids, oks, last_id, min_oks)
        for g, h in pairs:
            identity, hyp_id = int(gt.ids[g]), int(hyp_ids[h])
            if identity in last_id and last_id[identity] != hyp_id:
                counts["id_switches"] += 1
            if identity in broken:
                counts["fragmentations"] += 1
                broken.discard(identity)
            last_id[identity] = hyp_id
        matched_gt = {g for g, _ in pairs}
        for g, identity in enumerate(gt.ids.tolist()):
            if g not in matched_gt and identity in last_id:
                broken.add(identity)
        counts["truth"] += len(gt)
        counts["matches"] += len(pairs)
        counts["misses"] += len(gt) - len(pairs)
        counts["false_positives"] += len(hyp) - len(pairs)
    return ClearMot(frames=len(truth), ids=len(reported), **counts)


def _match(gt_ids, hyp_ids, oks, last_id, min_oks) -> list[tuple[int, int]]:
    """Keep last frame's correspondences that still hold, then pair the rest optimally."""
    pairs = []
    hyp_index = {int(h): j for j, h in enumerate(hyp_ids)}
    taken = set()  # two people may have last matched one ID (after a switch): it goes to one of them
    for g, identity in enumerate(gt_ids.tolist()):
        j = hyp_index.get(last_id.get(identity, -1))
        if j is not None and j not in taken and oks[g, j] >= min_oks:
            pairs.append((g, j))
            taken.add(j)
    free_g = [g for g in range(len(gt_ids)) if g not in {p for p, _ in pairs}]
    free_h = [h for h in range(len(hyp_ids)) if h not in {q for _, q in pairs}]
    if free_g and free_h:
        sub = oks[np.ix_(free_g, free_h)]
        for a, b in munkres(1.0 - sub):
            if sub[a, b] >= min_oks:
                pairs.append((free_g[a], free_h[b]))
    return pairs
