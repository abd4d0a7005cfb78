"""One-Euro filter on every joint of every tracked person (``--smooth``).

The One-Euro filter (Casiez, Roussel and Vogel, CHI 2012) is a low-pass filter whose cutoff rises with
speed: a joint at rest is smoothed hard (``min_cutoff`` Hz: jitter goes), a moving joint is followed
closely (cutoff ``min_cutoff + beta * speed``, speed in pixels per second: little lag). The speed itself is
low-passed at ``d_cutoff`` Hz. Time comes from the frames' timestamps (a file's presentation times, a
camera's capture times), so a dropped frame or a variable frame rate is handled as the time that passed.

A filter belongs to a person ID (:class:`~hhrnet_rt.track.PoseTracker`); people without an ID pass
unchanged. A joint not seen in a frame passes unchanged and its filter starts again when it is next seen;
so does a person unseen for more than ``max_gap_s``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from hhrnet_rt.poses import Poses


def _alpha(cutoff: np.ndarray | float, dt: float) -> np.ndarray:
    """Smoothing factor of an exponential low-pass with this cutoff (Hz) over ``dt`` seconds."""
    tau = 1.0 / (2.0 * np.pi * np.asarray(cutoff, np.float64))
    return 1.0 / (1.0 + tau / dt)


@dataclass
class _JointFilters:
    t: float  # timestamp of the last update
    xy: np.ndarray  # (K, 2) filtered positions
    speed: np.ndarray  # (K, 2) filtered velocity, px/s
    live: np.ndarray  # (K,) bool: the joint has a filtered value to continue from


class PoseSmoother:
    """Smooths the joints of tracked people over time; one smoother per stream, fed in frame order.

    Args:
        min_cutoff: cutoff (Hz) for a joint at rest; lower smooths more (and lags more on slow moves).
        beta: how fast the cutoff rises with speed (per pixel/second); higher lags less on fast moves.
        d_cutoff: cutoff (Hz) of the speed estimate.
        joint_threshold: joints with score at or below this are not seen (left as they are).
        max_gap_s: a person unseen for longer starts from scratch.
    """

    def __init__(
        self, *, min_cutoff: float = 1.0, beta: float = 0.05, d_cutoff: float = 1.0,
        joint_threshold: float = 0.0, max_gap_s: float = 1.0,
    ) -> None:  # fmt: skip
        if min_cutoff <= 0 or d_cutoff <= 0 or beta < 0:
            raise ValueError(f"smoother: need min_cutoff > 0, d_cutoff > 0, beta >= 0; got {min_cutoff}, "
                             f"{d_cutoff}, {beta}")  # fmt: skip
        self.min_cutoff, self.beta, self.d_cutoff = min_cutoff, beta, d_cutoff
        self.joint_threshold, self.max_gap_s = joint_threshold, max_gap_s
        self._filters: dict[int, _JointFilters] = {}

    def reset(self) -> None:
        """Start every person afresh (after an outage: never smooth across a gap in the stream)."""
        self._filters = {}

    def update(self, poses: Poses, timestamp: float) -> Poses:
        """``poses`` with the joints of every person with an ID smoothed; ``meta["smoothed"]`` is True."""
        keypoints = poses.keypoints.copy()
        ids = poses.ids if poses.ids is not None else np.full(len(poses), -1)
        for p, person_id in enumerate(ids.tolist()):
            if person_id >= 0:
                keypoints[p, :, :2] = self._filter(person_id, keypoints[p], float(timestamp))
        # Forget people gone for good, so a long run keeps a bounded state.
        self._filters = {i: f for i, f in self._filters.items() if timestamp - f.t <= self.max_gap_s}
        return Poses(keypoints, poses.scores, meta={**poses.meta, "smoothed": True}, ids=poses.ids)

    def _filter(self, person_id: int, person: np.ndarray, t: float) -> np.ndarray:
        seen = (person[:, 2] > self.joint_threshold) & np.isfinite(person[:, :2]).all(axis=1)
        xy = person[:, :2].astype(np.float64)
        state = self._filters.get(person_id)
        if state is None or not t - state.t <= self.max_gap_s:
            self._filters[person_id] = _JointFilters(t, xy.copy(), np.zeros_like(xy), seen.copy())
            return person[:, :2]
        # A repeated or backwards timestamp (a stream glitch) must not divide by zero: treat it as 1 ms.
        dt = max(t - state.t, 1e-3)
        cont = seen & state.live
        speed = (xy - state.xy) / dt
        a_d = _alpha(self.d_cutoff, dt)
        speed_hat = state.speed + a_d * (speed - state.speed)
        cutoff = self.min_cutoff + self.beta * np.linalg.norm(speed_hat, axis=1)
        a = _alpha(cutoff, dt)[:, None]
        smoothed = state.xy + a * (xy - state.xy)
        out = np.where(cont[:, None], smoothed, xy)
        state.xy = np.where(seen[:, None], out, state.xy)
        state.speed = np.where(cont[:, None], speed_hat, 0.0)
        state.live = seen
        state.t = t
        return out.astype(np.float32)
