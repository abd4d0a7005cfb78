"""The pipeline with the real PoseEstimator (golden tiny model, small input size): same poses as predict()."""

from __future__ import annotations

import json

import numpy as np
import pytest
from video_helpers import assert_output_frames, decoded_frames, make_video, read_video, run_in_thread

from hhrnet_rt.video import CocoSink, FileSource, JsonLinesSink, Mp4Sink, run_pipeline
from hhrnet_rt.video.records import frames_of

INPUT_SIZE = 64  # the smallest valid size: fast, and the tiny model still finds people
N = 6


@pytest.fixture(scope="module")
def estimator(golden_dir):
    from hhrnet_rt.runtime.estimator import PoseEstimator

    return PoseEstimator(golden_dir / "tiny_model.npz", input_size=INPUT_SIZE, backend="torch", device="cpu")


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    return make_video(tmp_path_factory.mktemp("e2e") / "clip.mp4", N, width=256, height=192)


def test_pipeline_matches_predict_frame_by_frame(tmp_path, estimator, clip):
    source = FileSource(clip)
    sinks = [
        Mp4Sink(tmp_path / "o.mp4", source.fps, rate=source.rate),
        JsonLinesSink(tmp_path / "o.jsonl"),
        CocoSink(tmp_path / "o.json"),
    ]
    result = run_in_thread(lambda: run_pipeline(source, estimator, sinks), timeout=300)
    assert result.frames_written == N and result.frames_read == N

    # Reference: the same decoded frames through predict(), one at a time, in this thread.
    inputs = decoded_frames(clip)
    expected = [estimator.predict(image) for image in inputs]

    records = frames_of(json.loads(line) for line in (tmp_path / "o.jsonl").read_text().splitlines())
    assert [r["frame"] for r in records] == list(range(N))
    people_seen = 0
    for record, poses in zip(records, expected, strict=True):
        assert len(record["people"]) == len(poses)
        people_seen += len(poses)
        for person, kp, score in zip(record["people"], poses.keypoints, poses.scores, strict=True):
            # Same code on the same pixels; torch CPU kernels are deterministic for a fixed thread count.
            # The file rounds x/y to 0.01 px and scores to 1e-4: up to half of that, plus the 1e-6 above.
            got = np.array(person["keypoints"])
            np.testing.assert_allclose(got[:, :2], kp[:, :2], rtol=0, atol=0.005 + 1e-6)
            np.testing.assert_allclose(got[:, 2], kp[:, 2], rtol=0, atol=5e-5 + 1e-6)
            assert person["score"] == pytest.approx(float(score), abs=5e-5 + 1e-6)
    coco = json.loads((tmp_path / "o.json").read_text())
    assert len(coco) == people_seen
    assert all(len(c["keypoints"]) == 3 * 17 and c["category_id"] == 1 for c in coco)

    assert people_seen > 0, "the tiny model should find someone: otherwise nothing above was compared"
    frames, _ = read_video(tmp_path / "o.mp4")
    assert frames[0].shape == (192, 256, 3)
    assert_output_frames(frames, inputs, records)
