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
a wrong URL or index is the likely cause. An HTTP(S) URL whose container announces a duration is a file on a web server: it ends at its end and is
never reconnected.
"""

from __future__ import annotations

import threading
import time
from typing import Any

import numpy as np

from hhrnet_rt.core.errors import InputError, StreamLostError
from hhrnet_rt.core.redact import redact
from hhrnet_rt.video.capture_setup import quiet_opencv, request_format
from hhrnet_rt.video.reconnect import Outage, ReconnectPolicy
from hhrnet_rt.video.sources import DEFAULT_FPS, Frame, camera_not_opened, url_name

# FFmpeg reads about this much of a stream before it reports its format: short, so a reconnect does not
# wait for seconds of probing (the default analyses 5 s of a stream).
_PROBE_OPTIONS = {"analyzeduration": "1000000", "probesize": "1000000"}


class _Lost(Exception):
    """A connection attempt or a connection failed; the text says why (for the outage's reason)."""


class _Refused(_Lost):
    """The stream is not there or not for us: a server's HTTP 400/401/403/404, a camera index that does not
    open. On the first try that is a wrong URL, missing credentials or a wrong index, said at once instead
    of retried forever; after the stream was up, a restarting server (a camera replugged) may answer so for
    a while, and it is retried."""


def _permanent_errors() -> tuple[type[BaseException], ...]:
    import av

    err = av.error
    return (err.HTTPBadRequestError, err.HTTPUnauthorizedError, err.HTTPForbiddenError, err.HTTPNotFoundError)


class _AvConnection:
    """One connection to a stream URL: decoded BGR images until the end, errors as exceptions."""

    def __init__(self, url: str, policy: ReconnectPolicy) -> None:
        import av

        options = dict(_PROBE_OPTIONS)
        if url.lower().startswith(("rtsp://", "rtsps://")):
            options["rtsp_transport"] = "tcp"  # lost UDP packets smear the picture; TCP resends them
        try:
            self._container = av.open(
                url, timeout=(policy.open_timeout_s, policy.stall_timeout_s), options=options
            )
        except (av.error.FFmpegError, OSError) as exc:
            lost = _Refused if isinstance(exc, _permanent_errors()) else _Lost
            raise lost(_reason(exc, f"no answer within {policy.open_timeout_s:g} s")) from None
        if not self._container.streams.video:
            self._container.close()
            raise _Lost("the stream has no video")
        self._stream = self._container.streams.video[0]
        rate = self._stream.average_rate or self._stream.guessed_rate
        self.fps = float(rate) if rate and 1.0 <= float(rate) <= 1000.0 else None
        ctx = self._stream.codec_context
        self.size = (ctx.width, ctx.height) if ctx.width > 0 and ctx.height > 0 else None
        self.finite = self._container.duration is not None  # a file served over HTTP, not a live stream
        self.failures = 0  # packets that did not decode (a live stream's damaged packets are skipped)
        self._stall_s = policy.stall_timeout_s
        self._frames = self._decode()

    def _decode(self) -> Any:
        import av

        last = time.monotonic()
        for packet in self._container.demux(self._stream):  # network errors and timeouts raise here
            if packet.size == 0:
                continue
            try:
                frames = packet.decode()
            except av.error.FFmpegError:
                self.failures += 1
                frames = []
            for frame in frames:
                last = time.monotonic()
                yield frame.to_ndarray(format="bgr24")
            if time.monotonic() - last > self._stall_s:  # data comes, pictures do not
                raise _Lost(f"stalled: packets but no picture for {self._stall_s:g} s")

    def read(self) -> np.ndarray | None:
        """The next picture; ``None`` at the end of the stream; raises :class:`_Lost` on an error."""
        import av

        try:
            return next(self._frames, None)
        except (av.error.FFmpegError, OSError) as exc:
            raise _Lost(_reason(exc, f"stalled: no data for {self._stall_s:g} s")) from None

    def close(self) -> None:
        self._container.close()


class _CameraConnection:
    """One opening of a local camera through OpenCV, with the size and rate asked for."""

    finite = False
    failures = 0

    def __init__(self, index: int, request: tuple[int | None, int | None, float | None]) -> None:
        import cv2

        with quiet_opencv():  # a missing camera is said in one line, not in OpenCV's ten
            self._cap = cv2.VideoCapture(index)
        if not self._cap.isOpened():
            self._cap.release()
            raise _Refused(camera_not_opened(index))
        width, height, fps = request
        self.size, got_fps, self.warning = request_format(self._cap, width=width, height=height, fps=fps)
        self.fps = got_fps if got_fps and 1.0 <= got_fps <= 1000.0 else None

    def read(self) -> np.ndarray | None:
        ok, image = self._cap.read()
        if not ok or image is None:
            raise _Lost("the camera stopped delivering frames")
        return image

    def close(self) -> None:
        self._cap.release()


def _reason(exc: BaseException, timed_out: str) -> str:
    """An FFmpeg error in words, without the URL it quotes (the stream is named elsewhere); ``timed_out``
    is what PyAV's timeout interrupting FFmpeg means where it happened."""
    text = getattr(exc, "strerror", None) or str(exc) or type(exc).__name__
    if "Immediate exit requested" in text:
        return timed_out
    return redact(text)


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
        self._conn: Any = None  # _AvConnection or _CameraConnection
        self._stop = threading.Event()
        self._t0: float | None = None  # the clock starts at the first read (the model loads after opening)
        self._index = self._connection = 0
        self._last_t = 0.0  # timestamp of the newest frame
        self._last_frame_at: float | None = None  # perf_counter of it (for readiness)
        self._last_error: str | None = None  # of the newest failed try to come back
        try:
            conn = self._connect()
        except _Lost as exc:
            if not self.policy.enabled or isinstance(exc, _Refused):
                said = str(exc) if isinstance(spec, int) else f"could not open {self.description}: {exc}"
                raise InputError(said) from None
            self.outages.append(Outage(0.0, str(exc), attempts=1))
            self.warning = f"{self.description}: {exc}; retrying in the background"
        else:
            if isinstance(conn, _CameraConnection):
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
            except _Lost as exc:
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
            conn = _CameraConnection(self.spec, self._request)
        else:
            conn = _AvConnection(str(self.spec), self.policy)
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
            except _Lost as exc:
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
