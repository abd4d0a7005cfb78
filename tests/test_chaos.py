"""Streams that never die, against real servers on 127.0.0.1: FFmpeg serving live MPEG-TS over HTTP,
killed and restarted (at another size), frozen without closing, and one that never comes back, while a
file stream runs beside them (issue 20). Rates and latencies are ``benchmarks/bench_chaos.py``'s."""

from __future__ import annotations

import json
import threading
import time
import urllib.error
import urllib.request

import numpy as np
import pytest
from video_helpers import FakeEstimator, make_video, run_in_thread

from hhrnet_rt.bench.stream_server import StreamServer, ffmpeg_problem, read_number
from hhrnet_rt.video import FileSource, JsonLinesSink, Stream, run_streams
from hhrnet_rt.video.live import LiveSource
from hhrnet_rt.video.reconnect import ReconnectPolicy

pytestmark = [
    pytest.mark.skipif(ffmpeg_problem() is not None, reason=str(ffmpeg_problem())),
    pytest.mark.slow,
]

FRAMES = 120  # per live stream: about 5 s of pictures at 25 fps, plus its outage


class NumberReader(FakeEstimator):
    """The fake estimator, for the servers' numbered pictures (their own band layout)."""

    def prepare(self, image):
        self._step("prepare")
        return {"index": read_number(image), "shape": image.shape}


def _script(servers: dict[str, StreamServer], t0: float) -> None:
    """The outages, in seconds after the run starts."""

    def at(t: float) -> None:
        time.sleep(max(0.0, t0 + t - time.monotonic()))

    at(1.5)
    servers["restarted"].kill()
    servers["stalled"].stall()
    servers["gone"].kill()  # for good
    at(3.5)
    servers["restarted"].start(size=(192, 48))  # the camera comes back at another size
    at(4.0)
    servers["stalled"].start()  # the frozen server is replaced


def _records(path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_live_streams_survive_outages_and_a_dead_one_fails_alone(tmp_path):
    servers = {name: StreamServer() for name in ("restarted", "stalled", "gone")}
    for server in servers.values():
        server.start()
    forever = ReconnectPolicy(stall_timeout_s=1.0)
    policies = {"restarted": forever, "stalled": forever, "gone": ReconnectPolicy(max_attempts=3, jitter=0.0)}
    seen: dict[str, list[tuple[int, float, int]]] = {name: [] for name in (*servers, "file")}

    def watch(name):
        return lambda r: seen[name].append((read_number(r.image), r.frame.timestamp, r.image.shape[1]))

    streams = []
    for name, server in servers.items():
        url = server.url.replace("http://", "http://cam:s3cret@")  # credentials must never show
        source = LiveSource(url, policy=policies[name], lossless=True)
        streams.append(
            Stream(
                source,
                [JsonLinesSink(tmp_path / f"{name}.jsonl", source=source)],
                name=name,
                on_frame=watch(name),
            )
        )
    clip = make_video(tmp_path / "clip.mp4", 30, width=160, height=48)
    streams.append(Stream(FileSource(clip), [JsonLinesSink(tmp_path / "file.jsonl")], name="file"))
    script = threading.Thread(target=_script, args=(servers, time.monotonic()), daemon=True)
    script.start()
    try:
        result = run_in_thread(lambda: run_streams(streams, NumberReader(), max_frames=FRAMES), timeout=45)
    finally:
        for server in servers.values():
            server.kill()
    by_name = {s.name: s for s in result.streams}

    # the process survived; the dead stream failed alone, the others finished
    assert {n: s.state for n, s in by_name.items()} == {
        "restarted": "done", "stalled": "done", "gone": "failed", "file": "done"
    }  # fmt: skip
    assert "did not come back after 3 attempts" in by_name["gone"].error
    assert [s.frames_written for n, s in by_name.items() if n != "gone"] == [FRAMES, FRAMES, 30]
    assert by_name["restarted"].reconnects >= 1 and by_name["stalled"].reconnects >= 1
    assert "stalled" in by_name["stalled"].outages[0].reason

    for name in servers:
        numbers = [n for n, _, _ in seen[name]]
        assert np.all(np.diff(numbers) > 0), f"{name}: a camera frame twice or out of order"
        header, *rest = _records(tmp_path / f"{name}.jsonl")
        assert header["type"] == "header" and header["live"] and header["source"] == "live.ts"
        frames = [r for r in rest if r["type"] == "frame"]
        outages = [r for r in rest if r["type"] == "outage"]
        stamps = [r["timestamp"] for r in frames]
        assert [r["frame"] for r in frames] == list(range(len(frames))) and np.all(np.diff(stamps) > 0)
        assert outages, f"{name}: no outage recorded"
        for outage in outages:  # frames before it and after it, none inside
            end = outage["end"] if outage["end"] is not None else float("inf")
            assert not any(outage["start"] < t < end for t in stamps)
            position = rest.index(outage)
            assert all(r["timestamp"] <= outage["start"] for r in rest[:position] if r["type"] == "frame")
        text = (tmp_path / f"{name}.jsonl").read_text() + str(by_name[name])
        assert "s3cret" not in text and "cam:" not in text

    widths = {w for _, _, w in seen["restarted"]}
    assert widths == {160, 192}, "the stream goes on at its new size after reconnecting"
    gone = [r for r in _records(tmp_path / "gone.jsonl") if r["type"] == "outage"]
    assert gone[-1]["end"] is None  # it never came back


def test_a_stream_that_is_not_up_yet_is_retried_and_no_reconnect_ends_at_the_first_loss():
    with StreamServer() as server:
        late = LiveSource(server.url, policy=ReconnectPolicy(jitter=0.0))  # nothing listens yet
        assert "retrying in the background" in late.warning
        threading.Timer(0.3, server.start).start()
        first = late.read()  # comes once the server is up (tries at 0.5 s, 1.5 s ...)
        assert first is not None and first.index == 0 and late.outages[0].end == first.timestamp > 0
        late.close()
    with StreamServer() as server:
        server.start()
        once = LiveSource(server.url, policy=ReconnectPolicy(enabled=False))
        assert once.read() is not None
        server.kill()
        t0 = time.monotonic()
        while once.read() is not None:  # what FFmpeg had buffered, then the end
            assert time.monotonic() - t0 < 10
        assert once.state == "ended" and not once.outages
        once.close()


def test_cli_video_of_live_urls_exit_9_and_metrics_while_it_runs(tmp_path, tiny):
    from typer.testing import CliRunner

    from hhrnet_rt.bench.stream_server import free_port
    from hhrnet_rt.cli import app
    from hhrnet_rt.cli.app import EXIT_SOME_FAILED

    port, scrapes = free_port(), []

    def scrape() -> None:  # what a Prometheus server would see during the run
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2) as answer:
                    text = answer.read().decode()
            except OSError:
                time.sleep(0.05)
                continue
            if 'hhrt_frames_written_total{stream="live.ts"}' in text and "hhrt_frames_written_total{" in text:
                ready = urllib.request.Request(f"http://127.0.0.1:{port}/readyz")
                try:
                    urllib.request.urlopen(ready, timeout=2)
                    scrapes.append((text, 200))
                except urllib.error.HTTPError as exc:
                    scrapes.append((text, exc.code, exc.read().decode()))
                return
            time.sleep(0.05)

    with StreamServer() as server:
        server.start()
        gone = f"rtsp://user:pw@127.0.0.1:{free_port()}/nothing"  # nothing listens there
        poller = threading.Thread(target=scrape, daemon=True)
        poller.start()
        result = CliRunner().invoke(app, ["video", server.url, gone, "--json", str(tmp_path), "--reconnect", "2",
                                          "--max-frames", "12", "--metrics-port", str(port), *tiny])  # fmt: skip
        poller.join(timeout=10)
    assert result.exit_code == EXIT_SOME_FAILED, result.output
    assert (
        "1 of 2 inputs failed (nothing:" in result.output
        and "did not come back after 2 attempts" in result.output
    )
    assert "pw" not in result.output and "user:" not in result.output
    assert len([r for r in _records(tmp_path / "live.jsonl") if r["type"] == "frame"]) == 12
    text, *ready = scrapes[0]
    assert 'hhrt_latency_seconds_bucket{le="+Inf",stream="live.ts"}' in text and "hhrt_stage_seconds" in text
    assert "# TYPE hhrt_reconnects_total counter" in text and "pw@" not in text
    assert ready[0] in (200, 503)  # the dead stream makes it 503 once it has failed
