"""Person IDs (``hhrnet_rt.track``): OKS, the tracker's birth/death rules, IDs through crossings on the
synthetic walkers, the CLEAR-MOT counts, and ``Poses.ids``."""

from __future__ import annotations

import numpy as np
import pytest

from hhrnet_rt import Poses
from hhrnet_rt.track import PoseTracker, oks_matrix, sigmas_for, synthetic
from hhrnet_rt.track.metrics import clear_mot
from hhrnet_rt.track.oks import COCO_SIGMAS, CROWDPOSE_SIGMAS


def _person(cx: float, cy: float = 200.0, size: float = 200.0) -> np.ndarray:
    """(17, 3) the synthetic template at (cx, cy), every joint seen."""
    from hhrnet_rt.decode.synthetic import person_template

    xy = person_template(17) * size + (cx, cy)
    return np.concatenate([xy, np.ones((17, 1))], axis=1).astype(np.float32)


def _poses(*people: np.ndarray) -> Poses:
    kp = np.stack(people) if people else np.zeros((0, 17, 3), np.float32)
    return Poses(kp, np.ones(len(kp), np.float32))


def test_oks_identity_distance_and_joints_seen_in_both():
    a = _person(100)
    far = _person(400)
    oks = oks_matrix(np.stack([a]), np.stack([a, far]))
    assert oks.shape == (1, 2)
    assert oks[0, 0] == pytest.approx(1.0)
    assert oks[0, 1] < 1e-6
    # A joint seen in only one pose does not count against the match, however far off it is.
    b = a.copy()
    b[9, :2] += 500.0
    b[9, 2] = 0.0
    assert oks_matrix(a[None], b[None])[0, 0] == pytest.approx(1.0)
    # Nothing seen in both: 0, not NaN.
    c = a.copy()
    c[:, 2] = 0.0
    assert oks_matrix(a[None], c[None])[0, 0] == 0.0


def test_sigmas_per_skeleton():
    assert sigmas_for(17) is COCO_SIGMAS and sigmas_for(14) is CROWDPOSE_SIGMAS
    fallback = sigmas_for(5)
    assert fallback.shape == (5,) and np.allclose(fallback, COCO_SIGMAS.mean())


def test_poses_ids_follow_indexing_and_records():
    poses = _poses(_person(50), _person(250), _person(450)).with_ids([4, -1, 7])
    assert poses[[2, 0]].ids.tolist() == [7, 4]
    assert poses[np.array([False, True, True])].ids.tolist() == [-1, 7]
    assert poses[1].ids.tolist() == [-1]
    assert [r["id"] for r in poses.to_records()] == [4, None, 7]
    assert "id" not in _poses(_person(50)).to_records()[0]  # untracked results keep their old layout
    with pytest.raises(ValueError, match="ids"):
        Poses(poses.keypoints, poses.scores, ids=[1, 2])


def test_birth_needs_min_hits_in_a_row_and_fragments_never_get_an_id():
    tracker = PoseTracker(min_hits=3)
    got = [tracker.update(_poses(_person(100 + 2 * f))).ids.tolist() for f in range(4)]
    assert got == [[-1], [-1], [0], [0]]
    # A person seen once, then gone, then seen again elsewhere is two tentative tracks, never confirmed.
    tracker = PoseTracker(min_hits=2)
    assert tracker.update(_poses(_person(100))).ids.tolist() == [-1]
    assert tracker.update(_poses()).ids.tolist() == []
    assert tracker.update(_poses(_person(500))).ids.tolist() == [-1]
    assert tracker.confirmed == 0


def test_death_after_max_age_unseen_frames():
    tracker = PoseTracker(min_hits=1, max_age=3)
    assert tracker.update(_poses(_person(100))).ids.tolist() == [0]
    for _ in range(3):  # unseen for max_age frames: the ID waits
        tracker.update(_poses())
    assert tracker.update(_poses(_person(100))).ids.tolist() == [0]
    for _ in range(4):  # one frame more than max_age: gone
        tracker.update(_poses())
    assert tracker.confirmed == 0
    assert tracker.update(_poses(_person(100))).ids.tolist() == [1]


def test_min_oks_refuses_a_far_match():
    tracker = PoseTracker(min_hits=1, min_oks=0.5)
    tracker.update(_poses(_person(100)))
    assert tracker.update(_poses(_person(400))).ids.tolist() == [1]  # too far to be person 0


def test_joints_without_a_finite_position_do_not_spoil_a_track():
    """A joint with a score but a NaN position is not seen: it must not reach the track's velocity."""
    tracker = PoseTracker(min_hits=1)
    first = _person(100)
    first[3:6, :2] = np.nan
    assert tracker.update(_poses(first)).ids.tolist() == [0]
    for step in range(1, 4):
        assert tracker.update(_poses(_person(100 + 3 * step))).ids.tolist() == [0]
    velocity = tracker._tracks[0].velocity
    assert np.isfinite(velocity).all() and velocity[0] > 0


def test_order_of_people_does_not_matter():
    tracker = PoseTracker(min_hits=1)
    first = tracker.update(_poses(_person(100), _person(400))).ids.tolist()
    second = tracker.update(_poses(_person(404), _person(104))).ids.tolist()
    assert second == first[::-1]


@pytest.mark.parametrize("seed", range(5))
def test_ids_stable_through_a_crossing(seed):
    """Two people walk into each other, one hides the other, they part: still two IDs, no switch."""
    seq = synthetic.crossing(seed)
    tracker = PoseTracker()
    tracked = [tracker.update(d) for d in seq.detections]
    counts = clear_mot(seq.truth, tracked)
    assert counts.id_switches == 0
    assert counts.ids == 2
    assert counts.mota > 0.8


def test_a_crowd_keeps_its_ids():
    seq = synthetic.crowd(0, people=6)
    tracker = PoseTracker()
    counts = clear_mot(seq.truth, [tracker.update(d) for d in seq.detections])
    assert counts.id_switches <= 2  # 6 people crossing for 200 frames, occlusions and misses
    assert counts.ids <= 8


def test_clear_mot_counts_a_swap_and_a_fragment():
    a, b = _person(100), _person(400)
    truth = [_poses(a, b).with_ids([0, 1]) for _ in range(4)]
    tracked = [
        _poses(a, b).with_ids([10, 11]),
        _poses(a).with_ids([10]),  # b missed: its track is interrupted
        _poses(a, b).with_ids([11, 12]),  # a switches to 11 (b's old ID), b comes back as 12
        _poses(a, b, _person(250)).with_ids([11, 12, 13]),  # a stray track: a false positive
    ]
    counts = clear_mot(truth, tracked)
    assert (counts.matches, counts.misses, counts.false_positives) == (7, 1, 1)
    assert counts.id_switches == 2 and counts.fragmentations == 1
    assert counts.mota == pytest.approx(1 - 4 / 8)


def test_clear_mot_gives_one_id_to_one_person_only():
    """Two people whose last match was the same ID (a switch) cannot both match it again."""
    a, b, near_a = _person(100), _person(400), _person(103)
    truth = [_poses(a).with_ids([0]), _poses(a, b).with_ids([0, 1]), _poses(a, near_a).with_ids([0, 1])]
    tracked = [_poses(a).with_ids([5]), _poses(b).with_ids([5]), _poses(_person(101)).with_ids([5])]
    counts = clear_mot(truth, tracked)
    assert counts.matches == 3 and counts.false_positives == 0 and counts.misses == 2


def test_synthetic_detections_are_spoiled_truth():
    seq = synthetic.crossing(0, frames=30)
    assert len(seq.truth) == len(seq.detections) == 30
    assert all(t.ids is not None for t in seq.truth) and all(d.ids is None for d in seq.detections)
    assert any(len(d) != len(t) for d, t in zip(seq.detections, seq.truth, strict=True))  # misses/fragments


def test_norfair_on_the_same_sequences():
    """The benchmark's norfair adapter runs and labels people (the comparison itself is a benchmark)."""
    pytest.importorskip("norfair")
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "benchmarks" / "bench_track.py"
    spec = importlib.util.spec_from_file_location("bench_track", path)
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    seq = synthetic.crossing(0, frames=40)
    counts = clear_mot(seq.truth, bench.run_norfair(seq))
    assert counts.matches > 0 and counts.ids >= 2


def test_ids_survive_a_short_outage_not_a_long_one_and_smoothing_restarts_after_either():
    from hhrnet_rt.track.hook import TemporalHook
    from hhrnet_rt.track.smooth import PoseSmoother
    from hhrnet_rt.video.sources import Frame

    def run(gap_s: float):
        hook = TemporalHook(PoseTracker(min_hits=1), PoseSmoother(min_cutoff=0.01), max_gap_s=2.0)
        image = np.zeros((4, 4, 3), np.uint8)
        out = [hook(_poses(_person(100 + k)), Frame(k, k / 25, image, 0.0)) for k in range(5)]
        after = Frame(5, 4 / 25 + gap_s, image, 0.0, connection=1)  # the first frame after the outage
        out.append(hook(_poses(_person(110)), after))
        return out

    short, long = run(0.5), run(3.0)  # the smoother alone would smooth across 0.5 s (its own gap: 1 s)
    assert short[-1].ids.tolist() == short[0].ids.tolist() == [0]  # the same person, the same ID
    assert long[-1].ids.tolist() == [1]  # away too long: a new ID, the old one not reused
    for out in (short, long):  # no smoothing across the gap: the joints are where they were seen
        np.testing.assert_allclose(out[-1].keypoints[0, :, 0], _person(110)[:, 0], atol=1e-3)
    # while within one connection the strong smoothing lags behind
    assert abs(short[4].keypoints[0, 0, 0] - _person(104)[0, 0]) > 1
