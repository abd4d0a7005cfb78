"""The validated result type every backend and decoder path returns."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


class _EmptyDescriptor:
    """``Poses.empty(K)`` builds an empty result; ``poses.empty()`` says whether a result has nobody.

    Both spellings are natural for users (numpy-style constructor, and the question on an instance), so one
    name serves both instead of guessing which one callers mean.
    """

    def __get__(self, instance, owner):
        if instance is None:
            def build(num_joints: int = 17) -> Poses:
                return owner(
                    keypoints=np.zeros((0, num_joints, 3), np.float32), scores=np.zeros((0,), np.float32)
                )
            return build
        return lambda: len(instance) == 0


@dataclass(frozen=True, eq=False)
class Poses:
    """People found in one image.

    Attributes:
        keypoints: (P, K, 3) float32 rows ``x, y, score`` in original-image pixels. A joint the decoder did
            not find has score 0.
        scores: (P,) float32 person scores (official: mean of the K joint scores before refine).

    Example:
        >>> poses = Poses.empty(17)
        >>> len(poses), poses.empty()
        (0, True)
    """

    keypoints: np.ndarray
    scores: np.ndarray
    meta: dict = field(default_factory=dict, compare=False)

    empty = _EmptyDescriptor()

    def __post_init__(self) -> None:
        kp = np.asarray(self.keypoints, dtype=np.float32)
        sc = np.asarray(self.scores, dtype=np.float32)
        if kp.ndim != 3 or kp.shape[2] != 3:
            raise ValueError(f"keypoints: expected (P, K, 3), got {kp.shape}")
        if sc.shape != (kp.shape[0],):
            raise ValueError(f"scores: expected ({kp.shape[0]},) to match keypoints, got {sc.shape}")
        object.__setattr__(self, "keypoints", kp)
        object.__setattr__(self, "scores", sc)

    def __len__(self) -> int:
        return int(self.keypoints.shape[0])

    @property
    def num_joints(self) -> int:
        return int(self.keypoints.shape[1])

    def to_records(self) -> list[dict]:
        """JSON-ready list: one ``{"score": s, "keypoints": [[x, y, score] * K]}`` per person."""
        return [
            {"score": float(s), "keypoints": [[float(v) for v in joint] for joint in person]}
            for person, s in zip(self.keypoints, self.scores, strict=True)
        ]
