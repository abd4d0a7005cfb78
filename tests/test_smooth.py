"""``--smooth``: the One-Euro filter per tracked joint, the post-decode hook and the drawing by ID."""

from __future__ import annotations

import json

import numpy as np
import pytest

from hhrnet_rt import Poses
from hhrnet_rt.draw import PoseAnnotator, hud_ids_line
from hhrnet_rt.track.hook import TemporalSettings
from hhrnet_rt.track.smooth import PoseSmoother
from hhrnet_rt.video.records import frames_of

FPS = 30.0


def _trajectory(seed: int = 0):
    """One joint: at rest for 1 s, 600 px/s to the right for 1 s (20 px a frame), at rest again; plus
    N(0, 2 px) noise per axis, as a decoder's joint jitter."""
    t = np.arange(90) / FPS
    x = np.where(t < 1, 100.0, np.where(t < 2, 100.0 + 600.0 * (t - 1), 700.0))
    truth = np.stack([x, np.full_like(x, 200.0)], axis=1)
    noisy = truth + np.random.default_rng(seed).normal(0, 2.0, truth.shape)
    return t, truth, noisy


def _smooth(smoother, t, noisy, person_id=0):
    out = []
    for ti, xy in zip(t, noisy, strict=True):
        poses = Poses(np.array([[[*xy, 0.9]]], np.float32), np.ones(1, np.float32), ids=[person_id])
        out.append(smoother.update(poses, ti).keypoints[0, 0, :2])
    return np.array(out)


@pytest.mark.parametrize("seed", range(3))
def test_jitter_reduced_with_bounded_lag(seed):
    t, truth, noisy = _trajectory(seed)
    out = _smooth(PoseSmoother(), t, noisy)
    rest = (t > 0.3) & (t < 1.0)  # after the filter settled, before the move
    rms = lambda e: float(np.sqrt((e**2).mean()))  # noqa: E731
    # The default filter (min_cutoff 1 Hz, beta 0.05) measured here: rest error 1.8 -> 1.0 px rms, lag
    # 3 px on the move (at 20 px a frame), 7 px at most. Bounds with margin for other noise draws:
    assert rms(out[rest] - truth[rest]) < 0.7 * rms(noisy[rest] - truth[rest])
    moving = (t > 1.3) & (t < 2.0)
    assert np.abs(out[moving, 0] - truth[moving, 0]).mean() < 6.0  # under a third of a frame's travel
    assert np.abs(out[t > 1, 0] - truth[t > 1, 0]).max() < 15.0  # never a whole frame behind
    # Without the speed term (beta 0) the same filter lags far behind: the test tells the two apart.
    slow = _smooth(PoseSmoother(beta=0.0), t, noisy)
    assert np.abs(slow[moving, 0] - truth[moving, 0]).mean() > 30.0


def test_untracked_people_and_unseen_joints_pass_unchanged():
    smoother = PoseSmoother()
    kp = np.array([[[10.0, 10.0, 0.9], [50.0, 50.0, 0.0]], [[300.0, 300.0, 0.9], [310.0, 310.0, 0.9]]])
    for i in range(3):
        moved = kp + np.array([i * 5.0, 0.0, 0.0])
        out = smoother.update(Poses(moved, np.ones(2, np.float32), ids=[3, -1]), i / FPS)
        assert out.meta["smoothed"] is True and out.ids.tolist() == [3, -1]
        assert np.array_equal(out.keypoints[1], moved[1].astype(np.float32))  # no ID: raw
        assert np.array_equal(out.keypoints[0, 1], moved[0, 1].astype(np.float32))  # joint not seen: raw
        if i:
            assert out.keypoints[0, 0, 0] < moved[0, 0, 0]  # a seen joint of a tracked person: smoothed


def test_settings_hook_tracks_then_smooths_and_smooth_implies_track():
    assert TemporalSettings().hook() is None
    hook = TemporalSettings(smooth=True, min_hits=1).hook()
    assert hook is not None and hook.smoother is not None

    class Frame:
        timestamp = 0.0

    poses = Poses(np.array([[[10.0, 10.0, 0.9], [20.0, 40.0, 0.9]]]), np.ones(1, np.float32))
    out = hook(poses, Frame())
    assert out.ids.tolist() == [0] and out.meta.get("smoothed") is True
    assert TemporalSettings(track=True).hook().smoother is None


def test_colour_follows_the_id_not_the_position_in_the_list():
    a = np.array([[20.0, 20.0, 0.9], [20.0, 60.0, 0.9]])
    b = np.array([[120.0, 20.0, 0.9], [120.0, 60.0, 0.9]])
    annotator = PoseAnnotator()
    one = annotator.annotate(
        np.zeros((100, 160, 3), np.uint8), Poses(np.stack([a, b]), [0.9, 0.9], ids=[5, 2])
    )
    two = annotator.annotate(
        np.zeros((100, 160, 3), np.uint8), Poses(np.stack([b, a]), [0.9, 0.9], ids=[2, 5])
    )
    assert np.array_equal(one, two)
    plain = annotator.annotate(np.zeros((100, 160, 3), np.uint8), Poses(np.stack([b, a]), [0.9, 0.9]))
    assert not np.array_equal(one, plain)  # without IDs the list order colours them


def test_hud_line_lists_ids():
    poses = Poses(np.zeros((3, 17, 3)), np.ones(3, np.float32), ids=[7, -1, 2])
    assert hud_ids_line(poses) == "ids 2 7"
    many = Poses(np.zeros((10, 17, 3)), np.ones(10, np.float32), ids=list(range(10)))
    assert hud_ids_line(many, most=4) == "ids 0 1 2 3 +6"


def test_pipeline_calls_the_hook_per_frame_in_order_and_writes_ids(tmp_path):
    """The post-decode hook sees every frame once, in order, inside the decode stage (one decode timing
    per frame), and what it returns is what the sinks write."""
    from video_helpers import FakeEstimator, index_image

    from hhrnet_rt.video import ArraySource, JsonLinesSink, run_pipeline

    seen = []

    def hook(poses, frame):
        seen.append(frame.index)
        return poses.with_ids(np.full(len(poses), 7))

    source = ArraySource([index_image(i) for i in range(8)])
    sink = JsonLinesSink(tmp_path / "o.jsonl")
    result = run_pipeline(source, FakeEstimator(), [sink], post_decode=hook)
    assert seen == list(range(8))
    assert result.stages["decode"].count == 8
    records = frames_of(json.loads(line) for line in (tmp_path / "o.jsonl").read_text().splitlines())
    assert [p["id"] for r in records for p in r["people"]] == [7] * 8
