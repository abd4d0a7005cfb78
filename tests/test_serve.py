"""``hhrt serve`` on a real local Ray (127.0.0.1, a free port): the golden tiny model served and used
through PoseClient, ``hhrt video --server``, a replica killed mid-run, and bad requests.

The session's Ray cluster (``ray_cluster`` in conftest, shared with the Ray task tests) and the session's
server (``tiny_server``, shared with tests/test_serve_interop.py; starting them is most of this file's time).
Exactness: the images travel as PNG (lossless), the replica and this process run the same code on one
torch thread each (torch CPU kernels are deterministic for a fixed thread count and batch size), and the
server's answer is the JSON records ``hhrt image --json`` writes; so a request that runs alone (a batch
of one, like a local ``predict``) must give equal records, not close ones. Requests batched together run
other oneDNN kernels (chosen by batch size; maps differ by up to ~5e-6, see tests/test_batch_infer.py), so
batched answers are compared with a tolerance.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request

import numpy as np
import pytest
import serve_helpers
from serve_helpers import BODY_TIMEOUT_S, INPUT_SIZE, MAX_BYTES, TOKEN
from video_helpers import decoded_frames, make_video

ray = pytest.importorskip("ray")
serve = pytest.importorskip("ray.serve")

from hhrnet_rt.serve import PoseClient, RemoteEstimator  # noqa: E402
from hhrnet_rt.video.records import frames_of  # noqa: E402

pytestmark = pytest.mark.ray


@pytest.fixture(scope="module")
def estimator_options(golden_dir):
    return serve_helpers.estimator_options(golden_dir)


@pytest.fixture(scope="module")
def server(tiny_server, one_torch_thread):
    return tiny_server


@pytest.fixture(scope="module")
def local(estimator_options, one_torch_thread):
    from hhrnet_rt.runtime.estimator import PoseEstimator

    options = dict(estimator_options)
    return PoseEstimator(options.pop("weights"), **options)


@pytest.fixture(scope="module")
def images(golden_npz):
    """The golden pipeline image (BGR, 480x640) and crops of other sizes: several network-input shapes."""
    image = np.ascontiguousarray(golden_npz("pipeline_case")["image_rgb_uint8"][..., ::-1])
    crops = [image, image[:240], image[:, :320], image[100:400, 50:600], image[::-1], image[:, ::-1]]
    return [np.ascontiguousarray(c) for c in crops + [image[:200, :200], image[200:, 300:]]]


@pytest.fixture(scope="module")
def client(server):
    return PoseClient(server, token=TOKEN, image_format="png")


def test_client_predict_equals_local_predict(client, local, images):
    remote = client.predict(images[0])
    expected = local.predict(images[0])
    assert len(expected) > 0, "the tiny model should find someone: otherwise nothing is compared"
    assert remote.to_records() == expected.to_records()
    info = client.info()
    assert info["model"]["input_size"] == INPUT_SIZE and info["model"]["backend"] == "torch"
    assert info["serve"]["token"] is True and TOKEN not in json.dumps(info)


def _assert_records_close(got: list[dict], expected: list[dict]) -> None:
    """Same people; x, y within 0.02 px and scores within 2e-4. Why: maps that differ by ~5e-6 (another
    batch size's kernels) move a pose by far less than the records' rounding (0.01 px, 1e-4), but can tip
    a value across a rounding boundary: one step, plus float slack."""
    assert len(got) == len(expected)
    for g, e in zip(got, expected, strict=True):
        assert g["score"] == pytest.approx(e["score"], abs=2e-4)
        g_kp, e_kp = np.array(g["keypoints"], float), np.array(e["keypoints"], float)
        np.testing.assert_allclose(g_kp[:, :2], e_kp[:, :2], rtol=0, atol=0.02)
        np.testing.assert_allclose(g_kp[:, 2], e_kp[:, 2], rtol=0, atol=2e-4)


def test_eight_threads_batched_equal_serial(client, local, images):
    serial = [client.predict(image).to_records() for image in images]
    assert serial == [local.predict(image).to_records() for image in images]  # one at a time: exact
    before = client.info()["batches"]
    batched = [p.to_records() for p in client.predict_batch(images, concurrency=8)]
    for got, expected in zip(batched, serial, strict=True):
        _assert_records_close(got, expected)
    after = client.info()["batches"]
    assert after["frames"] - before["frames"] == len(images)
    # Requests that arrive within batch_wait_ms share a predict_batch call: 8 at once cannot all be alone.
    assert after["calls"] - before["calls"] < len(images) and after["largest"] > 1


def test_video_with_server_writes_every_frame_with_local_poses(server, local, tmp_path):
    n = 6
    clip = make_video(tmp_path / "clip.mp4", n, width=256, height=192)
    cmd = [sys.executable, "-m", "hhrnet_rt", "video", str(clip), "--server", server, "--send", "png",
           "--in-flight", "1", "--json", str(tmp_path / "o.jsonl"), "--out", str(tmp_path / "o.mp4")]  # fmt: skip
    env = {**os.environ, "HHRT_TOKEN": TOKEN}
    run = subprocess.run(cmd, capture_output=True, text=True, timeout=240, env=env, cwd=os.getcwd())
    assert run.returncode == 0, run.stderr
    records = frames_of(json.loads(line) for line in (tmp_path / "o.jsonl").read_text().splitlines())
    assert [r["frame"] for r in records] == list(range(n))  # frames in == frames out, in order
    expected = [local.predict(frame).to_records() for frame in decoded_frames(clip)]
    assert [r["people"] for r in records] == expected
    assert sum(map(len, expected)) > 0


def _replica_names() -> list[str]:
    return sorted(
        a["name"]
        for a in ray.util.list_named_actors(all_namespaces=True)
        if a["name"].startswith("SERVE_REPLICA::hhrt#")  # the model's replicas, not the health app's
    )


def test_a_killed_replica_is_restarted_and_no_frame_is_lost(server, local, tmp_path):
    from hhrnet_rt.video import FileSource, JsonLinesSink, run_pipeline

    n = 16
    clip = make_video(tmp_path / "clip.mp4", n, width=256, height=192)
    before = _replica_names()
    assert len(before) == 1
    # Serve's proxy holds the requests of a dead replica and hands them to the new one (measured here: no
    # failed request); the client's retries cover what still fails. A restart loads the model again:
    # seconds on a busy machine, so a generous budget.
    remote = RemoteEstimator(
        PoseClient(server, token=TOKEN, image_format="png", retry_s=120), max_in_flight=1
    )
    killed = threading.Event()

    def kill_after_two_frames(result) -> None:
        if result.frame.index == 1 and not killed.is_set():
            ray.kill(ray.get_actor(before[0], namespace="serve"), no_restart=True)
            killed.set()
            time.sleep(1.0)  # hold the pipeline until the replica is gone, so the next requests fail

    source = FileSource(clip)
    result = run_pipeline(source, remote, [JsonLinesSink(tmp_path / "o.jsonl")], on_frame=kill_after_two_frames,
                          join_timeout_s=150)  # fmt: skip
    assert killed.is_set()
    assert result.frames_written == n
    records = frames_of(json.loads(line) for line in (tmp_path / "o.jsonl").read_text().splitlines())
    assert [r["frame"] for r in records] == list(range(n))
    assert [r["people"] for r in records] == [local.predict(f).to_records() for f in decoded_frames(clip)]
    after = _replica_names()
    assert len(after) == 1 and after != before  # Serve started a new replica


def _status(url: str, method: str = "POST", body: bytes | None = None, token: str | None = TOKEN, timeout=60):
    request = urllib.request.Request(url, data=body, method=method)
    if token is not None:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=timeout) as answer:
            return answer.status, json.loads(answer.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


@pytest.mark.parametrize(
    ("method", "path", "body", "token", "status", "words"),
    [
        ("POST", "/v1/poses", b"plain text, not a picture", TOKEN, 415, "not a JPEG or PNG"),
        ("POST", "/v1/poses", bytes(MAX_BYTES + 1), TOKEN, 413, f"limit is {MAX_BYTES}"),
        ("POST", "/v1/poses", b"x", "wrong-token", 401, "wrong token"),
        ("POST", "/v1/poses", b"x", None, 401, "no token"),
        ("GET", "/v1/poses", None, TOKEN, 405, "takes POST"),
        ("GET", "/v1/nothing", None, TOKEN, 404, "no such endpoint"),
    ],
    ids=["not-an-image", "too-large", "wrong-token", "no-token", "wrong-method", "no-endpoint"],
)
def test_bad_requests_get_the_documented_status_and_message(server, method, path, body, token, status, words):
    got, answer = _status(server + path, method, body, token)
    assert got == status
    assert words in answer["error"] and "Traceback" not in answer["error"]


def test_health_answers_without_a_token(server):
    assert _status(server + "/v1/health", "GET", token=None) == (200, {"status": "ok"})


def _stalled_upload(url: str) -> socket.socket:
    """A client that sends the headers and a few bytes of a 100 kB body, then nothing."""
    host, port = url.removeprefix("http://").split(":")
    sock = socket.create_connection((host, int(port)), timeout=10)
    sock.sendall(f"POST /v1/poses HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer {TOKEN}\r\n"
                 "Content-Type: image/png\r\nContent-Length: 100000\r\n\r\n".encode() + b"\x89PNG")  # fmt: skip
    return sock


def test_stalled_uploads_stall_neither_the_server_nor_its_health(server, local, images):
    """#19 item 1: ~16 clients that send headers and a few body bytes, then nothing, held every replica
    slot for ever: /v1/health and every other request waited with them. Now each upload has a deadline
    (408), one address has at most 4 uploads arriving at once (429), and /v1/health has a replica of
    its own."""
    stalled = [_stalled_upload(server) for _ in range(20)]  # more than the replica's 16 slots
    try:
        time.sleep(0.5)  # all of them reach the server
        start = time.monotonic()
        assert _status(server + "/v1/health", "GET", token=None, timeout=5) == (200, {"status": "ok"})
        assert time.monotonic() - start < 1.5, "health must not wait for the stalled uploads"
        client = PoseClient(server, token=TOKEN, image_format="png", retry_s=10, timeout_s=10)
        assert client.predict(images[0]).to_records() == local.predict(images[0]).to_records()
        assert time.monotonic() - start < BODY_TIMEOUT_S + 5
        statuses = []
        for sock in stalled:
            answer = sock.recv(4096).decode("latin-1")
            statuses.append(int(answer.split()[1]) if answer else None)
        assert set(statuses) <= {408, 429} and 408 in statuses and 429 in statuses, statuses
    finally:
        for sock in stalled:
            sock.close()


def test_no_socket_of_the_server_listens_beyond_loopback(server, client, images):
    """#19 item 4: with ``hhrt serve`` on 127.0.0.1, a Serve replica's inter-deployment gRPC port listened
    on every interface (its handlers unpickle). Every listening socket of this run's processes (the
    local cluster, its workers, the replicas, the proxy) must be on a loopback address."""
    import ipaddress

    psutil = pytest.importorskip("psutil")
    client.predict(images[0])  # the replica and the proxy have opened what they open
    me = psutil.Process()
    reachable = []
    for process in [me, *me.children(recursive=True)]:
        try:
            sockets = process.net_connections(kind="inet")
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
        for sock in sockets:
            address = ipaddress.ip_address(sock.laddr.ip.split("%")[0])
            address = getattr(address, "ipv4_mapped", None) or address  # ::ffff:127.0.0.1 is loopback
            if sock.status == psutil.CONN_LISTEN and not address.is_loopback:
                reachable.append(
                    f"{' '.join(process.cmdline()[:3])[:80]} on {sock.laddr.ip}:{sock.laddr.port}"
                )
    assert len(me.children(recursive=True)) > 3, "the cluster's processes must be this process's children"
    assert reachable == [], reachable
