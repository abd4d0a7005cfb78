"""Frame sources: video files (PyAV, lossless and in order), cameras and stream URLs (OpenCV, live).

A source is anything with ``live``, ``fps``, ``size``, ``frame_count``, ``decode_failures``, ``description``,
``read() -> Frame | None`` (``None`` at the end) and ``close()``. ``live`` tells the pipeline which policy
to use: live sources keep only the newest frame when inference falls behind; file sources lose nothing.

Files are read with PyAV rather than ``cv2.VideoCapture`` because PyAV gives presentation timestamps and
lets a packet that fails to decode be counted and skipped instead of ending the stream silently.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from hhrnet_rt.errors import InputError
from hhrnet_rt.inputs import check_input_file, is_regular_file

DEFAULT_FPS = 30.0


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


class FileSource:
    """A video file decoded with PyAV: every decodable frame, in order.

    Args:
        path: the video file.

    Raises:
        InputError: the file is missing, is not a video FFmpeg can read, has no video stream, or has no
            frame that decodes.

    Example:
        >>> src = FileSource("walk.mp4")            # doctest: +SKIP
        >>> while (frame := src.read()) is not None: ...  # doctest: +SKIP
    """

    live = False

    def __init__(self, path: str | Path) -> None:
        import av  # heavy: only when a file is actually read

        self.path = check_input_file(path, "video file")  # a FIFO or /dev/stdin: a clear refusal, no hang
        try:
            self._container = av.open(str(self.path))
        except av.error.EOFError:
            raise InputError(
                f"{self.path} contains no video frames (the file ends before the first one)"
            ) from None
        except (av.error.FFmpegError, OSError, UnicodeDecodeError) as exc:
            if self.path.stat().st_size == 0:
                raise InputError(f"{self.path} is empty (0 bytes), not a video") from None
            raise InputError(f"{self.path} is not a video file that FFmpeg can read ({exc})") from None
        if not self._container.streams.video:
            kinds = sorted({s.type for s in self._container.streams})
            self._container.close()
            if not kinds:  # e.g. an mp4 whose only track never received a sample
                raise InputError(f"{self.path} contains no video frames")
            raise InputError(f"{self.path} has no video stream (only {', '.join(kinds)})")
        self._stream = self._container.streams.video[0]
        self._stream.thread_type = "AUTO"  # frame threads in the decoder: capture keeps up with 1080p
        rate = self._stream.average_rate or self._stream.guessed_rate
        self.fps = float(rate) if rate else DEFAULT_FPS
        self.rate = rate  # exact Fraction when the container knows it; sinks reuse it for the output
        self.decode_failures = 0
        self._index = 0
        self._t0: float | None = None
        self._frames = self._decoded_frames()
        self._peeked = self._next_image()  # decode one frame now so an empty video fails here, clearly
        if self._peeked is None:
            self.close()
            detail = f" ({self.decode_failures} failed to decode)" if self.decode_failures else ""
            raise InputError(f"{self.path} contains no video frames{detail}")
        height, width = self._peeked[1].shape[:2]
        self.size = (width, height)
        n = self._stream.frames
        if not n and self._stream.duration and self._stream.time_base:
            n = round(float(self._stream.duration * self._stream.time_base) * self.fps)
        self.frame_count: int | None = int(n) if n else None
        self.description = f"{self.path.name} ({width}x{height}, {self.fps:.3g} fps)"

    def _decoded_frames(self) -> Iterator:
        import av

        packets = self._container.demux(self._stream)
        while True:
            try:
                packet = next(packets)
            except StopIteration:
                return
            except av.error.FFmpegError:
                # A broken container structure: nothing after it can be located reliably.
                self.decode_failures += 1
                return
            try:
                yield from packet.decode()
            except av.error.FFmpegError:
                self.decode_failures += 1  # one bad packet: count it and carry on with the next

    def _next_image(self) -> tuple[float | None, np.ndarray] | None:
        for frame in self._frames:
            return frame.time, frame.to_ndarray(format="bgr24")
        return None

    def read(self) -> Frame | None:
        """The next decodable frame, or ``None`` at the end of the file."""
        if self._peeked is not None:
            item, self._peeked = self._peeked, None
        else:
            item = self._next_image()
        if item is None:
            return None
        pts_time, image = item
        if pts_time is not None and self._t0 is None:
            self._t0 = pts_time
        if pts_time is None or self._t0 is None:
            timestamp = self._index / self.fps
        else:
            timestamp = pts_time - self._t0
        frame = Frame(self._index, float(timestamp), image, time.perf_counter())
        self._index += 1
        return frame

    def close(self) -> None:
        self._container.close()


class CameraSource:
    """A camera index, stream URL, or (for testing live behaviour) a file played in real time, via OpenCV.

    Args:
        spec: camera index (``0``), URL (``rtsp://...``), or a local video path.
        pace: sleep between frames to hold the source's frame rate. Defaults to on for local files (so a
            file behaves like a camera) and off for cameras and URLs (they pace themselves).

    Raises:
        InputError: the camera or stream does not open.
    """

    live = True

    def __init__(self, spec: int | str, *, pace: bool | None = None) -> None:
        import cv2

        self.spec = spec
        is_file = isinstance(spec, str) and "://" not in spec and is_regular_file(spec)
        self._pace = is_file if pace is None else pace
        self._cap = cv2.VideoCapture(spec)
        if not self._cap.isOpened():
            self._cap.release()
            if isinstance(spec, int):
                raise InputError(
                    f"camera {spec} could not be opened: check that it is connected and not used by another "
                    "program (on Linux, `ls /dev/video*` lists cameras), or pass a video file or stream URL"
                )
            raise InputError(f"could not open the stream {spec!r}: check the URL or path")
        fps = self._cap.get(cv2.CAP_PROP_FPS)
        self.fps = float(fps) if fps and 1.0 <= fps <= 1000.0 else DEFAULT_FPS
        self.rate = None
        self.size = (
            int(self._cap.get(cv2.CAP_PROP_FRAME_WIDTH)),
            int(self._cap.get(cv2.CAP_PROP_FRAME_HEIGHT)),
        )
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
        self.frame_count = len(images) if hasattr(images, "__len__") else None  # type: ignore[arg-type]
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
