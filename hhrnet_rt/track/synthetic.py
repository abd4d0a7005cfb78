"""Synthetic people walking and crossing, as a detector would report them: for tracker tests and benchmarks.

Each person is the COCO template of :mod:`hhrnet_rt.decode.synthetic` scaled to a height, walking in a
straight line at a constant speed with legs and arms swinging. What the "detector" returns each frame is
that truth spoiled the ways a bottom-up decoder spoils it: joint jitter (a share of the person's height),
joints dropped at random, a person behind another loses the joints the front one hides (and is missed when
most are hidden), whole people missed at random, stray fragments of a few joints, and people listed in a
random order. The truth keeps every person inside the picture, with their identity in ``ids``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from hhrnet_rt.decode.synthetic import person_template
from hhrnet_rt.poses import Poses

# Joints that swing forward/back while walking, with the sign of their swing (COCO order): knees and
# ankles one way per side, elbows and wrists the other.
_SWING = {13: 0.5, 15: 1.0, 14: -0.5, 16: -1.0, 7: -0.3, 9: -0.6, 8: 0.3, 10: 0.6}


@dataclass(frozen=True)
class Sequence:
    """A synthetic clip: ``truth[f]`` (people inside frame f, ``ids`` = identity) and ``detections[f]``
    (what a detector reports: no ids, random order); ``timestamps`` in seconds."""

    truth: list[Poses]
    detections: list[Poses]
    timestamps: np.ndarray
    name: str = ""


@dataclass(frozen=True)
class Walker:
    start: tuple[float, float]  # hip centre at frame 0, pixels
    velocity: tuple[float, float]  # pixels per frame
    height: float  # pixels
    phase: float = 0.0


def _pose(walker: Walker, frame: int, template: np.ndarray) -> np.ndarray:
    """(K, 2) joints of ``walker`` at ``frame``."""
    centre = np.asarray(walker.start) + frame * np.asarray(walker.velocity)
    xy = template * walker.height
    stride = np.sin(walker.phase + frame * 2 * np.pi * abs(walker.velocity[0]) / (0.8 * walker.height))
    for joint, sign in _SWING.items():
        if joint < len(xy):
            xy[joint, 0] += 0.15 * walker.height * sign * stride
    return centre + xy


def simulate(
    walkers: list[Walker],
    *,
    frames: int,
    width: int = 640,
    height: int = 480,
    fps: float = 30.0,
    seed: int = 0,
    jitter: float = 0.01,
    joint_drop: float = 0.1,
    miss_rate: float = 0.05,
    fragment_rate: float = 0.1,
    name: str = "",
) -> Sequence:
    """Walk ``walkers`` for ``frames`` frames and report them through a noisy "detector".

    Args:
        jitter: joint noise, a share of the person's height (0.01 of a 200 px person: 2 px).
        joint_drop: chance that a seen joint is not reported.
        miss_rate: chance that a whole person is not reported in a frame.
        fragment_rate: expected stray fragments (2-4 low-score joints somewhere) per frame.
    """
    rng = np.random.default_rng(seed)
    template = person_template(17)
    truth, detections = [], []
    for f in range(frames):
        poses, ids, sizes = [], [], []
        for i, walker in enumerate(walkers):
            xy = _pose(walker, f, template)
            inside = (xy[:, 0] >= 0) & (xy[:, 0] < width) & (xy[:, 1] >= 0) & (xy[:, 1] < height)
            if inside.sum() >= 3:
                poses.append(np.concatenate([xy, inside[:, None].astype(float)], axis=1))
                ids.append(i)
                sizes.append(walker.height)
        kp = np.array(poses, np.float32).reshape(-1, 17, 3)
        truth.append(Poses(kp, np.ones(len(kp), np.float32)).with_ids(ids))
        detections.append(_detect(kp, np.array(sizes), rng, jitter, joint_drop, miss_rate, fragment_rate,
                                  width, height))  # fmt: skip
    return Sequence(truth, detections, np.arange(frames) / fps, name)


def _detect(kp, sizes, rng, jitter, joint_drop, miss_rate, fragment_rate, width, height) -> Poses:
    out = kp.copy()
    inside = out[..., 2] > 0
    seen = inside.copy()
    # Occlusion: the person with the lower feet is in front; joints of the other inside its box vanish.
    feet = np.array([p[inside[i], 1].max() for i, p in enumerate(out)]) if len(out) else np.zeros(0)
    for back in range(len(out)):
        for front in range(len(out)):
            if front != back and feet[front] > feet[back]:
                lo = out[front, inside[front], :2].min(axis=0)
                hi = out[front, inside[front], :2].max(axis=0)
                hidden = ((out[back, :, :2] > lo) & (out[back, :, :2] < hi)).all(axis=1)
                seen[back] &= ~hidden
    seen &= rng.random(seen.shape) >= joint_drop
    out[..., :2] += rng.normal(0, 1, out[..., :2].shape) * (jitter * sizes)[:, None, None]
    out[..., 2] = np.where(seen, rng.uniform(0.3, 1.0, seen.shape), 0.0)
    keep = (seen.sum(axis=1) >= 0.3 * kp.shape[1]) & (rng.random(len(out)) >= miss_rate)
    people = [out[keep]]
    for _ in range(rng.poisson(fragment_rate)):
        fragment = np.zeros((1, kp.shape[1], 3), np.float32)
        joints = rng.choice(kp.shape[1], size=rng.integers(2, 5), replace=False)
        centre = rng.uniform((0, 0), (width, height))
        fragment[0, joints, :2] = centre + rng.normal(0, 15, (len(joints), 2))
        fragment[0, joints, 2] = rng.uniform(0.1, 0.4, len(joints))
        people.append(fragment)
    people_kp = np.concatenate(people).astype(np.float32)
    people_kp = people_kp[rng.permutation(len(people_kp))]
    seen_scores = np.where(people_kp[..., 2] > 0, people_kp[..., 2], np.nan)
    scores = np.nan_to_num(np.nanmean(seen_scores, axis=1)) if len(people_kp) else np.zeros(0)
    return Poses(people_kp, scores.astype(np.float32))


def crossing(seed: int = 0, frames: int = 120, **noise) -> Sequence:
    """Two people walk towards each other on one line and cross mid-picture (one hides the other)."""
    rng = np.random.default_rng(seed)
    y = rng.uniform(230, 260)
    speed = rng.uniform(3.0, 5.0)
    walkers = [
        Walker((60.0, y), (speed, 0.0), rng.uniform(200, 230)),
        Walker((580.0, y + rng.uniform(8, 20)), (-speed, 0.0), rng.uniform(200, 230), phase=1.0),
    ]
    return simulate(walkers, frames=frames, seed=seed, name="crossing", **noise)


def crowd(seed: int = 0, people: int = 6, frames: int = 200, **noise) -> Sequence:
    """``people`` people enter from both sides at staggered times and cross one another's paths."""
    rng = np.random.default_rng(seed)
    walkers = []
    for i in range(people):
        left = i % 2 == 0
        speed = rng.uniform(2.0, 5.0) * (1 if left else -1)
        y0, y1 = rng.uniform(150, 330, 2)
        height = rng.uniform(140, 240)
        delay = rng.uniform(0, frames / 3)  # enters later: starts off-picture
        x0 = (-40.0 if left else 680.0) - speed * delay
        walkers.append(Walker((x0, y0), (speed, (y1 - y0) / frames), height, phase=rng.uniform(0, 6.3)))
    return simulate(walkers, frames=frames, seed=seed, name=f"crowd{people}", **noise)
