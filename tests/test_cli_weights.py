"""``hhrt weights list | download | path`` against a real HTTP server on 127.0.0.1, and the first-use
download shown before (not under) the model-loading spinner."""

from __future__ import annotations

import contextlib
import hashlib
import http.server
import threading

import cv2
import numpy as np
import pytest
from typer.testing import CliRunner

from hhrnet_rt.cli import app, progress
from hhrnet_rt.model import download
from hhrnet_rt.model.download import NAMED_WEIGHTS, NamedWeights

runner = CliRunner()
PAYLOAD = b"not a real checkpoint, but the bytes the hash names"
PREFIX = hashlib.sha256(PAYLOAD).hexdigest()[:8]


@pytest.fixture()
def served(monkeypatch, tmp_path):
    """w32_512 points at a local server holding PAYLOAD; returns (events list, cache folder)."""
    events: list[str] = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 - http.server API
            events.append("GET")
            self.send_response(200)
            self.send_header("Content-Length", str(len(PAYLOAD)))
            self.end_headers()
            self.wfile.write(PAYLOAD)

        def log_message(self, *args):
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{httpd.server_address[1]}/zoo/w32-{PREFIX}.pth"
    monkeypatch.setitem(NAMED_WEIGHTS, "w32_512", NamedWeights(url, PREFIX))
    monkeypatch.setattr(download, "PLAIN_HTTP_HOSTS", {"127.0.0.1"})
    cache = tmp_path / "cache"
    monkeypatch.setenv("HHRT_CACHE_DIR", str(cache))
    yield events, cache
    httpd.shutdown()
    httpd.server_close()


def test_download_then_path_then_list(served):
    events, cache = served
    before = runner.invoke(app, ["weights", "path", "w32_512"])
    assert before.exit_code == 3 and "hhrt weights download w32_512" in before.output
    result = runner.invoke(app, ["weights", "download", "w32_512"])
    assert result.exit_code == 0, result.output
    assert events == ["GET"]
    cached = cache / f"w32-{PREFIX}.pth"
    assert cached.read_bytes() == PAYLOAD
    path = runner.invoke(app, ["weights", "path", "w32_512"])
    assert path.exit_code == 0, path.output
    assert path.stdout == f"{cached}\n"  # only the path on stdout: usable as $(hhrt weights path ...)
    again = runner.invoke(app, ["weights", "download", "w32_512"])
    assert again.exit_code == 0 and events == ["GET"]  # cached and verified: not fetched again
    listing = runner.invoke(app, ["weights", "list"])
    assert listing.exit_code == 0, listing.output
    # The table folds long paths over several lines: compare its text without borders and blanks.
    flat = "".join(listing.stdout.replace("│", "").split())
    assert f"w32_512downloaded(sha256verified){cached}" in flat
    assert "w48_512notdownloadedhttps://" in flat


def test_unknown_name_is_a_usage_error_before_any_download(served):
    events, _ = served
    result = runner.invoke(app, ["weights", "download", "w32_512", "w99_999"])
    assert result.exit_code == 2, result.output
    assert "w99_999" in result.output and "w32_512, w32_640, w48_512" in result.output
    assert events == []  # the good name was not fetched either: all names are checked first
    assert runner.invoke(app, ["weights", "path", "nope"]).exit_code == 2


def test_path_refuses_a_file_that_is_not_the_checkpoint(served):
    _, cache = served
    cache.mkdir()
    impostor = cache / f"w32-{PREFIX}.pth"
    impostor.write_bytes(b"something else")
    result = runner.invoke(app, ["weights", "path", "w32_512"])
    assert result.exit_code == 3 and "sha256" in result.output
    assert impostor.read_bytes() == b"something else"  # not ours to delete


def test_first_use_downloads_before_the_loading_spinner(served, monkeypatch, tmp_path):
    events, _ = served

    real_step = progress.step

    @contextlib.contextmanager
    def step(*args, **kwargs):  # the model-loading spinner (progress.step), recorded as it starts
        events.append("spinner")
        with real_step(*args, **kwargs) as shown:
            yield shown

    monkeypatch.setattr(progress, "step", step)
    picture = tmp_path / "p.png"
    cv2.imwrite(str(picture), np.zeros((32, 32, 3), np.uint8))
    result = runner.invoke(
        app, ["image", str(picture), "--out", str(tmp_path / "o"), "--backend", "torch", "--device", "cpu"]
    )
    # The served bytes are no checkpoint: loading fails (exit 3), after the download finished.
    assert result.exit_code == 3, result.output
    assert events[:2] == ["GET", "spinner"]
