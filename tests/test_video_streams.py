"""Several streams in one run (issue 11): order and completeness per stream, batching, errors, live drops.

Mechanics use the fake estimator of video_helpers (pictures carry their own index, poses carry it too);
the last test runs the golden tiny model to show that batching does not change the poses.
"""

from __future__ import annotations

import json
import threading
import time

import numpy as np
import pytest
from video_helpers import (
    FakeEstimator,
    PacedSource,
    make_video,
    read_index,
    read_video,
    run_in_thread,
)

from hhrnet_rt.core.errors import PipelineError
from hhrnet_rt.video import FileSource, JsonLinesSink, Mp4Sink, Stream, run_pipeline, run_streams
from hhrnet_rt.video.batching import StreamInbox
from hhrnet_rt.video.meters import QueueWait
from hhrnet_rt.video.records import frames_of

LENGTHS = (13, 20, 7)  # different lengths: streams end at different times
WIDTHS = (160, 192, 224)  # each stream's own frame width tells its frames apart from the others'


class BatchingFake(FakeEstimator):
    """The fake with an ``infer_batch`` that records every call's size (one call per batch)."""

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.batch_sizes: list[int] = []
        self._lock = threading.Lock()

    def infer_batch(self, prepared):
        with self._lock:
            self.batch_sizes.append(len(prepared))
        return [self.infer(p) for p in prepared]


@pytest.fixture(scope="module")
def clips(tmp_path_factory):
    folder = tmp_path_factory.mktemp("streams")
    return [
        make_video(folder / f"in{k}.mp4", n, width=w)
        for k, (n, w) in enumerate(zip(LENGTHS, WIDTHS, strict=True))
    ]


def _streams(tmp_path, clips):
    streams = []
    for k, clip in enumerate(clips):
        source = FileSource(clip)
        sinks = [
            Mp4Sink(tmp_path / f"o{k}.mp4", source.fps, rate=source.rate),
            JsonLinesSink(tmp_path / f"o{k}.jsonl"),
        ]
        streams.append(Stream(source, sinks))
    return streams


def _jsonl(path):
    return frames_of(json.loads(line) for line in path.read_text().splitlines())  # frame records


@pytest.mark.parametrize("threaded", [True, False])
@pytest.mark.parametrize("batch", [1, 4])
def test_every_stream_gets_all_its_frames_in_order(tmp_path, clips, threaded, batch):
    estimator = BatchingFake()
    result = run_in_thread(
        lambda: run_streams(
            _streams(tmp_path, clips), estimator, batch=batch, max_wait_ms=20, threaded=threaded
        )
    )
    assert result.stopped is None and result.threads_still_running == ()
    assert [s.frames_written for s in result.streams] == list(LENGTHS)
    assert result.frames_written == sum(LENGTHS) and result.frames_dropped == 0
    for k, (n, width) in enumerate(zip(LENGTHS, WIDTHS, strict=True)):
        frames, _ = read_video(tmp_path / f"o{k}.mp4")
        assert [f.shape[1] for f in frames] == [width] * n  # no frame of another stream got in
        assert [read_index(f) for f in frames] == list(range(n))
        records = _jsonl(tmp_path / f"o{k}.jsonl")
        assert [r["frame"] for r in records] == list(range(n))
        # the fake writes the picture's own index into x: the poses stayed with their frame
        assert [r["people"][0]["keypoints"][0][0] for r in records] == list(range(n))
    # ONE inference call per batch, never more frames than asked for, and every frame in some call (a
    # batch of one frame goes through the per-frame ``infer``, as before batching existed)
    singles = estimator.calls["infer"] - sum(estimator.batch_sizes)
    calls = estimator.batch_sizes + [1] * singles
    assert sum(calls) == sum(LENGTHS) and max(calls) <= batch
    assert result.inference_calls == len(calls)
    if not threaded and batch > 1:  # the reference loop always fills a batch while frames remain
        assert max(calls) == batch
    assert result.fps > 0 and all(s.fps > 0 for s in result.streams)


def test_one_file_batches_consecutive_frames(tmp_path, clips):
    estimator = BatchingFake(delays={"decode": 0.01})  # decode slower than capture: inboxes fill up
    source = FileSource(clips[1])
    sink = JsonLinesSink(tmp_path / "o.jsonl")
    result = run_in_thread(lambda: run_pipeline(source, estimator, [sink], batch=8, max_wait_ms=500))
    assert result.frames_written == LENGTHS[1]
    assert [r["frame"] for r in _jsonl(tmp_path / "o.jsonl")] == list(range(LENGTHS[1]))
    # With a 500 ms allowance and a file that is already there, every batch but the last one is full.
    assert estimator.batch_sizes[:-1] == [8] * (len(estimator.batch_sizes) - 1)
    assert sum(estimator.batch_sizes) == LENGTHS[1]


def test_fail_fast_a_failing_stream_stops_all_with_playable_outputs(tmp_path, clips):
    good = FileSource(clips[1])
    bad = PacedSource(40, fps=1000, live=False, fail_at=5)
    good_mp4 = Mp4Sink(tmp_path / "good.mp4", good.fps, rate=good.rate)
    bad_mp4 = Mp4Sink(tmp_path / "bad.mp4", 25)
    estimator = FakeEstimator(delays={"infer": 0.01})
    streams = [Stream(good, [good_mp4], name="good"), Stream(bad, [bad_mp4], name="bad")]
    with pytest.raises(PipelineError) as info:
        run_in_thread(lambda: run_streams(streams, estimator, batch=2, fail_fast=True), timeout=15)
    message = str(info.value)
    assert "the capture stage failed on frame 5 of bad" in message
    assert bad.closed
    # Both sinks closed: whole, playable files with their frames in order (an mp4 that got no frame at
    # all is removed rather than left unplayable).
    counts = {}
    for name in ("good.mp4", "bad.mp4"):
        frames = read_video(tmp_path / name)[0] if (tmp_path / name).exists() else []
        assert [read_index(f) for f in frames] == list(range(len(frames)))
        counts[name] = len(frames)
    assert counts["bad.mp4"] <= 5 and counts["good.mp4"] < LENGTHS[1]


@pytest.mark.parametrize("threaded", [True, False])
def test_a_failing_stream_ends_alone_after_writing_its_frames_before_the_failure(tmp_path, clips, threaded):
    # "bad" dies at its 6th frame; "good" must be untouched: every frame, in order; "bad" keeps frames 0-4.
    good = FileSource(clips[1])
    bad = PacedSource(40, fps=1000, live=False, fail_at=5)
    sinks = {name: [Mp4Sink(tmp_path / f"{name}.mp4", 25), JsonLinesSink(tmp_path / f"{name}.jsonl")]
             for name in ("good", "bad")}  # fmt: skip
    streams = [Stream(good, sinks["good"], name="good"), Stream(bad, sinks["bad"], name="bad")]
    estimator = FakeEstimator(delays={"decode": 0.01})  # frames of bad are still in flight when it fails
    result = run_in_thread(lambda: run_streams(streams, estimator, batch=2, threaded=threaded), timeout=15)
    by_name = {s.name: s for s in result.streams}
    assert by_name["good"].state == "done" and by_name["good"].error is None
    assert by_name["bad"].state == "failed" and "capture stage failed on frame 5" in by_name["bad"].error
    assert [s.name for s in result.failed] == ["bad"] and bad.closed
    for name, n in (("good", LENGTHS[1]), ("bad", 5)):
        assert [read_index(f) for f in read_video(tmp_path / f"{name}.mp4")[0]] == list(range(n))
        assert [r["frame"] for r in _jsonl(tmp_path / f"{name}.jsonl")] == list(range(n))


def test_a_frame_that_fails_in_decode_ends_its_stream_only(tmp_path, clips):
    class FailsOnWide(FakeEstimator):  # the 224-pixel clip's 4th frame cannot be decoded
        def decode(self, maps, prepared):
            if prepared["shape"][1] == WIDTHS[2] and prepared["index"] == 3:
                raise ValueError("broken maps")
            return super().decode(maps, prepared)

    streams = _streams(tmp_path, clips)
    result = run_in_thread(lambda: run_streams(streams, FailsOnWide(), batch=4), timeout=15)
    assert [s.state for s in result.streams] == ["done", "done", "failed"]
    assert "decode stage failed on frame 3" in result.streams[2].error
    assert [s.frames_written for s in result.streams] == [LENGTHS[0], LENGTHS[1], 3]
    for k, n in enumerate((LENGTHS[0], LENGTHS[1], 3)):
        assert [r["frame"] for r in _jsonl(tmp_path / f"o{k}.jsonl")] == list(range(n))
        assert [read_index(f) for f in read_video(tmp_path / f"o{k}.mp4")[0]] == list(range(n))


def test_when_every_stream_fails_the_run_raises_with_its_result(tmp_path):
    sources = [PacedSource(10, fps=1000, live=False, fail_at=k) for k in (2, 4)]
    streams = [Stream(src, name=f"s{k}") for k, src in enumerate(sources)]
    with pytest.raises(PipelineError) as info:
        run_in_thread(lambda: run_streams(streams, FakeEstimator()), timeout=15)
    assert "every stream failed" in str(info.value) and "s0:" in str(info.value) and "s1:" in str(info.value)
    assert [s.frames_written for s in info.value.result.streams] == [2, 4]


def test_stop_event_stops_every_stream(tmp_path, clips):
    stop = threading.Event()
    streams = _streams(tmp_path, clips[:2])
    streams[0].on_frame = lambda r: stop.set() if r.frame.index == 3 else None
    result = run_in_thread(
        lambda: run_streams(streams, FakeEstimator(delays={"infer": 0.02}), stop_event=stop, batch=2)
    )
    assert result.stopped == "stop event"
    assert result.streams[1].frames_written < LENGTHS[1]
    for k in range(2):
        frames, _ = read_video(tmp_path / f"o{k}.mp4")
        assert [read_index(f) for f in frames] == list(range(result.streams[k].frames_written))


def test_ctrl_c_stops_every_stream_with_playable_outputs(tmp_path, clips):
    import _thread

    streams = _streams(tmp_path, clips[:2])
    # what Ctrl-C does: KeyboardInterrupt in the main thread, here while stream 0 writes its frame 3
    streams[0].on_frame = lambda r: _thread.interrupt_main() if r.frame.index == 3 else None
    result = run_streams(streams, FakeEstimator(delays={"infer": 0.02}), batch=2)
    assert result.stopped == "interrupted"
    assert result.streams[1].frames_written < LENGTHS[1]
    for k in range(2):
        frames, _ = read_video(tmp_path / f"o{k}.mp4")
        assert [read_index(f) for f in frames] == list(range(result.streams[k].frames_written))
        assert [r["frame"] for r in _jsonl(tmp_path / f"o{k}.jsonl")] == list(range(len(frames)))


def test_live_streams_keep_the_newest_and_count_drops_per_stream():
    # Two cameras at 200 and 100 fps, inference at about 40 calls per second: both must drop, each
    # counts its own, and what was read is what went through plus what was dropped, per stream.
    fast, slow = PacedSource(100, fps=200, live=True), PacedSource(50, fps=100, live=True)
    streams = [Stream(fast, name="fast"), Stream(slow, name="slow")]
    estimator = BatchingFake(delays={"infer": 0.025})
    result = run_in_thread(lambda: run_streams(streams, estimator, batch=2, max_wait_ms=5, hud=True))
    by_name = {s.name: s for s in result.streams}
    assert by_name["fast"].frames_read == 100 and by_name["slow"].frames_read == 50
    for s in result.streams:
        assert s.frames_dropped > 0, s
        assert s.frames_read == s.frames_processed + s.frames_dropped
        assert s.frames_written == s.frames_processed
    assert result.frames_dropped == sum(s.frames_dropped for s in result.streams)


def test_inbox_takes_round_robin_and_waits_at_most_max_wait():
    stop = threading.Event()
    inbox = StreamInbox([4, 4], stop, QueueWait())
    for k in range(3):
        inbox.put(0, ("a", k))
    inbox.put(1, ("b", 0))
    assert inbox.take(3, 0.0) == [(0, ("a", 0)), (1, ("b", 0)), (0, ("a", 1))]
    # one frame left and the batch wants 4: it comes back after the wait, not never
    assert inbox.take(4, 0.05) == [(0, ("a", 2))]
    inbox.end(0)
    inbox.end(1)
    assert inbox.take(4, 1.0) == []  # every stream ended: the end, at once
    live = StreamInbox([1], stop, QueueWait())
    assert [live.put_latest(0, k) for k in range(3)] == [0, 1, 1]
    assert live.take(1, 0.0) == [(0, 2)]  # the newest frame
    stop.set()
    assert live.take(1, 0.0) is None


def test_post_decode_sees_each_streams_frames_in_order_and_its_result_is_written(tmp_path, clips):
    seen: dict[int, list[int]] = {0: [], 1: []}

    def hook_for(k):
        def post_decode(poses, frame):  # what a per-stream tracker does: look, and change what is written
            seen[k].append(frame.index)
            poses.scores[:] = 0.25 + k / 10
            return poses

        return post_decode

    streams = [
        Stream(FileSource(c), [JsonLinesSink(tmp_path / f"{k}.jsonl")], post_decode=hook_for(k))
        for k, c in enumerate(clips[:2])
    ]
    result = run_in_thread(lambda: run_streams(streams, FakeEstimator(), batch=3))
    assert seen == {0: list(range(LENGTHS[0])), 1: list(range(LENGTHS[1]))}
    for k in range(2):
        assert {p["score"] for r in _jsonl(tmp_path / f"{k}.jsonl") for p in r["people"]} == {0.25 + k / 10}
    assert result.stages["decode"].count == LENGTHS[0] + LENGTHS[1]  # the hook is part of decode's time
    one = []
    run_pipeline(FileSource(clips[2]), FakeEstimator(), post_decode=lambda p, f: one.append(f.index) or p)
    assert one == list(range(LENGTHS[2]))


class UnevenDecode(BatchingFake):
    """Decode takes longer for some frames, so with several decode threads later frames finish first."""

    def decode(self, maps, prepared):
        time.sleep(0.002 * (3 - prepared["index"] % 4))
        return super().decode(maps, prepared)


@pytest.mark.parametrize("threaded", [True, False])
def test_decode_threads_keep_each_streams_order(tmp_path, clips, threaded):
    seen: dict[int, list[int]] = {0: [], 1: []}
    streams = [
        Stream(FileSource(c), [JsonLinesSink(tmp_path / f"{k}.jsonl")],
               post_decode=lambda p, f, k=k: seen[k].append(f.index) or p)
        for k, c in enumerate(clips[:2])
    ]  # fmt: skip
    result = run_in_thread(
        lambda: run_streams(streams, UnevenDecode(), batch=6, decode_threads=3, threaded=threaded)
    )
    assert seen == {0: list(range(LENGTHS[0])), 1: list(range(LENGTHS[1]))}
    for k in range(2):
        records = _jsonl(tmp_path / f"{k}.jsonl")
        assert [r["frame"] for r in records] == list(range(LENGTHS[k]))
        assert [r["people"][0]["keypoints"][0][0] for r in records] == list(range(LENGTHS[k]))
    assert result.stages["decode"].count == LENGTHS[0] + LENGTHS[1]


def test_a_decode_failure_in_a_decode_thread_ends_that_stream_only(tmp_path, clips):
    streams = [Stream(FileSource(c), [Mp4Sink(tmp_path / f"{k}.mp4", 25)]) for k, c in enumerate(clips[:2])]
    estimator = UnevenDecode(fail={"decode": 9})  # the 10th grouping, in whichever pool thread and stream
    result = run_in_thread(lambda: run_streams(streams, estimator, batch=4, decode_threads=3), timeout=15)
    (failed,) = result.failed
    assert "the decode stage failed" in failed.error
    other = next(s for s in result.streams if s is not failed)
    assert other.state == "done" and other.frames_written == LENGTHS[result.streams.index(other)]
    for k in range(2):  # closed and playable, in order, from the first frame on
        path = tmp_path / f"{k}.mp4"
        frames = read_video(path)[0] if path.exists() else []
        assert [read_index(f) for f in frames] == list(range(result.streams[k].frames_written))


def test_tiled_window_puts_each_stream_in_its_own_cell():
    from hhrnet_rt.video.display import tile

    a = np.full((120, 160, 3), 50, np.uint8)
    b = np.full((60, 80, 3), 200, np.uint8)  # another size: shrunk or grown to the first one's cell
    grid = tile([a, None, b])  # three streams: a 2x2 grid, the second has no picture yet
    assert grid.shape == (240, 320, 3)
    assert (grid[:120, :160] == 50).all() and (grid[:120, 160:] == 0).all()
    assert (grid[120:, :160] == 200).all() and (grid[120:, 160:] == 0).all()


@pytest.mark.slow
def test_batch_gives_the_same_poses_as_one_frame_per_call(tmp_path, golden_dir, clips):
    """Two streams through the golden tiny model, batch 1 against batch 4.

    Exact equality of the written records: the batch path runs the same preprocessing and decode on the
    same pixels; batched torch CPU convolutions may differ from batch-1 ones by float rounding, which the
    JSON's rounding (0.01 px, 1e-4 score) absorbs unless a value sits on a rounding boundary, so the
    comparison allows one unit of the last written digit.
    """
    from hhrnet_rt.runtime.estimator import PoseEstimator

    estimator = PoseEstimator(golden_dir / "tiny_model.npz", input_size=64, backend="torch", device="cpu")
    written = {}
    for batch in (1, 4):
        folder = tmp_path / f"b{batch}"
        folder.mkdir()
        streams = [
            Stream(FileSource(c), [JsonLinesSink(folder / f"{k}.jsonl")]) for k, c in enumerate(clips[:2])
        ]
        run_in_thread(lambda s=streams, b=batch: run_streams(s, estimator, batch=b, draw=False), timeout=300)
        written[batch] = [_jsonl(folder / f"{k}.jsonl") for k in range(2)]
    people = 0
    for one, four in zip(written[1], written[4], strict=True):
        assert [r["frame"] for r in one] == [r["frame"] for r in four]
        for a, b in zip(one, four, strict=True):
            assert len(a["people"]) == len(b["people"])
            people += len(a["people"])
            for pa, pb in zip(a["people"], b["people"], strict=True):
                np.testing.assert_allclose(pa["keypoints"], pb["keypoints"], rtol=0, atol=0.01 + 1e-9)
                assert pa["score"] == pytest.approx(pb["score"], abs=1e-4 + 1e-9)
    assert people > 0, "the tiny model found nobody: nothing was compared"
