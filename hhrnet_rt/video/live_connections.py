"""One connection of a live source: a stream URL through FFmpeg (PyAV) or a local camera through OpenCV.

:class:`~hhrnet_rt.video.live.LiveSource` opens one of these per connection and replaces it when it is
lost. A connection raises :class:`Lost` (with the reason in words, credentials redacted) when it cannot
be opened or breaks off, :class:`Refused` when the answer says the stream is not there at all.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from hhrnet_rt.core.redact import redact
from hhrnet_rt.video.capture_setup import quiet_opencv, request_format
from hhrnet_rt.video.reconnect import ReconnectPolicy
from hhrnet_rt.video.sources import camera_not_opened

# FFmpeg reads about this much of a stream before it reports its format: short, so a reconnect does not
# wait for seconds of probing (the default analyses 5 s of a stream).
_PROBE_OPTIONS = {"analyzeduration": "1000000", "probesize": "1000000"}


class Lost(Exception):
    """A connection attempt or a connection failed; the text says why (for the outage's reason)."""


class Refused(Lost):
    """The stream is not there or not for us: a server's HTTP 400/401/403/404, a camera index that does not
    open. On the first try that is a wrong URL, missing credentials or a wrong index, said at once instead
    of retried forever; after the stream was up, a restarting server (a camera replugged) may answer so for
    a while, and it is retried."""


def _permanent_errors() -> tuple[type[BaseException], ...]:
    import av

    err = av.error
    return (err.HTTPBadRequestError, err.HTTPUnauthorizedError, err.HTTPForbiddenError, err.HTTPNotFoundError)


class AvConnection:
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
            lost = Refused if isinstance(exc, _permanent_errors()) else Lost
            raise lost(_reason(exc, f"no answer within {policy.open_timeout_s:g} s")) from None
        if not self._container.streams.video:
            self._container.close()
            raise Lost("the stream has no video")
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
                raise Lost(f"stalled: packets but no picture for {self._stall_s:g} s")

    def read(self) -> np.ndarray | None:
        """The next picture; ``None`` at the end of the stream; raises :class:`Lost` on an error."""
        import av

        try:
            return next(self._frames, None)
        except (av.error.FFmpegError, OSError) as exc:
            raise Lost(_reason(exc, f"stalled: no data for {self._stall_s:g} s")) from None

    def close(self) -> None:
        self._container.close()


class CameraConnection:
    """One opening of a local camera through OpenCV, with the size and rate asked for."""

    finite = False
    failures = 0

    def __init__(self, index: int, request: tuple[int | None, int | None, float | None]) -> None:
        import cv2

        with quiet_opencv():  # a missing camera is said in one line, not in OpenCV's ten
            self._cap = cv2.VideoCapture(index)
        if not self._cap.isOpened():
            self._cap.release()
            raise Refused(camera_not_opened(index))
        width, height, fps = request
        self.size, got_fps, self.warning = request_format(self._cap, width=width, height=height, fps=fps)
        self.fps = got_fps if got_fps and 1.0 <= got_fps <= 1000.0 else None

    def read(self) -> np.ndarray | None:
        ok, image = self._cap.read()
        if not ok or image is None:
            raise Lost("the camera stopped delivering frames")
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
