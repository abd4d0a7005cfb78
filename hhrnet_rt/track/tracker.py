"""Person IDs across frames: OKS association with an optimal assignment, and birth/death rules.

Each frame, every live track predicts where its joints are now (last position plus the track's
velocity, so two people who cross are told apart by where they were heading), the OKS of every
(track, person) pair is computed (:func:`~hhrnet_rt.track.oks.oks_matrix`) and the assignment that
maximises the total OKS is taken (the project's Hungarian solver, :func:`hhrnet_rt.decode.munkres.munkres`,
on ``1 - OKS``). A pair below ``min_oks`` is no match, whatever the solver says.

Birth and death (the SORT rules): a person no track claims starts a *tentative* track; it is confirmed,
and gets the next free ID, after ``min_hits`` matches in consecutive frames; a tentative track that misses a
frame is dropped (most of them are decoder fragments). A confirmed track survives up to ``max_age``
frames without a match (occlusion, a missed detection) and keeps its ID when the person is found again.

Example:
    >>> import numpy as np
    >>> from hhrnet_rt import Poses
    >>> tracker = PoseTracker(min_hits=1)
    >>> person = np.array([[[10.0, 10.0, 1.0], [20.0, 40.0, 1.0]]], np.float32)
    >>> tracker.update(Poses(person, np.ones(1, np.float32))).ids.tolist()
    [0]
    >>> tracker.update(Poses(person + [1.0, 0.0, 0.0], np.ones(1, np.float32))).ids.tolist()
    [0]
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from hhrnet_rt.decode.munkres import munkres
from hhrnet_rt.poses import Poses
from hhrnet_rt.track.oks import oks_matrix

# Weight of the newest displacement in a track's velocity (an exponential average: one jittery frame
# must not send the prediction off, yet a person who turns is followed within a few frames).
_VELOCITY_GAIN = 0.5


@dataclass
class _Track:
    keypoints: np.ndarray  # (K, 3) last known joints; joints not seen lately keep their older position
    velocity: np.ndarray  # (2,) pixels per frame
    hits: int = 1  # consecutive matches while tentative; total matches once confirmed
    misses: int = 0  # frames since the last match
    id: int = -1  # -1 while tentative

    def predicted(self) -> np.ndarray:
        out = self.keypoints.copy()
        out[:, :2] += self.velocity * (self.misses + 1)
        return out


class PoseTracker:
    """Gives each person an ID that stays the same from frame to frame (one tracker per stream).

    Args:
        min_hits: matches in consecutive frames before a new person gets an ID (1: at once).
        max_age: frames a confirmed person may go unseen and still keep the ID.
        min_oks: the least OKS between a track's predicted pose and a person for them to match.
        joint_threshold: a joint counts as seen when its score is above this (0: every joint found).
    """

    def __init__(
        self, *, min_hits: int = 3, max_age: int = 30, min_oks: float = 0.2, joint_threshold: float = 0.0
    ) -> None:
        if min_hits < 1 or max_age < 0 or not 0.0 <= min_oks <= 1.0:
            raise ValueError(f"tracker: need min_hits >= 1, max_age >= 0, 0 <= min_oks <= 1; got "
                             f"{min_hits}, {max_age}, {min_oks}")  # fmt: skip
        self.min_hits, self.max_age, self.min_oks = min_hits, max_age, min_oks
        self.joint_threshold = joint_threshold
        self._tracks: list[_Track] = []
        self._next_id = 0

    def reset(self) -> None:
        """Forget every person (after a long outage); later IDs go on counting, none is reused."""
        self._tracks = []

    @property
    def confirmed(self) -> int:
        """How many confirmed tracks are alive (seen lately or waiting out ``max_age``)."""
        return sum(t.id >= 0 for t in self._tracks)

    def update(self, poses: Poses) -> Poses:
        """Match this frame's people to the tracks; returns ``poses`` with ``ids`` set (-1: not yet an ID).

        Call it once per frame, in frame order; a frame with nobody still counts (tracks age).
        """
        seen = self._seen(poses.keypoints)
        pairs = self._associate(poses.keypoints)
        ids = np.full(len(poses), -1, np.int64)
        matched = set()
        for t, p in pairs:
            track = self._tracks[t]
            self._absorb(track, poses.keypoints[p], seen[p])
            matched.add(t)
            if track.id < 0 and track.hits >= self.min_hits:
                track.id, self._next_id = self._next_id, self._next_id + 1
            ids[p] = track.id
        survivors = []
        for t, track in enumerate(self._tracks):
            if t not in matched:
                track.misses += 1
                if track.id < 0 or track.misses > self.max_age:
                    continue  # a tentative track must be seen every frame; a confirmed one ages out
            survivors.append(track)
        claimed = {p for _, p in pairs}
        for p in range(len(poses)):
            if p not in claimed and seen[p].any():
                track = _Track(self._clean(poses.keypoints[p], seen[p]), np.zeros(2))
                if self.min_hits <= 1:
                    track.id, self._next_id = self._next_id, self._next_id + 1
                    ids[p] = track.id
                survivors.append(track)
        self._tracks = survivors
        return poses.with_ids(ids)

    def _seen(self, keypoints: np.ndarray) -> np.ndarray:
        return (keypoints[..., 2] > self.joint_threshold) & np.isfinite(keypoints[..., :2]).all(axis=2)

    def _associate(self, keypoints: np.ndarray) -> list[tuple[int, int]]:
        if not self._tracks or len(keypoints) == 0:
            return []
        predicted = np.stack([t.predicted() for t in self._tracks])
        oks = oks_matrix(predicted, keypoints, joint_threshold=self.joint_threshold)
        return [(int(t), int(p)) for t, p in munkres(1.0 - oks) if oks[t, p] >= self.min_oks]

    @staticmethod
    def _clean(person: np.ndarray, seen: np.ndarray) -> np.ndarray:
        """(K, 3) float64 copy with unseen joints zeroed: a NaN or a corner position of a joint the decoder
        did not find must never reach a track's velocity."""
        return np.where(seen[:, None], person, 0.0).astype(np.float64)

    def _absorb(self, track: _Track, person: np.ndarray, seen: np.ndarray) -> None:
        """Move ``track`` to the matched ``person``: velocity from the joints seen before and now."""
        before = track.keypoints.copy()
        common = seen & (before[:, 2] > self.joint_threshold)
        if common.any():
            moved = (person[common, :2] - before[common, :2]).mean(axis=0)
            track.velocity = (1 - _VELOCITY_GAIN) * track.velocity + _VELOCITY_GAIN * moved / (
                track.misses + 1
            )
        else:
            moved = track.velocity * (track.misses + 1)
        # Joints not seen now move with the person, so they stay usable for the next match.
        before[:, :2] += moved
        track.keypoints = np.where(seen[:, None], self._clean(person, seen), before)
        track.misses = 0
        track.hits += 1
