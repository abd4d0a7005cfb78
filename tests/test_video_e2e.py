"""The pipeline with the real PoseEstimator (golden tiny model, small input size): same poses as predict()."""

from __future__ import annotations

import json

import numpy as np
import pytest
from video_helpers import make_video, read_index, read_video, run_in_thread

from hhrnet_rt.video import CocoSink, FileSource, JsonLinesSink, Mp4Sink, run_pipeline

INPUT_SIZE = 128


@pytest.fixture(scope="module")
def estimator(golden_dir):
    from hhrnet_rt.estimator import PoseEstimator

    return PoseEstimator(golden_dir / "tiny_model.npz", input_size=INPUT_SIZE, backend="torch", device="cpu")


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    return make_video(tmp_path_factory.mktemp("e2e") / "clip.mp4", 10, width=256, height=192)


@pytest.mark.parametrize("threaded", [True, False])
def test_pipeline_matches_predict_frame_by_frame(tmp_path, estimator, clip, threaded):
    source = FileSource(clip)
    sinks = [
        Mp4Sink(tmp_path / "o.mp4", source.fps, rate=source.rate),
        JsonLinesSink(tmp_path / "o.jsonl"),
        CocoSink(tmp_path / "o.json"),
    ]
    result = run_in_thread(lambda: run_pipeline(source, estimator, sinks, threaded=threaded), timeout=120)
    assert result.frames_written == 10 and result.frames_read == 10

    # Reference: the same decoded frames through predict(), one at a time, in this thread.
    reference_source = FileSource(clip)
    expected = []
    while (frame := reference_source.read()) is not None:
        expected.append(estimator.predict(frame.image))
    reference_source.close()

    records = [json.loads(line) for line in (tmp_path / "o.jsonl").read_text().splitlines()]
    assert [r["frame"] for r in records] == list(range(10))
    people_seen = 0
    for record, poses in zip(records, expected, strict=True):
        assert len(record["people"]) == len(poses)
        people_seen += len(poses)
        for person, kp, score in zip(record["people"], poses.keypoints, poses.scores, strict=True):
            # Same code on the same pixels; torch CPU kernels are deterministic for a fixed thread count.
            np.testing.assert_allclose(np.array(person["keypoints"]), kp, rtol=0, atol=1e-4)
            assert person["score"] == pytest.approx(float(score), abs=1e-6)
    coco = json.loads((tmp_path / "o.json").read_text())
    assert len(coco) == people_seen
    assert all(len(c["keypoints"]) == 3 * 17 and c["category_id"] == 1 for c in coco)

    frames, _ = read_video(tmp_path / "o.mp4")
    assert len(frames) == 10 and frames[0].shape == (192, 256, 3)
    # Drawn skeleton lines are thin; the band medians still give each frame's own index back.
    assert [read_index(f) for f in frames] == list(range(10))
