"""The per-stream post-decode step that gives IDs and smooths (``Stages(post_decode=...)``)."""

from __future__ import annotations

from dataclasses import dataclass

from hhrnet_rt.poses import Poses
from hhrnet_rt.track.smooth import PoseSmoother
from hhrnet_rt.track.tracker import PoseTracker

#: Seconds a live stream may be away and its people keep their IDs (``--track-max-gap``).
MAX_GAP_S = 2.0


@dataclass(frozen=True)
class TemporalSettings:
    """What ``--track`` / ``--smooth`` ask for. Smoothing needs IDs (a filter per person), so ``smooth``
    turns tracking on with it."""

    track: bool = False
    min_hits: int = 3
    max_age: int = 30
    min_oks: float = 0.2
    smooth: bool = False
    min_cutoff: float = 1.0
    beta: float = 0.05
    d_cutoff: float = 1.0
    max_gap_s: float = MAX_GAP_S

    @property
    def enabled(self) -> bool:
        return self.track or self.smooth

    def hook(self) -> TemporalHook | None:
        """A fresh hook (its own tracker and filters) for one stream; ``None`` when nothing is asked."""
        if not self.enabled:
            return None
        tracker = PoseTracker(min_hits=self.min_hits, max_age=self.max_age, min_oks=self.min_oks)
        smoother = (
            PoseSmoother(min_cutoff=self.min_cutoff, beta=self.beta, d_cutoff=self.d_cutoff)
            if self.smooth
            else None
        )
        return TemporalHook(tracker, smoother, max_gap_s=self.max_gap_s)


class TemporalHook:
    """Called with each frame's people, in frame order: IDs from ``tracker``, then ``smoother`` if any.

    Across an outage of a live source (the frame's ``connection`` changed): the people keep their IDs if
    the stream was away at most ``max_gap_s`` seconds (by the frames' timestamps; ``max_age`` counts
    frames, and an outage has none), else the tracker starts afresh (new IDs, never reused ones); the
    smoother always restarts, so no joint is smoothed across the gap.
    """

    def __init__(
        self, tracker: PoseTracker, smoother: PoseSmoother | None = None, *, max_gap_s: float = MAX_GAP_S
    ) -> None:
        self.tracker, self.smoother, self.max_gap_s = tracker, smoother, max_gap_s
        self._last: tuple[int, float] | None = None  # connection and timestamp of the previous frame

    def __call__(self, poses: Poses, frame) -> Poses:
        connection, timestamp = getattr(frame, "connection", 0), float(frame.timestamp)
        if self._last is not None and connection != self._last[0]:  # an outage lies between the frames
            if timestamp - self._last[1] > self.max_gap_s:
                self.tracker.reset()
            if self.smoother is not None:
                self.smoother.reset()
        self._last = (connection, timestamp)
        poses = self.tracker.update(poses)
        if self.smoother is not None:
            poses = self.smoother.update(poses, frame.timestamp)
        return poses
