"""Live sources that come back: stream URLs through FFmpeg (PyAV), local cameras through OpenCV.

:class:`LiveSource` is a :class:`~hhrnet_rt.video.stages.Source` whose ``read`` survives the stream going
away: on an error, an end, or no frame for ``stall_timeout_s``, it closes the connection, records an
:class:`~hhrnet_rt.video.reconnect.Outage` and opens a new connection on the
:class:`~hhrnet_rt.video.reconnect.ReconnectPolicy`'s backoff, until a frame comes again (the outage then
ends) or the policy gives up (:class:`~hhrnet_rt.core.errors.StreamLostError`: the stream failed).

Why URLs go through PyAV rather than OpenCV: FFmpeg's interrupt callback bounds every open and every
read (PyAV's ``timeout``), so a server that accepts the connection and then sends nothing ends the read
after ``stall_timeout_s`` instead of blocking the capture thread for good; and an end of stream is told
apart from an error. Cameras stay with OpenCV, which asks them for a size and rate (V4L2, DirectShow,
AVFoundation) where FFmpeg's device inputs differ per platform.

Frames keep real timestamps: seconds on one clock that starts at the first ``read`` and runs through
outages, so the gap of an outage shows in the timestamps; ``index`` keeps counting across reconnects.
A first connection that fails is retried the same way after one warning, unless the answer says the
stream is not there (an HTTP 400/401/403/404, a camera index that does not open): that is said at once, as
a wrong URL or index is the likely cause. An HTTP(S) URL whose container announces a duration is a file
on a web server: it ends at its end and is never reconnected. One connection is
:mod:`hhrnet_rt.video.live_connections`.
"""

from __future__ import annotations

import threading
import time
from typing import Any

import numpy as np

from hhrnet_rt.core.errors import InputError, StreamLostError
from hhrnet_rt.core.redact import redact
from hhrnet_rt.video.live_connections import AvConnection, CameraConnection, Lost, Refused
from hhrnet_rt.video.reconnect import Outage, ReconnectPolicy
from hhrnet_rt.video.sources import DEFAULT_FPS, Frame, url_name


class LiveSource:
    """A camera (an index) or a stream URL that reconnects on loss (see the module docstring).

    Args:
        spec: camera index (``0``) or URL (``rtsp://``, ``rtmp://``, ``http(s)://``, ``udp://``, ``srt://``).
        policy: when to try again; ``ReconnectPolicy(enabled=False)`` for the old behaviour (a stream that
            ends ends; one that errs fails).
        lossless: keep every frame (``live`` false: the pipeline waits instead of dropping; ``hhrt video``)
            rather than only the newest (``hhrt webcam``).
        width, height, fps: asked of a camera (a URL delivers what its server sends).

    Attributes:
        outages: every outage so far, oldest first (the last one may still be going on).
        state: ``"connecting"``, ``"live"``, ``"reconnecting"``, ``"ended"`` or ``"failed"``.
        warning: what the user should know after opening (a first connection that failed and is being
            retried, a camera that gives another size than asked), else ``None``.

    Raises:
        InputError: reconnecting is off and the first connection fails; a bad size request.
    """

    def __init__(
        self, spec: int | str, *, policy: ReconnectPolicy | None = None, lossless: bool = False,
        width: int | None = None, height: int | None = None, fps: float | None = None,
    ) -> None:  # fmt: skip
        for what, value in (("width", width), ("height", height), ("fps", fps)):
            if value is not None and not value > 0:
                raise InputError(f"LiveSource {what} must be positive, got {value}")
        self.spec, self.policy = spec, policy or ReconnectPolicy()
        self.live = not lossless
        self.description = f"camera {spec}" if isinstance(spec, int) else redact(str(spec))
        self.name = f"camera{spec}" if isinstance(spec, int) else redact(url_name(str(spec)))
        self._request = (width, height, fps)
        self.fps, self.rate, self.frame_count = DEFAULT_FPS, None, None
        self.size: tuple[int, int] | None = None
        self.outages: list[Outage] = []
        self.state, self.warning = "connecting", None
        self._failures_before = 0  # undecodable packets of the connections already closed
        self._conn: Any = None  # AvConnection or CameraConnection
        self._stop = threading.Event()
        self._t0: float | None = None  # the clock starts at the first read (the model loads after opening)
        self._index = self._connection = 0
        self._last_t = 0.0  # timestamp of the newest frame
        self._last_frame_at: float | None = None  # perf_counter of it (for readiness)
        self._last_error: str | None = None  # of the newest failed try to come back
        try:
            conn = self._connect()
        except Lost as exc:
            if not self.policy.enabled or isinstance(exc, Refused):
                said = str(exc) if isinstance(spec, int) else f"could not open {self.description}: {exc}"
                raise InputError(said) from None
            self.outages.append(Outage(0.0, str(exc), attempts=1))
            self.warning = f"{self.description}: {exc}; retrying in the background"
        else:
            if isinstance(conn, CameraConnection):
                self.warning = conn.warning
        if isinstance(spec, str) and any(v is not None for v in self._request):
            self.warning = "; ".join(
                w for w in (self.warning, "a stream URL delivers the size and rate its server sends") if w
            )

    # -- what the pipeline and the monitor read ----------------------------------------------------------
    @property
    def decode_failures(self) -> int:
        return self._failures_before + (self._conn.failures if self._conn is not None else 0)

    @property
    def reconnects(self) -> int:
        """Outages the stream came back from."""
        return sum(o.end is not None for o in self.outages)

    def now(self) -> float:
        """The current time on the frames' clock."""
        return 0.0 if self._t0 is None else time.perf_counter() - self._t0

    def seconds_since_frame(self) -> float | None:
        """Seconds since the newest frame arrived (``None`` before the first)."""
        return None if self._last_frame_at is None else time.perf_counter() - self._last_frame_at

    # -- reading -----------------------------------------------------------------------------------------
    def read(self) -> Frame | None:
        """The next frame, reconnecting as the policy says; ``None`` at the end of a stream that ended
        (a finite file over HTTP; a live stream with reconnecting off) or after :meth:`interrupt`.

        Raises:
            StreamLostError: the stream broke off and the policy gave up on it.
        """
        if self._t0 is None:
            self._t0 = time.perf_counter()
        while not self._stop.is_set():
            if self._conn is None and not self._come_back():
                return None
            try:
                image = self._conn.read()
            except Lost as exc:
                reason, ended = str(exc), False
            else:
                if image is not None:
                    return self._deliver(image)
                reason, ended = "the stream ended", True
            if not self._lose(reason, ended):
                return None
        return None

    def _connect(self) -> Any:
        conn: Any
        if isinstance(self.spec, int):
            conn = CameraConnection(self.spec, self._request)
        else:
            conn = AvConnection(str(self.spec), self.policy)
        self._conn = conn
        self.fps = conn.fps or self.fps
        self.size = conn.size or self.size
        if self._index:  # frames came before: the next ones come after an outage
            self._connection += 1
        return conn

    def _deliver(self, image: np.ndarray) -> Frame:
        now = time.perf_counter()
        assert self._t0 is not None  # read() started the clock
        t = now - self._t0
        if self.outages and self.outages[-1].end is None:
            self.outages[-1].end = t
        self.state = "live"
        self.size = (image.shape[1], image.shape[0])
        frame = Frame(self._index, t, image, now, self._connection)
        self._index += 1
        self._last_t, self._last_frame_at = t, now
        return frame

    def _close_connection(self) -> None:
        if self._conn is not None:
            self._failures_before += self._conn.failures
            self._conn.close()
            self._conn = None

    def _lose(self, reason: str, ended: bool) -> bool:
        """The connection is gone: ``True`` to try again, ``False`` when the stream simply ended."""
        finite = self._conn.finite
        self._close_connection()
        if finite or (ended and not self.policy.enabled):
            self.state = "ended"
            return False
        if not self.policy.enabled:
            self.state = "failed"
            raise StreamLostError(
                f"{self.description} broke off ({reason}); not reconnecting (reconnect off)"
            )
        if not self.outages or self.outages[-1].end is not None:
            self.outages.append(Outage(self._last_t, reason))
        self.state = "reconnecting"
        return True

    def _come_back(self) -> bool:
        """Open a new connection on the backoff; ``False`` if interrupted first."""
        outage = self.outages[-1]
        while True:
            if outage.attempts and self.policy.gives_up_after(outage.attempts):
                self.state = "failed"
                last = f"; last try: {self._last_error}" if self._last_error else ""
                raise StreamLostError(
                    f"{self.description} did not come back after {outage.attempts} attempts "
                    f"({outage.reason}{last})"
                )
            if self._stop.wait(self.policy.delay_s(outage.attempts)):
                return False
            outage.attempts += 1
            outage.last_try = self.now()
            try:
                self._connect()
            except Lost as exc:
                self._last_error = str(exc)
                continue
            self.state = "live"
            return True

    def interrupt(self) -> None:
        """End a wait for the next try at once (the run is stopping); a read in FFmpeg ends within its
        timeout."""
        self._stop.set()

    def close(self) -> None:
        self._stop.set()
        self._close_connection()
