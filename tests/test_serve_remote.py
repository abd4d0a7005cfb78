"""The remote stages without Ray: a stand-in server (the real request handler behind the standard
library's HTTP server) that answers a few frames and then stays down, and the CLI's ``--server`` checks."""

from __future__ import annotations

import asyncio
import json
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import SimpleNamespace

import numpy as np
import pytest
from typer.testing import CliRunner
from video_helpers import make_video, read_video

from hhrnet_rt.cli import app
from hhrnet_rt.core.errors import PipelineError
from hhrnet_rt.poses import Poses
from hhrnet_rt.serve import PoseClient, RemoteEstimator, ServerUnavailable
from hhrnet_rt.serve.handler import RequestHandler, ServeSettings
from hhrnet_rt.video.records import frames_of


class StandInServer:
    """``hhrt serve``'s handler on 127.0.0.1 with a fake model (one person per frame, at x = frame width
    / 2); after ``answers`` poses it answers 503 to everything, like a server with no live replica."""

    def __init__(self, answers: int, token: str | None = None) -> None:
        self.left = answers
        self.lock = threading.Lock()

        async def predict(image):
            kp = np.zeros((1, 17, 3), np.float32)
            kp[0, :, 0], kp[0, :, 2] = image.shape[1] / 2, 0.05
            return Poses(keypoints=kp, scores=np.array([0.5], np.float32))

        handler = RequestHandler(ServeSettings(token=token), predict, {"model": {"backend": "stand-in"}})
        outer = self

        class Http(BaseHTTPRequestHandler):
            def _any(self) -> None:
                if self.path == "/v1/poses":
                    with outer.lock:
                        outer.left -= 1
                        down = outer.left < 0
                    if down:
                        self._send(503, b'{"error": "no replica is available"}', {})
                        return
                length = int(self.headers.get("Content-Length") or 0)
                data = self.rfile.read(length)

                async def body():
                    yield data

                headers = {k.lower(): v for k, v in self.headers.items()}
                answer = asyncio.run(handler.answer(self.command, self.path, headers, body))
                self._send(answer.status, answer.body, answer.headers or {})

            def _send(self, status, body, headers) -> None:
                self.send_response(status)
                for key, value in {"Content-Type": "application/json", **headers}.items():
                    self.send_header(key, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            do_GET = do_POST = _any

            def log_message(self, *args) -> None:  # keep the test output clean
                pass

        self.http = ThreadingHTTPServer(("127.0.0.1", 0), Http)
        self.url = f"http://127.0.0.1:{self.http.server_address[1]}"
        self.thread = threading.Thread(target=self.http.serve_forever, daemon=True)

    def __enter__(self) -> StandInServer:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.http.shutdown()
        self.http.server_close()


def test_remote_stages_keep_order_and_answers(tmp_path):
    from hhrnet_rt.video import FileSource, JsonLinesSink, run_pipeline

    clip = make_video(tmp_path / "clip.mp4", 8, width=160, height=120)
    with StandInServer(answers=100) as server:
        remote = RemoteEstimator(PoseClient(server.url, image_format="png"), max_in_flight=3)
        result = run_pipeline(FileSource(clip), remote, [JsonLinesSink(tmp_path / "o.jsonl")])
    assert result.frames_written == 8
    records = frames_of(json.loads(line) for line in (tmp_path / "o.jsonl").read_text().splitlines())
    assert [r["frame"] for r in records] == list(range(8))
    assert all(r["people"][0]["keypoints"][0][0] == 80.0 for r in records)  # the server's answer, per frame


def test_a_server_that_stays_down_ends_the_run_with_playable_outputs(tmp_path):
    from hhrnet_rt.video import FileSource, JsonLinesSink, Mp4Sink, run_pipeline

    clip = make_video(tmp_path / "clip.mp4", 12, width=160, height=120)
    with StandInServer(answers=5) as server:
        # One request at a time: with two in flight their arrival order at the server is the threads'
        # race, and the five answers could go to frames 0-3 and 5 (CI once wrote frames 0-3 only).
        remote = RemoteEstimator(PoseClient(server.url, image_format="png", retry_s=0.5), max_in_flight=1)
        source = FileSource(clip)
        sinks = [
            Mp4Sink(tmp_path / "o.mp4", source.fps, rate=source.rate),
            JsonLinesSink(tmp_path / "o.jsonl"),
        ]
        with pytest.raises(PipelineError) as caught:
            run_pipeline(source, remote, sinks, join_timeout_s=30)
    message = str(caught.value)
    assert server.url in message and "did not answer" in message and "503" in message
    records = frames_of(json.loads(line) for line in (tmp_path / "o.jsonl").read_text().splitlines())
    assert [r["frame"] for r in records] == list(range(5))  # every answered frame, in order, nothing after
    frames, _ = read_video(tmp_path / "o.mp4")  # closed and playable
    assert len(frames) == 5


def test_rejected_requests_are_not_retried(tmp_path):
    with StandInServer(answers=100) as server:
        client = PoseClient(server.url, token=None, retry_s=30)
        with pytest.raises(Exception) as caught:
            client._request("GET", "/v1/nothing")
    assert getattr(caught.value, "status", None) == 404 and client.retries == 0


def test_unreachable_server_fails_after_the_retry_budget():
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    client = PoseClient(f"http://127.0.0.1:{port}", retry_s=0.3)
    with pytest.raises(ServerUnavailable, match=f"127.0.0.1:{port}.*did not answer"):
        client.predict(np.zeros((32, 32, 3), np.uint8))
    assert client.retries >= 1


def _hhrt(*args: str) -> SimpleNamespace:
    """``hhrt ARGS`` in this process (Typer's runner; a fresh interpreter would add seconds of imports and
    test nothing more here): its exit code and stderr, named as ``subprocess.run`` names them."""
    result = CliRunner().invoke(app, list(args))
    return SimpleNamespace(returncode=result.exit_code, stderr=result.stderr)


def test_cli_server_refuses_model_options(tmp_path):
    clip = make_video(tmp_path / "clip.mp4", 2)
    run = _hhrt("video", str(clip), "--server", "http://127.0.0.1:9", "--weights", "random", "--out",
                str(tmp_path / "o.mp4"))  # fmt: skip
    assert run.returncode == 2
    assert "--weights: with --server the server's model is used" in run.stderr
    assert not (tmp_path / "o.mp4").exists()


def test_cli_server_not_answering_is_one_line_naming_it(tmp_path):
    clip = make_video(tmp_path / "clip.mp4", 2)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{s.getsockname()[1]}"
    run = _hhrt("video", str(clip), "--server", url, "--out", str(tmp_path / "o.mp4"))
    assert run.returncode == 4, run.stderr
    assert url in run.stderr and "did not answer" in run.stderr and "Traceback" not in run.stderr
    assert not (tmp_path / "o.mp4").exists()


def test_cli_serve_checks_its_replica_options():
    run = _hhrt("serve", "--min-replicas", "1")
    assert run.returncode == 2
    assert "both --min-replicas and --max-replicas" in run.stderr


def test_cli_serve_finds_a_missing_weights_file_before_starting_ray(tmp_path):
    run = _hhrt("serve", "--weights", str(tmp_path / "missing.pth"))
    assert run.returncode == 3
    assert "missing.pth does not exist" in run.stderr and "Traceback" not in run.stderr


def test_cli_webcam_and_video_with_server_and_token(tmp_path, monkeypatch):
    clip = make_video(tmp_path / "live.mp4", 12, fps=60, width=160, height=120)
    with StandInServer(answers=100, token="t0k") as server:
        monkeypatch.setenv("HHRT_TOKEN", "t0k")
        live = CliRunner().invoke(app, ["webcam", "--camera", str(clip), "--no-show", "--json",
                                        str(tmp_path / "live.jsonl"), "--server", server.url])  # fmt: skip
        assert live.exit_code == 0, live.output
        records = frames_of(json.loads(line) for line in (tmp_path / "live.jsonl").read_text().splitlines())
        assert 1 <= len(records) <= 12 and all(r["people"][0]["keypoints"][0][0] == 80.0 for r in records)

        whole = CliRunner().invoke(app, ["video", str(clip), "--json", str(tmp_path / "all.jsonl"), "--out",
                                         str(tmp_path / "all.mp4"), "--server", server.url, "--in-flight", "3"])  # fmt: skip
        assert whole.exit_code == 0, whole.output
        records = frames_of(json.loads(line) for line in (tmp_path / "all.jsonl").read_text().splitlines())
        assert [r["frame"] for r in records] == list(range(12))  # a file: every frame, in order

        monkeypatch.setenv("HHRT_TOKEN", "wrong")
        refused = CliRunner().invoke(app, ["video", str(clip), "--out", str(tmp_path / "x.mp4"), "--server",
                                           server.url])  # fmt: skip
    assert refused.exit_code == 2
    assert "refused the request (401)" in refused.output and "wrong token" in refused.output
    assert not (tmp_path / "x.mp4").exists()
