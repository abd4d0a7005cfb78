"""Keypoint definitions: names, skeleton edges, flip permutation, grouping order, colours (data only).

Shape glossary used across the package: ``P`` people, ``K`` joints (17 for COCO, 14 for CrowdPose),
``H, W`` map size, ``L`` tag dimensions (2 with flip test, else 1), ``(x, y)`` in original-image pixels
unless a name says otherwise.
"""

from __future__ import annotations

COCO_KEYPOINTS: tuple[str, ...] = (
    "nose", "left_eye", "right_eye", "left_ear", "right_ear",
    "left_shoulder", "right_shoulder", "left_elbow", "right_elbow",
    "left_wrist", "right_wrist", "left_hip", "right_hip",
    "left_knee", "right_knee", "left_ankle", "right_ankle",
)  # fmt: skip

# Left/right swap applied to heatmap and tag channels after the mirrored pass (official FLIP_CONFIG).
COCO_FLIP_INDEX: tuple[int, ...] = (0, 2, 1, 4, 3, 6, 5, 8, 7, 10, 9, 12, 11, 14, 13, 16, 15)

# The official grouping visits joints in this order: head, shoulders, hips, then the limbs outwards.
COCO_JOINT_ORDER: tuple[int, ...] = (0, 1, 2, 3, 4, 5, 6, 11, 12, 7, 8, 9, 10, 13, 14, 15, 16)

# COCO skeleton as 0-based joint pairs (the dataset's 1-based list, minus one).
COCO_SKELETON: tuple[tuple[int, int], ...] = (
    (15, 13), (13, 11), (16, 14), (14, 12), (11, 12), (5, 11), (6, 12), (5, 6), (5, 7),
    (6, 8), (7, 9), (8, 10), (1, 2), (0, 1), (0, 2), (1, 3), (2, 4), (3, 5), (4, 6),
)  # fmt: skip

CROWDPOSE_KEYPOINTS: tuple[str, ...] = (
    "left_shoulder", "right_shoulder", "left_elbow", "right_elbow", "left_wrist", "right_wrist",
    "left_hip", "right_hip", "left_knee", "right_knee", "left_ankle", "right_ankle", "head", "neck",
)  # fmt: skip
CROWDPOSE_FLIP_INDEX: tuple[int, ...] = (1, 0, 3, 2, 5, 4, 7, 6, 9, 8, 11, 10, 12, 13)
CROWDPOSE_SKELETON: tuple[tuple[int, int], ...] = (
    (12, 13), (13, 0), (13, 1), (0, 2), (2, 4), (1, 3), (3, 5), (13, 7), (13, 6),
    (6, 8), (8, 10), (7, 9), (9, 11),
)  # fmt: skip

# Distinct BGR colours for people; cycled when there are more people than colours.
PERSON_COLORS_BGR: tuple[tuple[int, int, int], ...] = (
    (75, 25, 230), (75, 180, 60), (25, 225, 255), (200, 130, 0), (48, 130, 245),
    (180, 30, 145), (240, 240, 70), (230, 50, 240), (60, 245, 210), (212, 190, 250),
    (128, 128, 0), (255, 190, 220), (40, 110, 170), (200, 250, 255), (0, 0, 128),
    (195, 255, 170), (0, 128, 128), (180, 215, 255), (128, 0, 0), (128, 128, 128),
)  # fmt: skip


def flip_index_for(num_joints: int) -> tuple[int, ...]:
    """The flip permutation for a joint count: COCO for 17, CrowdPose for 14.

    Raises:
        ValueError: for any other joint count, since the left/right pairing is then unknown.
    """
    if num_joints == len(COCO_FLIP_INDEX):
        return COCO_FLIP_INDEX
    if num_joints == len(CROWDPOSE_FLIP_INDEX):
        return CROWDPOSE_FLIP_INDEX
    raise ValueError(
        f"no flip permutation is known for {num_joints} joints (COCO has 17, CrowdPose 14); "
        "pass flip_index explicitly or turn flip test off"
    )


def skeleton_for(num_joints: int) -> tuple[tuple[int, int], ...]:
    """Skeleton edges for a joint count (COCO 17, CrowdPose 14); no edges for anything else."""
    if num_joints == len(COCO_KEYPOINTS):
        return COCO_SKELETON
    if num_joints == len(CROWDPOSE_KEYPOINTS):
        return CROWDPOSE_SKELETON
    return ()
