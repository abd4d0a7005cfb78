"""Object keypoint similarity (OKS) between people, the similarity the tracker and its metrics share.

OKS (COCO keypoint evaluation) for two poses a, b of one skeleton::

    OKS = mean over joints j seen in both of exp(-d_j^2 / (2 * s^2 * k_j^2)),   k_j = 2 * sigma_j

``d_j`` is the pixel distance of joint j, ``s^2`` the person's area and ``sigma_j`` the joint's
per-keypoint spread measured on COCO (CrowdPose publishes its own 14). COCO takes the area of the ground
truth's segmentation; poses have none, so the area here is the box around the seen joints of the first
pose (the track, or the ground truth in the metrics). Joints seen in only one pose are left out rather than
counted as misses: a joint the decoder missed in one frame should not make a person a stranger.
"""

from __future__ import annotations

import numpy as np

#: COCO keypoint sigmas (cocoapi ``COCOeval.kpt_oks_sigmas``), in COCO joint order.
COCO_SIGMAS = (
    np.array(
        [0.26, 0.25, 0.25, 0.35, 0.35, 0.79, 0.79, 0.72, 0.72, 0.62, 0.62, 1.07, 1.07, 0.87, 0.87, 0.89, 0.89]
    )
    / 10.0
)
#: CrowdPose sigmas (crowdposetools), in CrowdPose joint order (12 limbs, then head and neck).
CROWDPOSE_SIGMAS = (
    np.array([0.79, 0.79, 0.72, 0.72, 0.62, 0.62, 1.07, 1.07, 0.87, 0.87, 0.89, 0.89, 0.79, 0.79]) / 10.0
)
# Smallest area used for s^2 (px^2): a person whose seen joints are one point or one line still has a
# size, so OKS stays defined instead of dividing by zero.
_MIN_AREA = 32.0 * 32.0


def sigmas_for(num_joints: int) -> np.ndarray:
    """Per-joint sigmas: COCO for 17 joints, CrowdPose for 14; any other skeleton gets the mean COCO sigma
    for every joint (no published values; all joints then weigh alike)."""
    if num_joints == len(COCO_SIGMAS):
        return COCO_SIGMAS
    if num_joints == len(CROWDPOSE_SIGMAS):
        return CROWDPOSE_SIGMAS
    return np.full(num_joints, COCO_SIGMAS.mean())


def areas(keypoints: np.ndarray, seen: np.ndarray) -> np.ndarray:
    """(P,) box area of each person's seen joints, at least ``_MIN_AREA``."""
    out = np.full(len(keypoints), _MIN_AREA)
    for p in range(len(keypoints)):
        if seen[p].any():
            xy = keypoints[p, seen[p], :2]
            w, h = xy.max(axis=0) - xy.min(axis=0)
            out[p] = max(float(w * h), _MIN_AREA)
    return out


def oks_matrix(
    first: np.ndarray, second: np.ndarray, *, joint_threshold: float = 0.0, sigmas: np.ndarray | None = None
) -> np.ndarray:
    """(A, B) OKS of every person in ``first`` (A, K, 3) with every person in ``second`` (B, K, 3).

    A joint is seen when its score is above ``joint_threshold`` and x/y are finite. Pairs with no joint
    seen in both get 0. The area comes from ``first`` (see the module docstring).
    """
    a = np.asarray(first, np.float64)
    b = np.asarray(second, np.float64)
    if a.ndim != 3 or b.ndim != 3 or a.shape[1:] != b.shape[1:] or a.shape[2] != 3:
        raise ValueError(f"oks_matrix needs (A, K, 3) and (B, K, 3) arrays, got {a.shape} and {b.shape}")
    if len(a) == 0 or len(b) == 0:
        return np.zeros((len(a), len(b)))
    k = 2.0 * (sigmas_for(a.shape[1]) if sigmas is None else np.asarray(sigmas, np.float64))
    seen_a = (a[..., 2] > joint_threshold) & np.isfinite(a[..., :2]).all(axis=2)
    seen_b = (b[..., 2] > joint_threshold) & np.isfinite(b[..., :2]).all(axis=2)
    d2 = ((np.nan_to_num(a[:, None, :, :2]) - np.nan_to_num(b[None, :, :, :2])) ** 2).sum(axis=3)  # (A, B, K)
    e = np.exp(-d2 / (2.0 * areas(a, seen_a)[:, None, None] * k**2))
    both = seen_a[:, None, :] & seen_b[None, :, :]
    count = both.sum(axis=2)
    return np.where(count > 0, (e * both).sum(axis=2) / np.maximum(count, 1), 0.0)
