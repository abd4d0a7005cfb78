"""PoseAnnotator and draw_hud: what gets drawn where, and what is left alone."""

from __future__ import annotations

import numpy as np
import pytest

from hhrnet_rt.core.skeleton import COCO_SKELETON, CROWDPOSE_SKELETON, PERSON_COLORS_BGR
from hhrnet_rt.draw import PoseAnnotator, PoseStyle, draw_hud, hud_ids_line
from hhrnet_rt.overlay import text_color_on
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
    out = PoseAnnotator(PoseStyle(joint_radius=4, line_width=3, labels=False)).annotate(frame, _poses(p0, p1))
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
    PoseAnnotator(PoseStyle(labels=False)).annotate(plain, _poses(person))
    PoseAnnotator(PoseStyle(labels=True)).annotate(labelled, _poses(person))
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


def test_id_label_sits_on_a_filled_box_with_contrasting_text():
    # A tracked person's "#ID" label: a box filled with the person's colour (readable on any clothing),
    # text black or white, whichever contrasts more with that colour.
    frame = np.full((200, 300, 3), 90, np.uint8)
    person = _person(17, {0: (150.0, 120.0)})
    poses = _poses(person).with_ids(np.array([0]))
    PoseAnnotator(PoseStyle(line_width=3)).annotate(frame, poses)
    color = PERSON_COLORS_BGR[0]
    above = frame[:110]  # the label is above the joint
    filled = (above == color).all(axis=2)
    assert filled.sum() > 150  # a box, not just glyph strokes
    ys, xs = np.nonzero(filled)
    box = above[ys.min() : ys.max() + 1, xs.min() : xs.max() + 1]
    text = text_color_on(color)
    assert (box == text).all(axis=2).any()  # the glyphs, in the contrasting colour
    assert text_color_on((255, 255, 255)) == (0, 0, 0) and text_color_on((40, 0, 0)) == (255, 255, 255)


def test_no_labels_and_boxes():
    person = _person(17, {5: (100.0, 60.0), 11: (110.0, 140.0)})
    bare, boxed = np.zeros((200, 240, 3), np.uint8), np.zeros((200, 240, 3), np.uint8)
    PoseAnnotator(labels=False).annotate(bare, _poses(person))
    assert not bare[:50].any()  # no label above the person
    PoseAnnotator(labels=False, boxes=True, line_width=2).annotate(boxed, _poses(person))
    extra = np.argwhere((boxed != bare).any(axis=2))
    (y0, x0), (y1, x1) = extra.min(axis=0), extra.max(axis=0)
    assert y0 < 60 and y1 > 140 and x0 < 100 and x1 > 110  # a box around the joints
    with pytest.raises(TypeError, match="not both"):
        PoseAnnotator(PoseStyle(), boxes=True)


def test_line_width_scales_with_the_frame_unless_given():
    assert PoseStyle().width_for((480, 640)) == 2
    assert PoseStyle().width_for((1080, 1920)) > PoseStyle().width_for((480, 640))
    assert PoseStyle(line_width=7).width_for((64, 64)) == 7
    with pytest.raises(ValueError, match="1 to 100"):
        PoseStyle(line_width=0)


def test_plot_draws_on_a_copy_with_the_style_keywords():
    image = np.zeros((120, 160, 3), np.uint8)
    poses = _poses(_person(17, {5: (60.0, 40.0), 7: (60.0, 100.0)}))
    out = poses.plot(image, line_width=4, labels=False)
    assert not image.any() and out.any() and out.shape == image.shape
    assert np.array_equal(out, PoseAnnotator(line_width=4, labels=False).annotate(image.copy(), poses))
    with pytest.raises(TypeError):
        poses.plot(image, no_such_style=1)


def test_hud_ids_match_the_people_drawn():
    # A hidden low-score fragment's ID is not listed next to the people drawn.
    person = _person(17, {0: (10.0, 10.0)})
    poses = _poses(person, person, scores=[0.8, 0.05]).with_ids(np.array([3, 9]))
    annotator = PoseAnnotator()
    assert annotator.drawn(poses).tolist() == [True, False]
    assert hud_ids_line(poses[annotator.drawn(poses)]) == "ids 3"
