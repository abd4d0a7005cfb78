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

from hhrnet_rt import download
from hhrnet_rt.download import NAMED_WEIGHTS, NamedWeights, cache_dir, fetch_named
from hhrnet_rt.errors import DownloadError, WeightsError
from hhrnet_rt.model import HigherHRNet, ModelSpec
from hhrnet_rt.weights import build_from_checkpoint

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
    assert url in msg and "--weights /path/to/w32-8ae85183.pth" in msg
    assert not cache.exists() or list(cache.iterdir()) == []


def test_unknown_name():
    with pytest.raises(DownloadError, match="available: w32_512, w32_640, w48_512"):
        fetch_named("w64_1024")


def test_damaged_cache_file_names_the_file_to_delete(cache, monkeypatch):
    entry = NamedWeights("http://127.0.0.1:9/never-used-12345678.pth", "12345678")
    monkeypatch.setitem(NAMED_WEIGHTS, "w32_512", entry)
    cache.mkdir(parents=True)
    (cache / entry.filename).write_text("not weights")
    with pytest.raises(WeightsError, match="Delete the cached file .*never-used-12345678.pth"):
        build_from_checkpoint("w32_512")
