"""The per-stream post-decode step that gives IDs and smooths (``Stages(post_decode=...)``)."""

from __future__ import annotations

from dataclasses import dataclass

from hhrnet_rt.poses import Poses
from hhrnet_rt.track.smooth import PoseSmoother
from hhrnet_rt.track.tracker import PoseTracker


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
        return TemporalHook(tracker, smoother)


class TemporalHook:
    """Called with each frame's people, in frame order: IDs from ``tracker``, then ``smoother`` if any."""

    def __init__(self, tracker: PoseTracker, smoother: PoseSmoother | None = None) -> None:
        self.tracker, self.smoother = tracker, smoother

    def __call__(self, poses: Poses, frame) -> Poses:
        poses = self.tracker.update(poses)
        if self.smoother is not None:
            poses = self.smoother.update(poses, frame.timestamp)
        return poses
