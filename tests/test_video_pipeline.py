"""Pipeline mechanics with a fake estimator: order, completeness, errors, stops, live policy, sinks.

The fake estimator (tests/video_helpers.py) is legitimate here: these tests are about threads, queues and
files, not about poses. End-to-end runs with the real PoseEstimator are in test_video_e2e.py and
test_cli_media.py.
"""

from __future__ import annotations

import _thread
import json
import threading

import numpy as np
import pytest
from video_helpers import (
    FakeEstimator,
    PacedSource,
    index_image,
    make_video,
    make_video_with_bad_packets,
    read_index,
    read_video,
    run_in_thread,
)

from hhrnet_rt.core.errors import InputError, PipelineError
from hhrnet_rt.draw import PoseAnnotator
from hhrnet_rt.video import (
    STAGE_NAMES,
    ArraySource,
    CocoSink,
    FileSource,
    JsonLinesSink,
    Mp4Sink,
    run_pipeline,
)
from hhrnet_rt.video.records import frames_of

N = 20


@pytest.fixture(scope="module")
def video20(tmp_path_factory):
    return make_video(tmp_path_factory.mktemp("v") / "in.mp4", N)


def _sinks(tmp_path, source):
    return [
        Mp4Sink(tmp_path / "out.mp4", source.fps, rate=source.rate),
        JsonLinesSink(tmp_path / "out.jsonl"),
        CocoSink(tmp_path / "out.json"),
    ]


def _jsonl(path):
    return frames_of(json.loads(line) for line in path.read_text().splitlines())  # frame records


@pytest.mark.parametrize("threaded", [True, False])
def test_file_every_frame_in_order(tmp_path, video20, threaded):
    source = FileSource(video20)
    result = run_in_thread(
        lambda: run_pipeline(source, FakeEstimator(), _sinks(tmp_path, source), threaded=threaded)
    )
    assert (result.frames_read, result.frames_processed, result.frames_written) == (N, N, N)
    assert result.frames_dropped == 0 and result.stopped is None and result.threads_still_running == ()
    frames, rate = read_video(tmp_path / "out.mp4")
    assert [read_index(f) for f in frames] == list(range(N))
    assert rate == 25
    records = _jsonl(tmp_path / "out.jsonl")
    assert [r["frame"] for r in records] == list(range(N))
    assert [r["timestamp"] for r in records] == pytest.approx([i / 25 for i in range(N)])
    # The fake puts the picture's own index into x: poses stayed with their frame through the threads.
    assert [r["people"][0]["keypoints"][0][0] for r in records] == list(range(N))
    assert all(len(r["people"][0]["keypoints"]) == 17 for r in records)
    coco = json.loads((tmp_path / "out.json").read_text())
    assert [c["image_id"] for c in coco] == list(range(N))
    assert all(c["category_id"] == 1 and len(c["keypoints"]) == 51 and c["score"] == 0.5 for c in coco)
    assert set(result.stages) == set(STAGE_NAMES)
    assert all(result.stages[s].count == N for s in STAGE_NAMES)
    assert result.fps > 0


def test_mp4_is_h264_yuv420p_faststart(tmp_path, video20):
    import av

    source = FileSource(video20)
    run_pipeline(source, FakeEstimator(), [Mp4Sink(tmp_path / "o.mp4", source.fps, rate=source.rate)])
    with av.open(str(tmp_path / "o.mp4")) as c:
        stream = c.streams.video[0]
        assert (stream.codec_context.name, stream.codec_context.pix_fmt) == ("h264", "yuv420p")
    data = (tmp_path / "o.mp4").read_bytes()
    assert data.find(b"moov") < data.find(b"mdat"), "moov atom must precede mdat (faststart)"


class _RaisingAnnotator(PoseAnnotator):
    def __init__(self, at: int) -> None:
        super().__init__()
        self.at, self.n = at, 0

    def annotate(self, frame_bgr, poses):
        self.n += 1
        if self.n > self.at:
            raise RuntimeError("boom in draw")
        return super().annotate(frame_bgr, poses)


class _RaisingSink:
    def __init__(self, at: int) -> None:
        self.at, self.n, self.closed = at, 0, False

    def write(self, result) -> None:
        self.n += 1
        if self.n > self.at:
            raise OSError("disk full")

    def close(self) -> None:
        self.closed = True


@pytest.mark.parametrize("stage", STAGE_NAMES)
def test_stage_error_stops_everything(tmp_path, stage):
    k = 5
    source = PacedSource(40, fps=1000, live=False, fail_at=k if stage == "capture" else None)
    fake_stage = {"preprocess": "prepare", "inference": "infer", "decode": "decode"}.get(stage)
    estimator = FakeEstimator(fail={fake_stage: k} if fake_stage else None)
    mp4 = Mp4Sink(tmp_path / "o.mp4", 25)
    extra = _RaisingSink(k)
    sinks = [mp4, extra] if stage == "write" else [mp4]
    annotator = _RaisingAnnotator(k) if stage == "draw" else None
    with pytest.raises(PipelineError) as info:
        run_in_thread(lambda: run_pipeline(source, estimator, sinks, annotator=annotator), timeout=15)
    message = str(info.value)
    assert f"the {stage} stage failed" in message and "frame 5" in message
    assert source.closed
    # The frames that made it through before the failure are in a playable file (an mp4 with no frame
    # at all is removed rather than left unplayable).
    if stage != "write" and (tmp_path / "o.mp4").exists():
        frames, _ = read_video(tmp_path / "o.mp4")
        assert [read_index(f) for f in frames] == list(range(len(frames)))
        assert len(frames) <= k


def test_stop_event_leaves_valid_outputs(tmp_path, video20):
    stop = threading.Event()
    source = FileSource(video20)

    def on_frame(result):
        if result.frame.index == 6:
            stop.set()

    estimator = FakeEstimator(delays={"infer": 0.02})
    result = run_in_thread(
        lambda: run_pipeline(source, estimator, _sinks(tmp_path, source), stop_event=stop, on_frame=on_frame)
    )
    assert result.stopped == "stop event"
    assert 7 <= result.frames_written < N
    frames, _ = read_video(tmp_path / "out.mp4")
    assert [read_index(f) for f in frames] == list(range(result.frames_written))
    assert len(_jsonl(tmp_path / "out.jsonl")) == result.frames_written
    assert len(json.loads((tmp_path / "out.json").read_text())) == result.frames_written


def test_keyboard_interrupt_in_main_thread(tmp_path, video20):
    source = FileSource(video20)

    def on_frame(result):
        if result.frame.index == 4:
            _thread.interrupt_main()  # what Ctrl-C does: KeyboardInterrupt in the main thread

    estimator = FakeEstimator(delays={"infer": 0.02})
    result = run_pipeline(source, estimator, _sinks(tmp_path, source), on_frame=on_frame)
    assert result.stopped == "interrupted"
    frames, _ = read_video(tmp_path / "out.mp4")
    assert [read_index(f) for f in frames] == list(range(result.frames_written))
    assert [r["frame"] for r in _jsonl(tmp_path / "out.jsonl")] == list(range(result.frames_written))


def test_stuck_stage_does_not_hang_the_join(tmp_path):
    block = threading.Event()
    stop = threading.Event()
    stop.set()
    try:
        source = PacedSource(10, fps=1000, live=False)
        result = run_in_thread(
            lambda: run_pipeline(source, FakeEstimator(block=block), [], stop_event=stop, join_timeout_s=0.5),
            timeout=10,
        )
        assert result.stopped == "stop event"
        assert "inference" in result.threads_still_running
    finally:
        block.set()


def test_display_quit(tmp_path, video20):
    class FakeWindow:
        shown, closed = 0, False

        def show(self, image):
            self.shown += image is not None
            return self.shown < 3

        def close(self):
            self.closed = True

    window = FakeWindow()
    estimator = FakeEstimator(delays={"infer": 0.02})
    result = run_in_thread(lambda: run_pipeline(FileSource(video20), estimator, display=window))
    assert result.stopped == "quit" and window.closed and result.frames_written < N


def test_live_source_keeps_newest_and_counts_drops():
    # Source at 200 fps, inference at 40 fps: a lossless queue would let latency grow to ~2 s by the end.
    source = PacedSource(100, fps=200, live=True)
    result = run_in_thread(lambda: run_pipeline(source, FakeEstimator(delays={"infer": 0.025}), [], hud=True))
    assert result.frames_read == 100
    assert result.frames_dropped > 0
    assert result.frames_read == result.frames_processed + result.frames_dropped
    assert result.frames_written == result.frames_processed
    # Bounded latency: a handful of inference periods, not the backlog of the whole run (generous for a
    # loaded 2-core machine; the lossless equivalent would be about 2000 ms).
    assert result.latency.p95_ms < 600


def test_max_frames(tmp_path, video20):
    source = FileSource(video20)
    result = run_pipeline(source, FakeEstimator(), [JsonLinesSink(tmp_path / "o.jsonl")], max_frames=7)
    assert result.frames_written == 7 and result.stopped is None
    assert len(_jsonl(tmp_path / "o.jsonl")) == 7


def test_a_stage_without_an_inbox_is_named(monkeypatch):
    # StageSpec.inbox is optional (the capture stage has no queue in front of it); the runner sizes the
    # queue of every later stage from it, so a layout that forgets one must say which stage, not fail
    # with "'NoneType' object is not callable".
    import dataclasses

    from hhrnet_rt.video import runner

    layout = tuple(
        dataclasses.replace(spec, inbox=None) if spec.name == "decode" else spec for spec in runner.LAYOUT
    )
    monkeypatch.setattr(runner, "LAYOUT", layout)
    with pytest.raises(TypeError, match="stage 'decode' has no inbox"):
        run_pipeline(ArraySource([index_image(0)]), FakeEstimator(), [])


def test_undecodable_frames_are_counted_and_skipped(tmp_path):
    path = make_video_with_bad_packets(tmp_path / "bad.mkv", 12, {4, 7})
    source = FileSource(path)
    result = run_pipeline(source, FakeEstimator(), [Mp4Sink(tmp_path / "o.mp4", source.fps)])
    assert result.decode_failures == 2 and result.frames_written == 10
    frames, _ = read_video(tmp_path / "o.mp4")
    assert [read_index(f) for f in frames] == [0, 1, 2, 3, 5, 6, 8, 9, 10, 11]


def test_file_source_rejects_bad_inputs(tmp_path):
    import av

    with pytest.raises(InputError, match="not found"):
        FileSource(tmp_path / "missing.mp4")
    (tmp_path / "notes.mp4").write_text("this is not a video\n" * 10)
    with pytest.raises(InputError, match="not a video file"):
        FileSource(tmp_path / "notes.mp4")
    for name, codec, pix_fmt in (("empty.mp4", "libx264", "yuv420p"), ("empty.mkv", "mjpeg", "yuvj420p")):
        empty = tmp_path / name
        with av.open(str(empty), "w") as c:
            s = c.add_stream(codec, rate=25)
            s.width, s.height, s.pix_fmt = 64, 64, pix_fmt
            c.start_encoding()  # header only: a valid container with zero frames
        with pytest.raises(InputError, match="contains no video frames"):
            FileSource(empty)


def test_mp4_fallback_to_opencv(tmp_path):
    sink = Mp4Sink(tmp_path / "o.mp4", 10, codec="no-such-encoder")
    assert sink.encoder.startswith("mp4v") and "OpenCV" in sink.warning
    source = ArraySource([index_image(i) for i in range(6)], fps=10)
    run_pipeline(source, FakeEstimator(), [sink])
    frames, _ = read_video(tmp_path / "o.mp4")
    assert [read_index(f) for f in frames] == list(range(6))


def test_mp4_sink_refuses_a_subtitle_encoder(tmp_path):
    # PyAV adds a stream for any encoder the container takes; a subtitle stream has no frame size.
    sink = Mp4Sink(tmp_path / "o.mp4", 10, codec="mov_text")
    with pytest.raises(PipelineError, match="'mov_text' is not a video encoder"):
        run_pipeline(ArraySource([index_image(0)]), FakeEstimator(), [sink])
    assert not (tmp_path / "o.mp4").exists()  # created by the sink and empty: removed again


def test_odd_frame_size_is_padded(tmp_path):
    images = [np.ascontiguousarray(index_image(i, 161, 121)) for i in range(4)]
    run_pipeline(ArraySource(images), FakeEstimator(), [Mp4Sink(tmp_path / "o.mp4", 10)])
    frames, _ = read_video(tmp_path / "o.mp4")
    assert len(frames) == 4 and frames[0].shape == (122, 162, 3)


@pytest.mark.parametrize(
    ("name", "message"),
    [("o.avi", "unsupported extension"), ("missing_dir/o.mp4", "does not exist"), ("", "is a directory")],
)
def test_mp4_sink_rejects_bad_paths(tmp_path, name, message):
    with pytest.raises(InputError, match=message):
        Mp4Sink(tmp_path / name if name else tmp_path.with_suffix(".mp4"), 25) if name else _dir_mp4(tmp_path)


def _dir_mp4(tmp_path):
    target = tmp_path / "d.mp4"
    target.mkdir()
    return Mp4Sink(target, 25)


def test_sink_rejects_unwritable_dir(tmp_path):
    import os

    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o555)
    target = locked / "o.jsonl"
    if os.geteuid() == 0:  # root writes anywhere on a normal file system; /sys refuses even root
        target = __import__("pathlib").Path("/sys/hhrt-test.jsonl")
    try:
        with pytest.raises(InputError, match="cannot write"):
            JsonLinesSink(target)
    finally:
        locked.chmod(0o755)


def test_live_mp4_keeps_capture_timing(tmp_path):
    import av

    from hhrnet_rt.poses import Poses
    from hhrnet_rt.video import Frame, FrameResult

    sink = Mp4Sink(tmp_path / "o.mp4", 30, timestamps="capture")
    times = [0.5, 0.533, 0.7, 1.25]  # a camera that dropped frames: gaps stay gaps in the file
    for i, t in enumerate(times):
        image = index_image(i)
        sink.write(FrameResult(Frame(i, t, image, 0.0), Poses.empty(17), image, 0.0))
    sink.close()
    with av.open(str(tmp_path / "o.mp4")) as c:
        got = [f.time for f in c.decode(c.streams.video[0])]
    assert got == pytest.approx([t - times[0] for t in times], abs=1e-3)
