"""The live view of a run in a browser: each stream's newest annotated frame as MJPEG, its counters as
JSON once a second, a snapshot as PNG, and the page that shows them (:mod:`hhrnet_rt.endpoints.view_page`).

Served frames never slow inference. The pipeline's output thread hands each frame over by reference
(:meth:`LiveView.frame_hook`: a lock held for an assignment, no copy, no encoding, no wait); each viewer's
request thread takes the newest frame when it is ready for one, encodes it (once per frame for every
viewer, and only while someone watches) and sends it, at most :data:`VIEW_FPS` times a second. A viewer
still sending when newer frames arrive misses them: they are counted as its drops (``dropped`` in
``/stats``), never queued; a stalled one is cut after :data:`~hhrnet_rt.endpoints.http.SEND_TIMEOUT_S`.

Example:
    >>> import json, urllib.request
    >>> import numpy as np
    >>> from hhrnet_rt.endpoints import EndpointServer
    >>> view = LiveView(["cam"])
    >>> with EndpointServer(view.routes(), port=0) as server:
    ...     stats = json.load(urllib.request.urlopen(server.url + "/stats", timeout=5))
    >>> stats["streams"][0]["name"], stats["streams"][0]["frames"]
    ('cam', 0)
"""

from __future__ import annotations

import functools
import json
import re
import secrets
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import cv2
import numpy as np

from hhrnet_rt.core.redact import redact
from hhrnet_rt.endpoints.http import Reply, Route
from hhrnet_rt.endpoints.view_page import PAGE

#: The most frames a second a viewer gets of each stream: a browser needs no more, and encoding is work.
VIEW_FPS = 15.0
JPEG_QUALITY = 80
_BOUNDARY = b"hhrtframe"
_POLL_S = 0.25  # how often a waiting viewer checks that the view is still open


class LatestFrame:
    """One stream's newest picture: set by the pipeline without waiting, taken (encoded) by viewers."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._encode = threading.Lock()
        self.seq = 0  # frames published so far
        self.people = 0
        self._image: np.ndarray | None = None
        self._jpeg: tuple[int, bytes] = (0, b"")

    def publish(self, image: np.ndarray, people: int) -> None:
        """The pipeline's side: a reference and a count under a lock held for nothing else."""
        with self._cond:
            self._image, self.people = image, people
            self.seq += 1
            self._cond.notify_all()

    def wait_newer(self, seq: int, timeout: float) -> int:
        """The newest frame's number once it is past ``seq`` (or, after ``timeout``, whatever it is)."""
        with self._cond:
            self._cond.wait_for(lambda: self.seq > seq, timeout)
            return self.seq

    def newest(self) -> tuple[int, np.ndarray | None]:
        with self._cond:
            return self.seq, self._image

    def jpeg(self) -> tuple[int, bytes]:
        """The newest frame as JPEG (``b""``: none yet), encoded once for every viewer that asks."""
        with self._encode:
            seq, image = self.newest()
            if image is not None and self._jpeg[0] != seq:
                ok, data = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])
                self._jpeg = (seq, data.tobytes() if ok else b"")
            return self._jpeg


class _Drops:
    """Frames one stream's viewers missed because they were still sending an older one."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.counted = 0
        self.viewers = 0
        self.sending: dict[object, int] = {}  # viewer -> the frame it is sending now

    def connect(self, change: int) -> None:
        with self._lock:
            self.viewers += change

    def total(self, newest: int) -> int:
        """Counted drops plus what viewers stuck in a send have missed so far (the newest not yet)."""
        with self._lock:
            return self.counted + sum(max(0, newest - seq - 1) for seq in self.sending.values())

    def start(self, viewer: object, seq: int) -> None:
        with self._lock:
            self.sending[viewer] = seq

    def done(self, viewer: object, newest: int) -> None:
        with self._lock:
            seq = self.sending.pop(viewer, None)
            if seq is not None:
                self.counted += max(0, newest - seq - 1)


class LiveView:
    """The routes of the live view of streams ``names`` (see the module docstring).

    Args:
        names: how the page calls each stream (credentials in URLs are redacted).
        fps: the most frames a second each viewer gets of each stream.
    """

    def __init__(self, names: Sequence[str], *, fps: float = VIEW_FPS) -> None:
        self.names = [redact(str(name)) for name in names]
        self.fps = fps
        self.frames = [LatestFrame() for _ in self.names]
        self._drops = [_Drops() for _ in self.names]
        self._closed = threading.Event()
        self._runner: Any = None
        self.run_id = secrets.token_hex(4)  # the page starts afresh when a new run answers

    def attach(self, runner: Any) -> None:
        """Called by the runner as the run starts (``run_streams(..., monitor=...)``): its counters."""
        self._runner = runner

    def frame_hook(self, i: int, drawn: Callable[[Any], Any] | None = None) -> Callable[[Any], None]:
        """``on_frame`` for stream ``i``: hands its annotated frames (``FrameResult``) to the view.

        Args:
            drawn: ``poses -> (P,) bool``, the people on the picture (``PoseAnnotator.drawn``), so the page
                counts what it shows, as the HUD does; ``None``: every person of the frame.
        """
        latest = self.frames[i]

        def hook(result: Any) -> None:
            people = len(result.poses) if drawn is None else int(drawn(result.poses).sum())
            latest.publish(result.image, people)

        return hook

    def close(self) -> None:
        """End every stream being served (their viewers' requests finish)."""
        self._closed.set()

    def routes(self) -> dict[str, Route]:
        routes: dict[str, Route] = {
            "/": lambda: Reply(
                200, "text/html; charset=utf-8", PAGE, headers=(("Cache-Control", "no-store"),)
            ),
            "/stats": lambda: Reply(
                200,
                "application/json",
                json.dumps(self.stats()).encode(),
                headers=(("Cache-Control", "no-store"),),
            ),  # fmt: skip
        }
        for i in range(len(self.names)):
            routes[f"/stream/{i}"] = functools.partial(self._stream_reply, i)
            routes[f"/snapshot/{i}.png"] = functools.partial(self._snapshot, i)
        return routes

    # -- what the routes answer ----------------------------------------------------------------------------
    def stats(self) -> dict[str, Any]:
        """The page's numbers: per stream, the pipeline's meters and the view's own."""
        streams = getattr(self._runner, "streams", None) or [None] * len(self.names)
        out = []
        for i, (name, st) in enumerate(zip(self.names, streams, strict=True)):
            latest = self.frames[i]
            source: Any = getattr(st, "source", None)
            state = getattr(st, "state", "starting")
            if state == "running" and getattr(source, "state", None) in ("connecting", "reconnecting"):
                state = source.state
            out.append({
                "name": name,
                "state": state,
                "fps": round(st.rolling.fps, 2) if st is not None else 0.0,
                "latency_ms": round(st.rolling.latency_ms, 1) if st is not None else 0.0,
                "people": latest.people,
                "frames": latest.seq,
                "dropped": self._drops[i].total(latest.seq),
                "skipped": getattr(st, "dropped", 0),
                "reconnects": int(getattr(source, "reconnects", 0)),
                "viewers": self._drops[i].viewers,
            })  # fmt: skip
        return {"run": self.run_id, "view_fps": self.fps, "streams": out}

    def _stream_reply(self, i: int) -> Reply:
        content_type = f"multipart/x-mixed-replace; boundary={_BOUNDARY.decode()}"
        return Reply(200, content_type, chunks=self._mjpeg(i))

    def _mjpeg(self, i: int) -> Iterator[bytes]:
        """The stream's frames as MJPEG parts, the newest each time, paced to ``fps``. Each part ends with
        the next boundary: browsers show a part once they see the boundary after it."""
        latest, drops, viewer = self.frames[i], self._drops[i], object()
        sent, next_at = 0, 0.0
        drops.connect(+1)
        try:
            yield b"--" + _BOUNDARY + b"\r\n"
            while not self._closed.is_set():
                wait = next_at - time.monotonic()
                if wait > 0:
                    self._closed.wait(wait)
                if latest.wait_newer(sent, _POLL_S) <= sent:
                    continue
                seq, jpeg = latest.jpeg()
                if not jpeg:
                    continue
                next_at = time.monotonic() + 1.0 / self.fps
                drops.start(viewer, seq)
                head = f"Content-Type: image/jpeg\r\nContent-Length: {len(jpeg)}\r\n\r\n".encode()
                yield head + jpeg + b"\r\n--" + _BOUNDARY + b"\r\n"  # returns once the client took it
                drops.done(viewer, latest.seq)
                sent = seq
        finally:  # the client went away (or stalled past the timeout), or the view closed
            drops.done(viewer, latest.seq)
            drops.connect(-1)

    def _snapshot(self, i: int) -> Reply:
        seq, image = self.frames[i].newest()
        if image is None:
            return Reply(503, "text/plain; charset=utf-8", b"no frame yet\n")
        ok, data = cv2.imencode(".png", image)
        if not ok:
            return Reply(500, "text/plain; charset=utf-8", b"the frame could not be encoded\n")
        filename = f"hhrt-{_file_safe(self.names[i])}-{seq}.png"
        return Reply(200, "image/png", data.tobytes(),
                     headers=(("Content-Disposition", f'attachment; filename="{filename}"'),
                              ("Cache-Control", "no-store")))  # fmt: skip


def _file_safe(name: str) -> str:
    """A stream name as part of a file name (no path separators, quotes or spaces)."""
    return re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("._")[:60] or "stream"
