"""PoseAnnotator and draw_hud: what gets drawn where, and what is left alone."""

from __future__ import annotations

import numpy as np
import pytest

from hhrnet_rt.core.skeleton import COCO_SKELETON, CROWDPOSE_SKELETON, PERSON_COLORS_BGR
from hhrnet_rt.draw import PoseAnnotator, PoseStyle, draw_hud
from hhrnet_rt.poses import Poses


def _person(k: int, xy: dict[int, tuple[float, float]], score: float = 0.9) -> np.ndarray:
    kp = np.zeros((k, 3), np.float32)
    for j, (x, y) in xy.items():
        kp[j] = (x, y, score)
    return kp


def _poses(*people: np.ndarray, scores=None) -> Poses:
    kp = np.stack(people)
    return Poses(kp, np.asarray(scores if scores is not None else [0.8] * len(people), np.float32))


def _color_at(frame, x, y):
    return tuple(int(v) for v in frame[y, x])


def test_joints_and_edges_in_person_colours():
    frame = np.zeros((200, 300, 3), np.uint8)
    # Person 0: left shoulder (5) and left elbow (7), an edge of the COCO skeleton.
    p0 = _person(17, {5: (50.0, 50.0), 7: (50.0, 150.0)})
    # Person 1: a single nose far away.
    p1 = _person(17, {0: (250.0, 100.0)})
    assert (5, 7) in COCO_SKELETON
    out = PoseAnnotator(PoseStyle(joint_radius=4, line_thickness=3)).annotate(frame, _poses(p0, p1))
    assert out is frame  # in place, as documented
    assert _color_at(frame, 50, 50) == PERSON_COLORS_BGR[0]
    assert _color_at(frame, 50, 100) == PERSON_COLORS_BGR[0]  # middle of the shoulder-elbow edge
    assert _color_at(frame, 250, 100) == PERSON_COLORS_BGR[1]
    assert _color_at(frame, 150, 100) == (0, 0, 0)  # nothing between the two people


def test_low_scores_are_not_drawn():
    frame = np.zeros((100, 100, 3), np.uint8)
    person = _person(17, {5: (20.0, 20.0), 7: (20.0, 80.0)}, score=0.05)
    PoseAnnotator(PoseStyle(score_threshold=0.1)).annotate(frame, _poses(person))
    assert not frame.any()
    # Same joints above the threshold are drawn; a person under person_threshold is not.
    PoseAnnotator(PoseStyle(score_threshold=0.01, person_threshold=0.9)).annotate(frame, _poses(person))
    assert not frame.any()
    PoseAnnotator(PoseStyle(score_threshold=0.01)).annotate(frame, _poses(person))
    assert frame.any()


def test_default_style_hides_low_score_fragments_only():
    # Official grouping leaves one-peak fragments (person score <= 1/17 of a peak) that refine completes.
    frame = np.zeros((100, 100, 3), np.uint8)
    person = _person(17, {5: (20.0, 20.0), 7: (20.0, 80.0)}, score=0.9)
    PoseAnnotator().annotate(frame, _poses(person, scores=[0.05]))
    assert not frame.any()
    PoseAnnotator().annotate(frame, _poses(person, scores=[0.3]))
    assert frame.any()


def test_edge_needs_both_joints():
    frame = np.zeros((200, 100, 3), np.uint8)
    person = _person(17, {5: (50.0, 20.0), 7: (50.0, 180.0)})
    person[7, 2] = 0.0  # elbow missing: no line, only the shoulder dot
    PoseAnnotator().annotate(frame, _poses(person))
    assert _color_at(frame, 50, 20) != (0, 0, 0)
    assert _color_at(frame, 50, 100) == (0, 0, 0)


def test_crowdpose_skeleton_and_nonfinite_coordinates():
    frame = np.zeros((120, 120, 3), np.uint8)
    a, b = CROWDPOSE_SKELETON[0]  # head - neck
    person = _person(14, {a: (60.0, 10.0), b: (60.0, 110.0), 0: (np.nan, 5.0), 1: (1e12, 5.0)})
    PoseAnnotator().annotate(frame, _poses(person))
    assert _color_at(frame, 60, 60) == PERSON_COLORS_BGR[0]


def test_empty_poses_leave_frame_unchanged_and_bad_frames_rejected():
    frame = np.full((50, 60, 3), 77, np.uint8)
    PoseAnnotator().annotate(frame, Poses.empty(17))
    assert (frame == 77).all()
    with pytest.raises(ValueError, match="uint8"):
        PoseAnnotator().annotate(np.zeros((50, 60), np.uint8), Poses.empty(17))
    with pytest.raises(ValueError, match="uint8"):
        PoseAnnotator().annotate(np.zeros((50, 60, 3), np.float32), Poses.empty(17))


def test_person_score_label():
    plain = np.zeros((120, 160, 3), np.uint8)
    labelled = plain.copy()
    person = _person(17, {0: (80.0, 80.0)})
    PoseAnnotator(PoseStyle()).annotate(plain, _poses(person))
    PoseAnnotator(PoseStyle(show_person_score=True)).annotate(labelled, _poses(person))
    diff = np.argwhere((plain != labelled).any(axis=2))
    assert diff.size and diff[:, 0].max() < 80  # text above the top joint


def test_hud_box_is_local():
    frame = np.full((200, 300, 3), 128, np.uint8)
    draw_hud(frame, ["12.3 FPS", "people 2"], origin=(10, 10))
    changed = np.argwhere((frame != 128).any(axis=2))
    assert changed.size
    y0, x0 = changed.min(axis=0)
    y1, x1 = changed.max(axis=0)
    assert (y0, x0) == (10, 10) and y1 < 80 and x1 < 150
    assert (frame[10:12, 10:12] == 0).all()  # background rectangle behind the text
    untouched = frame.copy()
    assert draw_hud(untouched, []) is untouched
