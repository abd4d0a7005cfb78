"""``Poses`` as users handle it: indexing and masks, ``select`` (--min-score/--max-people), boxes from
visible joints, rounded JSON records, and ``to_supervision`` without a hard dependency."""

from __future__ import annotations

import json
import sys
import warnings

import numpy as np
import pytest

from hhrnet_rt.poses import Poses


def _poses(scores, num_joints: int = 17) -> Poses:
    """Person p has every joint at (10p + j, 100 + p) with joint score 0.5 (p, j from 0)."""
    p = len(scores)
    kp = np.zeros((p, num_joints, 3), np.float32)
    kp[:, :, 0] = 10 * np.arange(p)[:, None] + np.arange(num_joints)[None, :]
    kp[:, :, 1] = 100 + np.arange(p)[:, None]
    kp[:, :, 2] = 0.5
    return Poses(kp, np.asarray(scores, np.float32), meta={"source": "test"})


def test_mask_index_and_slice_give_poses():
    poses = _poses([0.2, 0.6, 0.4])
    picked = poses[poses.scores > 0.3]
    assert isinstance(picked, Poses) and picked.scores.tolist() == pytest.approx([0.6, 0.4])
    assert np.array_equal(picked.keypoints, poses.keypoints[[1, 2]])
    assert picked.meta == {"source": "test"}
    one = poses[1]
    assert one.keypoints.shape == (1, 17, 3) and one.scores.tolist() == pytest.approx([0.6])
    assert poses[-1].scores.tolist() == pytest.approx([0.4])
    assert len(poses[1:]) == 2 and len(poses[[2, 0]]) == 2 and len(poses[[]]) == 0
    assert len(poses[poses.scores > 1]) == 0 and poses[poses.scores > 1].num_joints == 17
    with pytest.raises(IndexError, match="mask"):
        poses[np.array([True, False])]


def test_select_min_score_is_inclusive_and_max_people_keeps_the_best_in_order():
    poses = _poses([0.2, 0.9, 0.4, 0.7, 0.4])
    assert poses.select() is poses
    assert poses.select(min_score=0.4).scores.tolist() == pytest.approx([0.9, 0.4, 0.7, 0.4])
    best_two = poses.select(max_people=2)
    assert best_two.scores.tolist() == pytest.approx([0.9, 0.7])  # original order, not score order
    assert np.array_equal(best_two.keypoints, poses.keypoints[[1, 3]])
    # a tie at the cut keeps the earlier person (stable), so the choice never depends on sort details
    assert poses.select(min_score=0.3, max_people=3).scores.tolist() == pytest.approx([0.9, 0.4, 0.7])
    assert len(poses.select(min_score=0.95)) == 0
    with pytest.raises(ValueError, match="max_people"):
        poses.select(max_people=-1)


def test_bboxes_use_only_found_joints():
    poses = _poses([0.5, 0.5])
    poses.keypoints[0, 0] = (-40.0, 0.0, 0.0)  # a joint not found: score 0, x/y not a position
    poses.keypoints[1, :, 2] = 0.0  # nobody's joints found
    boxes = poses.bboxes()
    assert boxes.shape == (2, 4) and boxes.dtype == np.float32
    assert boxes[0].tolist() == [1.0, 100.0, 16.0, 100.0]  # joint 0 at x=-40 left out
    assert np.isnan(boxes[1]).all()
    assert Poses.empty(17).bboxes().shape == (0, 4)


def test_records_are_rounded_and_valid_json():
    kp = np.array([[[412.508331, 133.2461, 0.93336141], [np.nan, 1.0, 0.0]]], np.float32)
    record = Poses(kp, np.array([0.712345678], np.float32)).to_records()[0]
    assert record["score"] == 0.7123
    assert record["keypoints"][0] == [412.51, 133.25, 0.9334]
    assert record["keypoints"][1] == [None, 1.0, 0.0]  # JSON has no NaN
    json.loads(json.dumps(record, allow_nan=False))
    long = _poses(np.full(5, 0.123456789))
    long.keypoints[:, :, :2] += 0.123456789
    full = json.dumps(
        [
            {"score": float(s), "keypoints": p.tolist()}
            for p, s in zip(long.keypoints, long.scores, strict=True)
        ]
    )
    assert len(json.dumps(long.to_records())) < 0.6 * len(full)


def test_to_supervision_without_supervision_says_how_to_get_it(monkeypatch):
    monkeypatch.setitem(sys.modules, "supervision", None)  # import fails as if not installed
    with pytest.raises(ImportError, match="pip install supervision"):
        _poses([0.5]).to_supervision()


def test_to_supervision_with_the_real_package():
    # supervision is in the dev extra: its current KeyPoints API (keypoint_confidence, detection_confidence,
    # visible), not the deprecated confidence= argument, which warns.
    sv = pytest.importorskip("supervision")
    poses = _poses([0.3, 0.8])
    poses.keypoints[1, 3, 2] = 0.0  # a joint not found
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a deprecation warning fails the test
        kp = poses.to_supervision()
    assert isinstance(kp, sv.KeyPoints) and len(kp) == 2
    assert np.array_equal(kp.xy, poses.keypoints[:, :, :2])
    assert np.array_equal(kp.keypoint_confidence, poses.keypoints[:, :, 2])
    assert kp.detection_confidence.tolist() == pytest.approx([0.3, 0.8]) and kp.class_id.tolist() == [0, 0]
    assert not kp.visible[1, 3] and kp.visible[0, 3]
    assert "tracker_id" not in kp.data
    kp.xy[0, 0, 0] = -1  # a copy: changing it leaves the Poses as it was
    assert poses.keypoints[0, 0, 0] != -1
    tracked = _poses([0.5, 0.6]).with_ids(np.array([4, -1]))
    assert tracked.to_supervision().data["tracker_id"].tolist() == [4, -1]
