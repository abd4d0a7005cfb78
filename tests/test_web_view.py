"""The live web view (``--web``, :mod:`hhrnet_rt.endpoints.view`): a stalled browser costs the run nothing,
the token reaches a browser once and stays in a cookie, bad addresses are refused before any work, and
``hhrt video --web`` works in a real browser (frames change, numbers show, the snapshot button gives a PNG,
no console errors)."""

from __future__ import annotations

import http.client
import json
import socket
import threading
import time
import urllib.error
import urllib.request

import numpy as np
import pytest
from browser_helpers import console_errors
from typer.testing import CliRunner
from video_helpers import make_video, run_in_thread

from hhrnet_rt.cli import app
from hhrnet_rt.core.access import TOKEN_COOKIE
from hhrnet_rt.core.errors import InputError
from hhrnet_rt.endpoints import EndpointServer, LiveView
from hhrnet_rt.poses import Poses
from hhrnet_rt.video import Stream, run_streams
from hhrnet_rt.video.sources import FileSource

runner = CliRunner()


class NoiseSource:
    """A file-like source of ``n`` noise frames (each one a large JPEG, so a client that never reads fills
    its socket buffers after a few frames), at 100 frames/s."""

    live, rate, decode_failures, description = False, None, 0, "noise"

    def __init__(self, n: int, size: tuple[int, int] = (240, 320)) -> None:
        self.n, self.frame_count, self.fps, self._i = n, n, 25.0, 0
        self.size = size[::-1]
        self._images = np.random.default_rng(3).integers(0, 256, (4, *size, 3), dtype=np.uint8)

    def read(self):
        from hhrnet_rt.video import Frame

        if self._i >= self.n:
            return None
        time.sleep(0.01)  # a camera's pace, slower than the view: it has every frame to offer
        i, self._i = self._i, self._i + 1
        return Frame(i, i / self.fps, self._images[i % 4].copy(), time.perf_counter())

    def close(self) -> None:
        pass


class NobodyEstimator:
    """Finds nobody, at once: this test is about the view, not the model."""

    num_joints = 17

    def prepare(self, image):
        return image.shape

    def infer(self, prepared):
        return None

    def decode(self, maps, prepared) -> Poses:
        return Poses.empty(17)


def test_a_stalled_viewer_drops_frames_and_never_blocks_the_run():
    view = LiveView(["noise"], fps=1000.0)  # no pacing: every frame is offered to the viewer
    with EndpointServer(view.routes(), port=0) as server:
        stalled = socket.socket()
        stalled.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        stalled.connect(("127.0.0.1", server.port))
        stalled.sendall(b"GET /stream/0 HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")  # and never reads a byte
        try:
            deadline = time.monotonic() + 10
            while view.stats()["streams"][0]["viewers"] == 0:  # its request is being served
                assert time.monotonic() < deadline, "the viewer's request was never served"
                time.sleep(0.01)
            n = 40
            estimator = NobodyEstimator()
            stream = Stream(NoiseSource(n), on_frame=view.frame_hook(0))
            result = run_in_thread(lambda: run_streams([stream], estimator, monitor=view), timeout=30)
            stats = view.stats()["streams"][0]
            assert result.frames_written == n  # a file loses nothing, viewer or not
            assert stats["frames"] == n and stats["viewers"] == 1
            # most frames came while the viewer was stuck in a send: the run went on without it, and what it
            # could not take was dropped (counted), not queued
            assert stats["dropped"] >= n // 2, stats
            assert stats["fps"] >= 0 and stats["state"] == "done"
            view.close()
        finally:
            t0 = time.monotonic()
            server.close()  # cuts the stream blocked in a send to the stalled client
            while view.stats()["streams"][0]["viewers"] and time.monotonic() - t0 < 5:
                time.sleep(0.02)
            stalled.close()
    assert view.stats()["streams"][0]["viewers"] == 0, "the stalled viewer's request did not end"


def _get(url: str, headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], bytes]:
    host, _, path = url.removeprefix("http://").partition("/")
    conn = http.client.HTTPConnection(host, timeout=5)  # does not follow redirects: the 303 is checked
    try:
        conn.request("GET", "/" + path, headers=headers or {})
        reply = conn.getresponse()
        return reply.status, dict(reply.getheaders()), reply.read()
    finally:
        conn.close()


def test_the_token_comes_once_in_the_address_then_in_a_cookie():
    view = LiveView(["cam"])
    with EndpointServer(view.routes(), port=0, token="s3 cret;") as server:
        assert _get(server.url + "/stats")[0] == 401
        assert _get(server.url + "/stats?token=wrong")[0] == 401
        assert _get(server.url + "/stats", {"Cookie": f"{TOKEN_COOKIE}=wrong"})[0] == 401
        status, headers, _ = _get(server.url + "/?token=s3%20cret%3B")
        assert status == 303 and headers["Location"] == "/"  # the token leaves the address bar
        cookie = headers["Set-Cookie"]
        assert "HttpOnly" in cookie and "SameSite=Strict" in cookie
        status, _, body = _get(server.url + "/stats", {"Cookie": cookie.split(";", 1)[0]})
        assert status == 200 and json.loads(body)["streams"][0]["name"] == "cam"
        assert _get(server.url + "/stats", {"Authorization": "Bearer s3 cret;"})[0] == 200  # programs
        status, _, body = _get(server.url + "/snapshot/0.png", {"Authorization": "Bearer s3 cret;"})
        assert status == 503 and b"no frame yet" in body


def test_only_loopback_goes_without_a_token():
    with pytest.raises(InputError, match="HHRT_TOKEN"):
        EndpointServer(LiveView(["cam"]).routes(), host="0.0.0.0", port=0)


@pytest.mark.parametrize(
    ("args", "expected"),
    [(["--web", "80a"], "is not [HOST:]PORT"), (["--web", "0.0.0.0:0"], "refusing to listen on 0.0.0.0"),
     (["--web", "0", "--ray"], "drop one")],
)  # fmt: skip
def test_bad_web_options_fail_before_any_work(tmp_path, tiny, args, expected, monkeypatch):
    monkeypatch.delenv("HHRT_TOKEN", raising=False)
    clip = make_video(tmp_path / "a.mp4", 2, width=64, height=64)
    result = runner.invoke(app, ["video", str(clip), "--out", str(tmp_path / "out"), *args, *tiny])
    assert result.exit_code != 0 and expected in " ".join(result.output.split()), result.output
    assert "Traceback" not in result.output and "loading the model" not in result.output
    assert not (tmp_path / "out").exists()


def test_webcams_with_only_the_web_view_need_no_recording(tmp_path, tiny):
    clips = [make_video(tmp_path / f"{name}.mp4", 3, width=64, height=64) for name in "ab"]
    args = ["webcam", "--camera", str(clips[0]), "--camera", str(clips[1]), "--no-show", "--web", "0", *tiny]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "live view at http://127.0.0.1:" in result.output and "2 cameras" in result.output
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.mp4", "b.mp4"]  # nothing recorded


# -- in a real browser -----------------------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_for(url: str, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while True:
        try:
            urllib.request.urlopen(url, timeout=2).read()
            return
        except (urllib.error.URLError, ConnectionError):
            if time.monotonic() > deadline:
                raise AssertionError(f"{url} did not answer within {seconds} s") from None
            time.sleep(0.1)


_CAPTURE_DOWNLOAD = """
window.__snap = null;
HTMLAnchorElement.prototype.click = function () { window.__snap = {href: this.href, download: this.download}; };
"""
_READ_DOWNLOAD = """
const done = arguments[arguments.length - 1];
fetch(window.__snap.href).then(r => r.blob()).then(async blob => {
  const bitmap = await createImageBitmap(blob);
  done({type: blob.type, width: bitmap.width, height: bitmap.height, download: window.__snap.download});
}).catch(err => done({error: String(err)}));
"""


def test_video_web_view_in_a_browser(chromium, tmp_path, tiny, monkeypatch):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    clips = [make_video(tmp_path / "a.mp4", 600, width=64, height=64),
             make_video(tmp_path / "b.mp4", 600, width=96, height=64)]  # fmt: skip
    done = threading.Event()
    read = FileSource.read

    def paced(self):  # ~25 frames/s (24 s of frames or more), until the test has seen what it needs
        if done.is_set():
            return None
        time.sleep(0.04)
        return read(self)

    monkeypatch.setattr(FileSource, "read", paced)
    monkeypatch.delenv("HHRT_TOKEN", raising=False)  # on loopback the page asks for none
    port = _free_port()
    args = ["video", *map(str, clips), "--out", str(tmp_path / "out"), "--web", str(port), *tiny]
    box: dict = {}
    thread = threading.Thread(target=lambda: box.setdefault("result", runner.invoke(app, args)), daemon=True)
    thread.start()
    try:
        _wait_for(f"http://127.0.0.1:{port}/stats", 60)
        chromium.get(f"http://127.0.0.1:{port}/")
        wait = WebDriverWait(chromium, 15, poll_frequency=0.1)
        wait.until(lambda d: len([i for i in d.find_elements(By.CSS_SELECTOR, "img.stream")
                                  if d.execute_script("return arguments[0].naturalWidth", i) > 0]) == 2)  # fmt: skip
        first = chromium.find_elements(By.CSS_SELECTOR, "img.stream")[0]
        before = first.screenshot_as_png
        wait.until(lambda d: first.screenshot_as_png != before)  # the frames change

        def numbers(d):
            frames = [e.text for e in d.find_elements(By.CSS_SELECTOR, "dd.frames")]
            fps = [e.text for e in d.find_elements(By.CSS_SELECTOR, "dd.fps")]
            ok = len(frames) == 2 and all(f.isdigit() and int(f) > 0 for f in frames)
            return ok and all(float(f) >= 0 for f in fps)

        wait.until(numbers)
        assert chromium.find_elements(By.CSS_SELECTOR, ".tile h2")[1].text.endswith("b.mp4")

        chromium.execute_script(_CAPTURE_DOWNLOAD)
        chromium.find_elements(By.CSS_SELECTOR, "button.snapshot")[0].click()
        wait.until(lambda d: d.execute_script("return window.__snap") is not None)
        snap = chromium.execute_async_script(_READ_DOWNLOAD)
        assert snap == {"type": "image/png", "width": 64, "height": 64, "download": snap["download"]}, snap
        assert snap["download"].startswith("hhrt-") and snap["download"].endswith(".png")
        assert console_errors(chromium) == []
    finally:
        done.set()  # the clips end now; the run finishes and takes the server down
        thread.join(60)
    assert not thread.is_alive(), "the run did not end"
    result = box["result"]
    assert result.exit_code == 0, result.output
    assert f"live view at http://127.0.0.1:{port}/" in result.output
