"""The small shared pieces: Poses validation, DecodeParams, keypoint data, CLI exit-code mapping."""

from __future__ import annotations

import numpy as np
import pytest

from hhrnet_rt import Poses
from hhrnet_rt.cli.app import EXIT_INTERNAL, exit_code_for
from hhrnet_rt.core import errors
from hhrnet_rt.core.skeleton import (
    COCO_FLIP_INDEX,
    COCO_JOINT_ORDER,
    COCO_KEYPOINTS,
    COCO_SKELETON,
    CROWDPOSE_FLIP_INDEX,
    CROWDPOSE_KEYPOINTS,
    CROWDPOSE_SKELETON,
    flip_index_for,
    skeleton_for,
)
from hhrnet_rt.decode.params import DecodeParams


def test_poses_validates_shapes_and_casts():
    kp = np.ones((2, 17, 3), np.float64)
    poses = Poses(keypoints=kp, scores=[0.5, 0.25])
    assert len(poses) == 2 and poses.num_joints == 17
    assert poses.keypoints.dtype == np.float32 and poses.scores.dtype == np.float32
    assert not poses.empty()
    with pytest.raises(ValueError, match=r"expected \(P, K, 3\), got \(2, 17\)"):
        Poses(keypoints=np.zeros((2, 17)), scores=np.zeros(2))
    with pytest.raises(ValueError, match=r"scores: expected \(2,\)"):
        Poses(keypoints=kp, scores=np.zeros(3))


def test_poses_empty_constructor_and_question():
    empty = Poses.empty(14)
    assert empty.keypoints.shape == (0, 14, 3) and empty.scores.shape == (0,)
    assert empty.empty() is True and len(empty) == 0
    assert empty.to_records() == []


def test_poses_records_are_plain_json_types():
    kp = np.arange(17 * 3, dtype=np.float32).reshape(1, 17, 3)
    rec = Poses(keypoints=kp, scores=[0.75]).to_records()
    assert rec[0]["score"] == 0.75 and rec[0]["keypoints"][1] == [3.0, 4.0, 5.0]
    assert all(type(v) is float for joint in rec[0]["keypoints"] for v in joint)


def test_decode_params_defaults_are_official():
    p = DecodeParams()
    assert (p.detection_threshold, p.tag_threshold, p.max_num_people, p.nms_kernel) == (0.1, 1.0, 30, 5)
    assert p.use_detection_val and not p.ignore_too_much
    assert p.order_for(17) == (0, 1, 2, 3, 4, 5, 6, 11, 12, 7, 8, 9, 10, 13, 14, 15, 16)
    assert p.order_for(14) == (0, 1, 2, 3, 4, 5, 6, 11, 12, 7, 8, 9, 10, 13)  # official: first 14 of 17
    with pytest.raises(ValueError, match="not a permutation"):
        DecodeParams(joint_order=(0, 0, 1)).order_for(3)


@pytest.mark.parametrize(
    ("names", "flip", "edges"),
    [
        (COCO_KEYPOINTS, COCO_FLIP_INDEX, COCO_SKELETON),
        (CROWDPOSE_KEYPOINTS, CROWDPOSE_FLIP_INDEX, CROWDPOSE_SKELETON),
    ],
)
def test_flip_index_swaps_left_and_right_names(names, flip, edges):
    assert sorted(flip) == list(range(len(names)))
    for i, j in enumerate(flip):
        swapped = names[i].replace("left", "@").replace("right", "left").replace("@", "right")
        assert names[j] == swapped
    assert flip_index_for(len(names)) == flip and skeleton_for(len(names)) == edges
    assert all(0 <= a < len(names) and 0 <= b < len(names) for a, b in edges)


def test_joint_order_is_a_permutation_and_unknown_counts_fail_clearly():
    assert sorted(COCO_JOINT_ORDER) == list(range(17))
    with pytest.raises(ValueError, match="no flip permutation is known for 5 joints"):
        flip_index_for(5)
    assert skeleton_for(5) == ()


def test_exit_codes_pick_the_most_specific_class():
    assert exit_code_for(errors.TensorRTUnavailableError("x")) == 5
    assert exit_code_for(errors.BackendUnavailableError("x")) == 4
    assert exit_code_for(errors.DownloadError("x")) == 3
    assert exit_code_for(errors.InputError("x")) == 2
    assert exit_code_for(errors.PipelineError("x")) == 8
    assert exit_code_for(errors.HhrtError("x")) == EXIT_INTERNAL
