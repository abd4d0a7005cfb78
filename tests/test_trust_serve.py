"""Serving, round two (issue 19), without Ray: what ``/v1/info`` shows, the token rules the client and the
command share, and answers a client must not trust.

Each test failed on the code before the issue's fixes (the issue's item number is in its docstring).
"""

from __future__ import annotations

import asyncio
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np
import pytest
from typer.testing import CliRunner

from hhrnet_rt.cli import app
from hhrnet_rt.cli.app import EXIT_INPUT
from hhrnet_rt.core.access import TOKEN_ENV
from hhrnet_rt.core.errors import InputError
from hhrnet_rt.serve import PoseClient, ServerUnavailable
from hhrnet_rt.serve.handler import RequestHandler, ServeSettings

runner = CliRunner()


def _get(handler, path, headers=None):
    async def body():
        yield b""

    answer = asyncio.run(handler.answer("GET", path, headers or {}, body))
    return answer.status, json.loads(answer.body)


# -- item 5: the info, the token, the bind ------------------------------------------------------------------


def test_info_names_model_files_without_the_servers_folders():
    """Item 5: ``/v1/info`` answered absolute server paths (user names, folder layout) to anyone."""

    async def predict(image):
        raise AssertionError

    facts = {"weights": "/home/alice/secret-project/w32_512.pth",
             "engine": "built into /srv/models/v2/w32.engine (settings from /srv/models/v2/w32.json)"}  # fmt: skip
    live = {"calls": 0}
    handler = RequestHandler(ServeSettings(), predict, {"model": facts, "batches": live})
    status, info = _get(handler, "/v1/info")
    assert status == 200
    text = json.dumps(info)
    assert "/home/alice" not in text and "/srv/models" not in text, text
    assert info["model"]["weights"] == "w32_512.pth"
    assert info["model"]["engine"] == "built into w32.engine (settings from w32.json)"
    live["calls"] = 3  # the deployment's live counts still show
    assert _get(handler, "/v1/info")[1]["batches"]["calls"] == 3


def test_the_client_reads_the_token_from_the_environment(monkeypatch):
    """Item 5: ``PoseClient`` ignored ``HHRT_TOKEN`` (the CLI read it), so README put the token on command
    lines, where ``ps`` shows it."""
    monkeypatch.setenv(TOKEN_ENV, "from-env")
    assert PoseClient("http://127.0.0.1:9").token == "from-env"
    assert PoseClient("http://127.0.0.1:9", token="given").token == "given"
    assert PoseClient("http://127.0.0.1:9", token="").token is None  # explicitly none
    monkeypatch.delenv(TOKEN_ENV)
    assert PoseClient("http://127.0.0.1:9").token is None


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "192.168.1.5"])
def test_serve_refuses_a_reachable_address_without_a_token(host, monkeypatch):
    """Item 5: ``--host 0.0.0.0`` without a token printed a warning and served everyone; now it refuses,
    before Ray or the model start, and says how to set a token."""
    from hhrnet_rt.serve.server import start_server

    monkeypatch.delenv(TOKEN_ENV, raising=False)
    result = runner.invoke(app, ["serve", "--host", host])
    assert result.exit_code == EXIT_INPUT, result.output
    assert "without a token" in result.output and TOKEN_ENV in result.output
    with pytest.raises(InputError, match="without a token"):  # the library follows the same rule
        start_server({"weights": "random"}, ServeSettings(), host=host)


# -- item 19: an answer from another model -------------------------------------------------------------------


class _FixedServer:
    """127.0.0.1, answering /v1/info and /v1/poses with fixed bodies."""

    def __init__(self, info: dict, people: list) -> None:
        bodies = {"/v1/info": json.dumps(info).encode(),
                  "/v1/poses": json.dumps({"schema": 1, "width": 8, "height": 8, "people": people}).encode()}  # fmt: skip

        class Http(BaseHTTPRequestHandler):
            def _any(self) -> None:
                self.rfile.read(int(self.headers.get("Content-Length") or 0))
                body = bodies[self.path]
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            do_GET = do_POST = _any

            def log_message(self, *args) -> None:
                pass

        self.http = ThreadingHTTPServer(("127.0.0.1", 0), Http)
        self.url = f"http://127.0.0.1:{self.http.server_address[1]}"
        threading.Thread(target=self.http.serve_forever, daemon=True).start()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.http.shutdown()
        self.http.server_close()


def _person(joints: int) -> dict:
    return {"keypoints": [[1.0, 2.0, 0.5]] * joints, "score": 0.5}


@pytest.mark.parametrize(
    ("info_joints", "people", "ok"),
    [(17, [_person(17)], True), (17, [_person(14)], False), (None, [_person(17), _person(14)], False),
     (14, [_person(14)], True), (17, [{"keypoints": [[1.0, 2.0]] * 17, "score": 0.5}], False)],
)  # fmt: skip
def test_an_answer_with_another_joint_count_is_refused(info_joints, people, ok):
    """Item 19: a server answering 14 joints to a client of a 17-joint model was accepted silently (and a
    ragged answer ended in a numpy traceback)."""
    model = {} if info_joints is None else {"num_joints": info_joints}
    image = np.zeros((8, 8, 3), np.uint8)
    with _FixedServer({"model": model}, people) as server:
        client = PoseClient(server.url, token="", image_format="png", retry_s=0)
        if ok:
            assert client.predict(image).keypoints.shape == (1, info_joints, 3)
        else:
            with pytest.raises(ServerUnavailable, match="joints"):
                client.predict(image)
        pinned = PoseClient(server.url, token="", image_format="png", retry_s=0, num_joints=17)
        if people[0]["keypoints"] == _person(17)["keypoints"] and len(people) == 1:
            assert len(pinned.predict(image)) == 1
        else:
            with pytest.raises(ServerUnavailable, match="joints"):
                pinned.predict(image)


# -- items 1 and 11: slow and vanishing uploads (the handler; the real server: tests/test_serve.py) ---------


def _handler(**settings):
    async def predict(image):
        raise AssertionError("no image reaches the model in these tests")

    return RequestHandler(ServeSettings(**settings), predict, {})


def test_an_upload_that_stalls_gets_408_at_its_deadline():
    """Item 1: the body was read without a deadline, so a client that sent a few bytes held its replica
    slot for ever."""
    handler = _handler(body_timeout_s=0.3)

    async def stalled():
        yield b"\x89PNG"
        await asyncio.sleep(3600)

    async def run():
        return await asyncio.wait_for(handler.answer("POST", "/v1/poses", {}, stalled, "10.0.0.7"), 5)

    answer = asyncio.run(run())
    assert answer.status == 408 and "0.3 s" in json.loads(answer.body)["error"]
    assert not handler._uploads, "the upload no longer counts against its client"


def test_one_address_has_a_bounded_number_of_uploads_arriving():
    """Item 1: one address could fill every slot of a replica with stalled uploads; over the bound it
    gets 429 (with Retry-After) at once, and another address is still served."""
    handler = _handler(body_timeout_s=30, uploads_per_client=2)
    release = asyncio.Event()

    async def slow():
        yield b"x"
        await release.wait()

    async def run():
        first = [
            asyncio.create_task(handler.answer("POST", "/v1/poses", {}, slow, "10.0.0.7")) for _ in range(2)
        ]
        await asyncio.sleep(0.05)
        third = await handler.answer("POST", "/v1/poses", {}, slow, "10.0.0.7")
        other = asyncio.create_task(handler.answer("POST", "/v1/poses", {}, slow, "10.0.0.8"))
        await asyncio.sleep(0.05)
        assert not other.done(), "another address is not limited by the first one's uploads"
        release.set()
        return third, await asyncio.gather(*first, other)

    third, rest = asyncio.run(run())
    assert third.status == 429 and third.headers == {"Retry-After": "1"}
    assert "10.0.0.7" in json.loads(third.body)["error"]
    assert [a.status for a in rest] == [415, 415, 415]  # they arrived: b"x" is no image


def test_a_client_that_leaves_mid_upload_is_one_log_line(caplog):
    """Item 11: every client that disconnected mid-upload logged a 20-line traceback on the server."""
    from hhrnet_rt.serve.handler import ClientGone

    handler = _handler()

    async def gone():
        yield b"\x89PNG"
        raise ClientGone

    with caplog.at_level("INFO", logger="hhrnet_rt.serve"):
        answer = asyncio.run(handler.answer("POST", "/v1/poses", {}, gone, "10.0.0.7"))
    assert answer.status == 400
    assert [r.levelname for r in caplog.records] == ["INFO"] and not any(r.exc_info for r in caplog.records)


# -- item 8: SIGTERM -----------------------------------------------------------------------------------------


def test_joining_ray_keeps_the_callers_sigterm_handler():
    """Item 8: ``ray.init`` replaced the CLI's SIGTERM handler (Ctrl-C's orderly path) with its own
    ``sys.exit(15)``, so SIGTERM to ``hhrt serve`` unwound it mid-way and ended in a C++ abort (exit 134)."""
    import signal

    from hhrnet_rt.cluster.ray_setup import init_keeping_signals

    class FakeRay:
        def init(self, **kwargs):  # what Ray's driver does to SIGTERM
            signal.signal(signal.SIGTERM, lambda *a: None)

    def mine(signum, frame):
        raise KeyboardInterrupt

    before = signal.signal(signal.SIGTERM, mine)
    try:
        init_keeping_signals(FakeRay(), address="auto")
        assert signal.getsignal(signal.SIGTERM) is mine
    finally:
        signal.signal(signal.SIGTERM, before)


# -- item 10: resources that cannot exist ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("per_unit", "units", "words"),
    [({"CPU": 1}, 3, "3 replicas of 1 CPUs each need room for 3; the cluster has room for 2"),
     ({"CPU": 1, "GPU": 1}, 1, "each replica needs 1 GPUs; the cluster has no GPUs"),
     ({"CPU": 4}, 1, "each replica needs 4 CPUs; no node has more than 2"),
     ({"CPU": 0.75}, 3, "the cluster has room for 2"),
     ({"CPU": 1}, 2, None), ({"CPU": 0.5, "GPU": 0}, 4, None)],
)  # fmt: skip
def test_work_the_cluster_can_never_place_is_refused(per_unit, units, words):
    """Item 10: ``hhrt serve --replicas 3`` on 2 CPUs, or ``--gpus-per-replica`` / ``--gpus-per-task``
    without a GPU, waited for ever (a spinner, "0/2 videos"); the cluster's resources are checked first
    (exit 4, with what is missing)."""
    from hhrnet_rt.cluster.ray_setup import missing_resources

    nodes = [
        {"Alive": True, "Resources": {"CPU": 2.0, "memory": 1e9}},
        {"Alive": False, "Resources": {"GPU": 8}},
    ]
    problem = missing_resources(nodes, per_unit, units, "replica")
    assert problem is None if words is None else words in problem


def test_a_port_in_use_is_one_line_before_ray_starts(monkeypatch):
    """Item 11: a port in use printed two Ray tracebacks (from its proxy) before the right message."""
    import socket

    from hhrnet_rt.serve import server

    monkeypatch.setattr(
        server, "require_ray", lambda **kw: (_ for _ in ()).throw(AssertionError("Ray started"))
    )
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(InputError, match=f"cannot listen on 127.0.0.1:{port}"):
            server.start_server({"weights": "random"}, ServeSettings(), port=port)
