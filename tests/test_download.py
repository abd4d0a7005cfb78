"""Named-weights download against a real HTTP server on 127.0.0.1 (no internet needed)."""

from __future__ import annotations

import hashlib
import http.server
import socket
import threading
from collections import OrderedDict
from pathlib import Path

import pytest
import torch

from hhrnet_rt.core.errors import DownloadError, WeightsError
from hhrnet_rt.model import download
from hhrnet_rt.model.download import NAMED_WEIGHTS, NamedWeights, cache_dir, fetch_named
from hhrnet_rt.model.higherhrnet import HigherHRNet
from hhrnet_rt.model.spec import ModelSpec
from hhrnet_rt.model.weights import build_from_checkpoint

TINY = ModelSpec(stage_channels=((8, 16), (8, 16, 32), (8, 16, 32, 64)), deconv_channels=(8,))


@pytest.fixture(scope="module")
def payload(tmp_path_factory) -> bytes:
    """A small but real checkpoint in the MMPose container, as the model zoo serves them."""
    torch.manual_seed(0)
    sd = HigherHRNet(TINY).state_dict()
    inner = OrderedDict(
        (("keypoint_head." if k.startswith(("final_", "deconv_")) else "backbone.") + k, v)
        for k, v in sd.items()
    )
    path = tmp_path_factory.mktemp("zoo") / "ckpt.pth"
    torch.save({"meta": {"epoch": 1}, "state_dict": inner}, path)
    return path.read_bytes()


@pytest.fixture()
def server(payload):
    """Serves ``payload`` at /zoo/<anything>; counts GET requests."""
    requests: list[str] = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 - http.server API
            requests.append(self.path)
            self.send_response(200)
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def log_message(self, *args):  # keep pytest output clean
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}/zoo", requests
    httpd.shutdown()
    httpd.server_close()


@pytest.fixture(autouse=True)
def cache(tmp_path, monkeypatch) -> Path:
    monkeypatch.setenv("HHRT_CACHE_DIR", str(tmp_path / "cache"))
    # The local test server speaks plain http; everything else must be https.
    monkeypatch.setattr(download, "PLAIN_HTTP_HOSTS", {"127.0.0.1"})
    return tmp_path / "cache"


def test_cache_dir_precedence(monkeypatch, tmp_path):
    assert cache_dir() == tmp_path / "cache"
    monkeypatch.delenv("HHRT_CACHE_DIR")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert cache_dir() == tmp_path / "xdg" / "hhrnet-rt"
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert cache_dir() == tmp_path / "home" / ".cache" / "hhrnet-rt"


def test_good_hash_is_cached_and_reused(server, payload, cache, monkeypatch):
    base, requests = server
    prefix = hashlib.sha256(payload).hexdigest()[:8]
    monkeypatch.setitem(NAMED_WEIGHTS, "w32_512", NamedWeights(f"{base}/tiny-{prefix}.pth", prefix))
    path = fetch_named("w32_512", progress=True)
    assert path == cache / f"tiny-{prefix}.pth" and path.read_bytes() == payload
    assert len(requests) == 1
    assert list(cache.iterdir()) == [path]  # no temp file left behind

    # Second use, through the public loader: no new request, and the network is built from the file.
    model, spec = build_from_checkpoint("w32_512")
    assert len(requests) == 1
    assert spec.width == 8 and spec.name == "w32_512" and spec.input_size == 512 and not model.training


def test_bad_hash_is_refused_and_removed(server, cache, monkeypatch):
    base, requests = server
    monkeypatch.setitem(NAMED_WEIGHTS, "w48_512", NamedWeights(f"{base}/w48-deadbeef.pth", "deadbeef"))
    with pytest.raises(DownloadError, match=r"expected a hash starting with deadbeef; the file was deleted"):
        fetch_named("w48_512", progress=False)
    assert len(requests) == 1
    assert not cache.exists() or list(cache.iterdir()) == []
    assert isinstance(DownloadError("x"), WeightsError)


def test_server_down_gives_url_and_local_file_hint(cache, monkeypatch):
    with socket.socket() as s:  # a port that was free a moment ago: nothing listens there now
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    url = f"http://127.0.0.1:{port}/zoo/w32-8ae85183.pth"
    monkeypatch.setitem(NAMED_WEIGHTS, "w32_640", NamedWeights(url, "8ae85183"))
    monkeypatch.setattr(download, "_TIMEOUT_S", 5.0)
    with pytest.raises(DownloadError) as info:
        fetch_named("w32_640", progress=False)
    msg = str(info.value)
    assert url in msg and "weights='/path/to/w32-8ae85183.pth'" in msg
    assert not cache.exists() or list(cache.iterdir()) == []


def test_unknown_name():
    with pytest.raises(DownloadError, match="available: w32_512, w32_640, w48_512"):
        fetch_named("w64_1024")


def test_damaged_cache_file_names_the_file_to_delete(cache, monkeypatch):
    entry = NamedWeights("http://127.0.0.1:9/never-used-12345678.pth", "12345678")
    monkeypatch.setitem(NAMED_WEIGHTS, "w32_512", entry)
    cache.mkdir(parents=True)
    (cache / entry.filename).write_text("not weights")
    # The hash is checked on use, before the file is read: the message names the file to delete.
    with pytest.raises(DownloadError, match=r"cached file .*never-used-12345678.pth is not the w32_512"):
        build_from_checkpoint("w32_512")
    assert (cache / entry.filename).read_text() == "not weights"  # not ours to delete


# -- the cache and the wire are verified, never trusted ------------------------------------------------


def _serve(handler_body):
    """A 127.0.0.1 server whose GET handler is ``handler_body(handler)``; returns (base_url, close)."""

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 - http.server API
            handler_body(self)

        def log_message(self, *args):
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    httpd.daemon_threads = True
    threading.Thread(target=httpd.serve_forever, daemon=True).start()

    def close():
        httpd.shutdown()
        httpd.server_close()

    return f"http://127.0.0.1:{httpd.server_address[1]}", close


def _no_leftovers(cache: Path) -> bool:
    return not cache.exists() or list(cache.iterdir()) == []


def test_replaced_cache_file_is_refused_and_info_says_so(server, payload, cache, monkeypatch):
    from hhrnet_rt.cli.info import collect

    base, requests = server
    prefix = hashlib.sha256(payload).hexdigest()[:8]
    monkeypatch.setitem(NAMED_WEIGHTS, "w32_512", NamedWeights(f"{base}/tiny-{prefix}.pth", prefix))
    path = fetch_named("w32_512", progress=False)
    assert collect()["weights_cache"]["cached"]["w32_512"] is True
    # Someone puts another (perfectly loadable) checkpoint under the cached name.
    other = dict(HigherHRNet(TINY).state_dict())
    torch.save(other, path)
    with pytest.raises(DownloadError, match=rf"{path.name} is not the w32_512 checkpoint.*Delete it"):
        build_from_checkpoint("w32_512")
    assert path.is_file() and len(requests) == 1  # neither deleted nor silently re-downloaded
    facts = collect()["weights_cache"]
    assert facts["cached"]["w32_512"] is False and facts["hash_mismatch"] == {"w32_512": str(path)}


def test_plain_http_and_redirects_to_http_are_refused(server, cache, monkeypatch):
    base, requests = server
    monkeypatch.setattr(download, "PLAIN_HTTP_HOSTS", set())
    monkeypatch.setitem(NAMED_WEIGHTS, "w32_512", NamedWeights(f"{base}/x-12345678.pth", "12345678"))
    with pytest.raises(DownloadError, match="only https"):
        fetch_named("w32_512", progress=False)
    assert requests == [] and _no_leftovers(cache)

    # A redirect may not leave https for http: the allowed test host redirects to a disallowed one.
    def redirect(h):
        h.send_response(302)
        h.send_header("Location", f"http://localhost:{base.rsplit(':', 1)[1].split('/')[0]}/zoo/x.pth")
        h.end_headers()

    url, close = _serve(redirect)
    try:
        monkeypatch.setattr(download, "PLAIN_HTTP_HOSTS", {"127.0.0.1"})
        monkeypatch.setitem(NAMED_WEIGHTS, "w32_512", NamedWeights(f"{url}/x-12345678.pth", "12345678"))
        with pytest.raises(DownloadError, match="refused to download http://localhost.*only https"):
            fetch_named("w32_512", progress=False)
    finally:
        close()
    assert requests == [] and _no_leftovers(cache)


@pytest.mark.parametrize("announce", [True, False], ids=["content-length", "no-content-length"])
def test_size_cap(cache, monkeypatch, announce):
    body = b"x" * 5000

    def send(h):
        h.send_response(200)
        if announce:
            h.send_header("Content-Length", str(len(body)))
        h.end_headers()
        h.wfile.write(body)

    url, close = _serve(send)
    monkeypatch.setattr(download, "MAX_BYTES", 4096)
    monkeypatch.setattr(download, "_CHUNK", 1024)
    monkeypatch.setitem(NAMED_WEIGHTS, "w32_512", NamedWeights(f"{url}/big-12345678.pth", "12345678"))
    try:
        with pytest.raises(DownloadError, match="more than the 4,096-byte limit"):
            fetch_named("w32_512", progress=False)
    finally:
        close()
    assert _no_leftovers(cache)  # the temporary .part file is gone too


def test_overall_deadline_stops_a_trickling_server(cache, monkeypatch):
    import time

    def trickle(h):
        h.send_response(200)
        h.send_header("Content-Length", "100000")
        h.end_headers()
        for _ in range(200):  # a byte every 10 ms: each read is quick, the whole never ends in time
            try:
                h.wfile.write(b"x")
                h.wfile.flush()
            except OSError:
                return
            time.sleep(0.01)

    url, close = _serve(trickle)
    monkeypatch.setattr(download, "DEADLINE_S", 0.2)
    monkeypatch.setattr(download, "_CHUNK", 1)
    monkeypatch.setitem(NAMED_WEIGHTS, "w32_512", NamedWeights(f"{url}/slow-12345678.pth", "12345678"))
    try:
        with pytest.raises(DownloadError, match=r"took longer than 0 s and was stopped"):
            fetch_named("w32_512", progress=False)
    finally:
        close()
    assert _no_leftovers(cache)


def test_unwritable_cache_falls_back_to_a_private_temp_folder(server, payload, tmp_path, monkeypatch, caplog):
    # Root ignores permission bits, so the unwritable folder is one that cannot be created at all: its
    # parent is a regular file (mkdir fails with NotADirectoryError for every user).
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    monkeypatch.setenv("HHRT_CACHE_DIR", str(blocker / "cache"))
    monkeypatch.setattr("tempfile.tempdir", str(tmp_path / "tmp"))
    (tmp_path / "tmp").mkdir()
    base, _ = server
    prefix = hashlib.sha256(payload).hexdigest()[:8]
    monkeypatch.setitem(NAMED_WEIGHTS, "w32_512", NamedWeights(f"{base}/tiny-{prefix}.pth", prefix))
    with caplog.at_level("WARNING", logger="hhrnet_rt.core.paths"):
        path = fetch_named("w32_512", progress=False)
    assert path.parent.parent == tmp_path / "tmp" and path.read_bytes() == payload
    assert path.parent.stat().st_mode & 0o777 == 0o700
    assert any(
        "cannot be written" in r.getMessage() and str(path.parent) in r.getMessage() for r in caplog.records
    )
    # The next run finds (and re-verifies) the file in the fallback folder instead of downloading again.
    assert fetch_named("w32_512", progress=False) == path
