"""Frame sources: video files (PyAV, lossless and in order), cameras and stream URLs (OpenCV, live).

A source (the :class:`~hhrnet_rt.video.stages.Source` protocol) has ``live``, ``fps``, ``size``,
``frame_count``, ``decode_failures``, ``description``, ``read() -> Frame | None`` (``None`` at the end) and
``close()``. ``live`` tells the pipeline which policy to use: live sources keep only the newest frame when
inference falls behind; file sources lose nothing.

Files are read with PyAV rather than ``cv2.VideoCapture`` because PyAV gives presentation timestamps and
lets a packet that fails to decode be counted and skipped instead of ending the stream silently.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterable, Sized
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from hhrnet_rt.core.errors import InputError
from hhrnet_rt.core.inputs import check_input_file, is_regular_file
from hhrnet_rt.video.capture_setup import quiet_opencv, request_format
from hhrnet_rt.video.file_decoder import StreamDecoder

DEFAULT_FPS = 30.0
#: Addresses FFmpeg opens itself (``hhrt video URL``); anything else is a local path.
URL_SCHEMES = ("http://", "https://", "rtsp://", "rtsps://", "rtmp://")
# Seconds FFmpeg may wait to open a URL / for the next data, so a dead server ends the run with a message.
URL_TIMEOUT_S = (15.0, 30.0)


def is_url(spec: object) -> bool:
    """A stream address FFmpeg opens (the scheme decides, case-insensitive as URLs are)."""
    return isinstance(spec, str) and spec.lower().startswith(URL_SCHEMES)


@dataclass(frozen=True)
class Frame:
    """One captured picture.

    Attributes:
        index: position in the source. For files, frames that failed to decode are not counted, so the
            output has indices 0..N-1. For live sources the index counts every captured frame, so frames
            dropped by the newest-frame policy show up as gaps.
        timestamp: seconds. Files: from the frame's pts, relative to the first frame. Live: capture time
            since the source was opened.
        image: (H, W, 3) uint8 BGR.
        t_capture: ``time.perf_counter()`` when the frame was read; the pipeline measures latency from it.
    """

    index: int
    timestamp: float
    image: np.ndarray
    t_capture: float


def next_timestamp(previous: float | None, raw: float, tick: float) -> float:
    """The one rule for a frame's time, which the JSON lines and the mp4 both write: strictly increasing.
    A frame whose time is not at least one ``tick`` (the input's time base) after the previous frame's
    (a duplicate or backwards pts, as muxers and cameras produce) gets the previous time plus one tick."""
    if previous is None or raw - previous >= tick * 0.999:  # pts are whole ticks; floats are not exact
        return raw
    return previous + tick


class FileSource:
    """A video file decoded with PyAV: every decodable frame, in order.

    Args:
        path: the video file, or an ``http(s)://`` / ``rtsp://`` / ``rtmp://`` address read with FFmpeg
            (every frame, in order, as for a file: a live stream is processed at the rate inference keeps
            up with; ``CameraSource`` keeps only the newest frame instead).

    Raises:
        InputError: the file is missing, is not a video FFmpeg can read, has no video stream, or has no
            frame that decodes; a URL cannot be opened within ``URL_TIMEOUT_S``.

    Example:
        >>> src = FileSource("walk.mp4")            # doctest: +SKIP
        >>> while (frame := src.read()) is not None: ...  # doctest: +SKIP
    """

    live = False

    def __init__(self, path: str | Path) -> None:
        import av  # heavy: only when a file is actually read

        url = is_url(path)
        # a FIFO or /dev/stdin: a clear refusal, no hang (URLs are FFmpeg's to check)
        local = None if url else check_input_file(path, "video file")
        self.path: str | Path = path if local is None else local
        self.name = url_name(str(path)) if local is None else local.name
        try:
            self._container = (
                av.open(str(self.path), timeout=URL_TIMEOUT_S) if url else av.open(str(self.path))
            )
        except av.error.EOFError:
            raise InputError(
                f"{self.path} contains no video frames (the file ends before the first one)"
            ) from None
        except (av.error.FFmpegError, OSError, UnicodeDecodeError) as exc:
            if local is None:
                raise InputError(f"could not read the stream {self.path} ({exc})") from None
            if local.stat().st_size == 0:
                raise InputError(f"{self.path} is empty (0 bytes), not a video") from None
            raise InputError(f"{self.path} is not a video file that FFmpeg can read ({exc})") from None
        if not self._container.streams.video:
            kinds = sorted({s.type for s in self._container.streams})
            self._container.close()
            if not kinds:  # e.g. an mp4 whose only track never received a sample
                raise InputError(f"{self.path} contains no video frames")
            raise InputError(f"{self.path} has no video stream (only {', '.join(kinds)})")
        self._stream = self._container.streams.video[0]
        self._decoder = StreamDecoder(self._container, self._stream)
        self.time_base = self._stream.time_base  # of the pts; sinks write the output's pts in it
        rate = self._stream.average_rate or self._stream.guessed_rate
        self.fps = float(rate) if rate else DEFAULT_FPS
        self.rate = rate  # exact Fraction when the container knows it; sinks reuse it for the output
        self._index = 0
        self._t0: float | None = None
        self._last_timestamp: float | None = None
        self.rotation = 0  # degrees counter-clockwise applied to the stored pixels (0, 90, 180, 270)
        self._frames = self._decoder.frames()
        self._peeked = self._next_image()  # decode one frame now so an empty video fails here, clearly
        if self._peeked is None:
            self.close()
            detail = f" ({self.decode_failures} failed to decode)" if self.decode_failures else ""
            raise InputError(f"{self.path} contains no video frames{detail}")
        height, width = self._peeked[1].shape[:2]
        self.size = (width, height)  # upright: after the rotation below
        self.frame_count, self._count_is_exact = self._announced_frames()
        turned = f", turned {self.rotation}°" if self.rotation else ""
        self.description = f"{self.name} ({width}x{height}, {self.fps:.3g} fps{turned})"

    def _announced_frames(self) -> tuple[int | None, bool]:
        """(frames the container announces, whether that is a count rather than duration x rate)."""
        if self._stream.frames:
            return int(self._stream.frames), True
        seconds = None
        if self._stream.duration and self._stream.time_base:
            seconds = float(self._stream.duration * self._stream.time_base)
        elif self._container.duration:  # Matroska keeps the duration on the segment, not the track
            seconds = self._container.duration / 1_000_000  # AV_TIME_BASE
        n = round(seconds * self.fps) if seconds else 0
        return (n, False) if n > 0 else (None, False)

    def shortfall_warning(self, frames_read: int) -> str | None:
        """A message when a whole read gave fewer frames than the container announced, else ``None``.

        A file cut short keeps the header that announces every frame; FFmpeg just stops early. A count
        estimated from duration x rate may be off by one frame of rounding, so that much is tolerated.
        """
        if self.frame_count is None:
            return None
        if frames_read >= self.frame_count - (0 if self._count_is_exact else 1):
            return None
        announced = (
            f"{self.frame_count} frames" if self._count_is_exact else f"about {self.frame_count} frames"
        )
        failed = f" ({self.decode_failures} could not be decoded)" if self.decode_failures else ""
        return (
            f"{self.name}: the container announces {announced} but {frames_read} were read{failed}; "
            "the file is probably cut short or damaged"
        )

    @property
    def frames_read(self) -> int:
        """Frames delivered by :meth:`read` so far (what a run that stopped early did read)."""
        return self._index

    @property
    def decode_failures(self) -> int:
        """Packets of the input that could not be decoded and were skipped (so far)."""
        return self._decoder.failures

    def _next_image(self) -> tuple[float | None, np.ndarray] | None:
        for frame in self._frames:
            image = frame.to_ndarray(format="bgr24")
            # Phones store portrait video as landscape pixels plus a display rotation (counter-clockwise
            # degrees). Turn the pixels upright: the network expects upright people, the keypoints then
            # match what players show, and the output needs no rotation metadata of its own.
            self.rotation = round(frame.rotation / 90) % 4 * 90 if frame.rotation else 0
            if self.rotation:
                image = np.ascontiguousarray(np.rot90(image, self.rotation // 90))
            return frame.time, image
        return None

    def read(self) -> Frame | None:
        """The next decodable frame, or ``None`` at the end of the file."""
        item: tuple[float | None, np.ndarray] | None
        if self._peeked is not None:
            item, self._peeked = self._peeked, None
        else:
            item = self._next_image()
        if item is None:
            return None
        pts_time, image = item
        if pts_time is not None and not math.isnan(pts_time) and self._t0 is None:
            self._t0 = pts_time
        if pts_time is None or self._t0 is None or math.isnan(pts_time):
            timestamp = self._index / self.fps
        else:
            timestamp = pts_time - self._t0
        tick = float(self.time_base) if self.time_base else 1.0 / self.fps
        timestamp = self._last_timestamp = next_timestamp(self._last_timestamp, float(timestamp), tick)
        frame = Frame(self._index, timestamp, image, time.perf_counter())
        self._index += 1
        return frame

    def close(self) -> None:
        self._container.close()


def url_name(url: str) -> str:
    """The last part of a URL's path (``clip.mp4`` of ``http://host/v/clip.mp4?x=1``), else the host."""
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    return Path(parts.path).name or parts.hostname or url


class CameraSource:
    """A camera index, stream URL, or (for testing live behaviour) a file played in real time, via OpenCV.

    Args:
        spec: camera index (``0``), URL (``rtsp://...``), or a local video path.
        pace: sleep between frames to hold the source's frame rate. Defaults to on for local files (so a
            file behaves like a camera) and off for cameras and URLs (they pace themselves).
        width, height, fps: the frame size and rate to ask the camera for (``None``: its default). A
            camera may pick the nearest mode it has; ``size``/``fps`` say what it delivers and ``warning``
            what differs from the request (``None`` when nothing does).

    Raises:
        InputError: the camera or stream does not open, or a requested size or rate is not positive.
    """

    live = True

    def __init__(
        self,
        spec: int | str,
        *,
        pace: bool | None = None,
        width: int | None = None,
        height: int | None = None,
        fps: float | None = None,
    ) -> None:
        import cv2

        for name, value in (("width", width), ("height", height), ("fps", fps)):
            if value is not None and not value > 0:
                raise InputError(f"CameraSource {name} must be positive, got {value}")
        self.spec = spec
        is_file = isinstance(spec, str) and "://" not in spec and is_regular_file(spec)
        self._pace = is_file if pace is None else pace
        with quiet_opencv():  # a missing camera is said in one line below, not in OpenCV's ten
            self._cap = cv2.VideoCapture(spec)
        if not self._cap.isOpened():
            self._cap.release()
            if isinstance(spec, int):
                raise InputError(
                    f"camera {spec} could not be opened: check that it is connected and not used by another "
                    "program (on Linux, `ls /dev/video*` lists cameras), or pass a video file or stream URL"
                )
            raise InputError(f"could not open the stream {spec!r}: check the URL or path")
        self.size, got_fps, self.warning = request_format(self._cap, width=width, height=height, fps=fps)
        self.fps = got_fps if got_fps and 1.0 <= got_fps <= 1000.0 else DEFAULT_FPS
        self.rate = None
        self.frame_count: int | None = None
        self.decode_failures = 0
        self.description = f"camera {spec}" if isinstance(spec, int) else str(spec)
        self._index = 0
        # The clock starts at the first read, not here: the CLI opens the source before loading the model
        # (seconds), and a paced file must not count that time as frames it is already late for.
        self._t0: float | None = None

    def read(self) -> Frame | None:
        """The next frame from the device, or ``None`` when the stream ends or the camera goes away."""
        if self._t0 is None:
            self._t0 = time.perf_counter()
        if self._pace:
            delay = self._t0 + self._index / self.fps - time.perf_counter()
            if delay > 0:
                time.sleep(delay)
        ok, image = self._cap.read()
        if not ok or image is None:
            return None
        now = time.perf_counter()
        frame = Frame(self._index, now - self._t0, image, now)
        self._index += 1
        return frame

    def close(self) -> None:
        self._cap.release()


class ArraySource:
    """Frames from an iterable of BGR arrays, for library users and tests.

    Args:
        images: (H, W, 3) uint8 BGR arrays.
        fps: nominal frame rate; used for timestamps and the output video.
        live: use the live policy (newest frame wins) instead of the lossless one.
    """

    def __init__(self, images: Iterable[np.ndarray], *, fps: float = DEFAULT_FPS, live: bool = False) -> None:
        self._images = iter(images)
        self.fps = float(fps)
        self.rate = None
        self.live = live
        self.size: tuple[int, int] | None = None
        self.frame_count = len(images) if isinstance(images, Sized) else None
        self.decode_failures = 0
        self.description = "arrays"
        self._index = 0

    def read(self) -> Frame | None:
        image = next(self._images, None)
        if image is None:
            return None
        frame = Frame(self._index, self._index / self.fps, image, time.perf_counter())
        self._index += 1
        return frame

    def close(self) -> None:
        pass


def open_source(spec: int | str | Path) -> FileSource | CameraSource:
    """Open a camera (int or digit string), a stream URL (``scheme://``), or a video file.

    Raises:
        InputError: see :class:`FileSource` and :class:`CameraSource`.
    """
    if isinstance(spec, int) or (isinstance(spec, str) and spec.isdigit()):
        return CameraSource(int(spec))
    if isinstance(spec, str) and "://" in spec:
        return CameraSource(spec)
    return FileSource(spec)
