"""Where processed frames go: an mp4 file, a JSON lines file, a COCO results file.

A sink has ``write(result: FrameResult)`` and ``close()``. The pipeline calls ``write`` from its output
thread, in frame order, and ``close`` exactly once in a ``finally``, so an interrupted run still leaves a
playable mp4 (trailer written) and JSON that parses. Paths are checked when a sink is created, before any
frame is processed, so a bad ``--out`` fails at once instead of after minutes of inference.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import numpy as np

from hhrnet_rt.errors import InputError
from hhrnet_rt.poses import Poses
from hhrnet_rt.video.sources import Frame

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class FrameResult:
    """One frame after the whole pipeline.

    Attributes:
        frame: the captured frame (index, timestamp, capture time).
        poses: the people found, in original-image pixels.
        image: the picture to write or show: the annotated frame, or the raw one without an annotator.
        latency_s: seconds from capture to the end of drawing.
    """

    frame: Frame
    poses: Poses
    image: np.ndarray
    latency_s: float


def check_output_path(path: str | Path, suffixes: tuple[str, ...], what: str) -> Path:
    """Validate an output file path before anything is computed.

    Raises:
        InputError: unsupported extension, missing or unwritable directory, or the path is a directory.
    """
    path = Path(path)
    if path.suffix.lower() not in suffixes:
        raise InputError(
            f"{what} {path}: unsupported extension {path.suffix or '(none)'!r}; use {' or '.join(suffixes)}"
        )
    parent = path.parent if str(path.parent) else Path(".")
    if not parent.is_dir():
        raise InputError(f"{what} {path}: directory {parent} does not exist; create it first")
    if path.is_dir():
        raise InputError(f"{what} {path} is a directory; give a file name")
    # Try it rather than ask os.access: that says yes to root even on read-only file systems.
    existed = path.exists()
    try:
        with open(path, "ab"):
            pass
    except OSError as exc:
        raise InputError(
            f"{what} {path}: cannot write there ({exc.strerror or exc}); choose another location"
        ) from None
    if not existed:
        path.unlink(missing_ok=True)
    return path


def check_output_dir(directory: str | Path) -> Path:
    """Create ``directory`` (and parents) if needed and make sure files can be written in it.

    Raises:
        InputError: it cannot be created, is a file, or is not writable.
    """
    import tempfile

    directory = Path(directory)
    try:
        directory.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=directory):
            pass
    except FileExistsError:
        raise InputError(f"output directory {directory} is an existing file; give a directory") from None
    except OSError as exc:
        raise InputError(
            f"output directory {directory} cannot be used ({exc.strerror or exc}); choose another one"
        ) from None
    return directory


def _even(image: np.ndarray) -> np.ndarray:
    """yuv420p needs even width and height: repeat the last row/column where one is odd."""
    h, w = image.shape[:2]
    if h % 2 == 0 and w % 2 == 0:
        return image
    return np.pad(image, ((0, h % 2), (0, w % 2), (0, 0)), mode="edge")


class Mp4Sink:
    """H.264 (yuv420p, faststart) mp4 written with PyAV; OpenCV ``mp4v`` if PyAV has no H.264 encoder.

    Args:
        path: output ``.mp4``.
        fps: frame rate of the output (the input's rate for files).
        rate: the exact input rate as a Fraction (e.g. 30000/1001) when known; preferred over ``fps``.
        timestamps: ``"index"`` writes one frame per 1/fps; ``"capture"`` uses the frames' timestamps:
            for live sources the capture times (drops keep real-time pacing), for files the input's
            presentation times (variable frame rate input keeps its timing, as the JSON lines do).
        time_base: the unit of the output's pts with ``"capture"``: the input stream's time base for files
            (exact for any rate), default 1 ms.
        codec: the PyAV encoder to try first.

    Attributes:
        encoder: ``"libx264"`` (or the codec used) or ``"mp4v (OpenCV)"`` after fallback.
        warning: a message for the user when the fallback was taken, else ``None``.
    """

    def __init__(
        self,
        path: str | Path,
        fps: float,
        *,
        rate: Fraction | None = None,
        timestamps: str = "index",
        time_base: Fraction | None = None,
        codec: str = "libx264",
        crf: int = 20,
        preset: str = "veryfast",
    ) -> None:
        import av

        self.path = check_output_path(path, (".mp4",), "output video")
        self.rate = Fraction(rate) if rate else Fraction(fps).limit_denominator(1001)
        self.timestamps = timestamps
        self.time_base = Fraction(time_base) if time_base else Fraction(1, 1000)
        self.written = 0
        self.warning: str | None = None
        self._size: tuple[int, int] | None = None
        self._container = self._stream = self._cv_writer = None
        self._last_pts = -1
        self._t0: float | None = None
        self._options = {"crf": str(crf), "preset": preset}
        try:
            av.codec.Codec(codec, "w")
            self.encoder = codec
        except (av.error.FFmpegError, ValueError):
            self.encoder = "mp4v (OpenCV)"
            self.warning = (
                f"PyAV has no {codec!r} encoder here; writing MPEG-4 part 2 (mp4v) with OpenCV instead, "
                "which browsers may not play. Install a PyAV build with libx264 for H.264."
            )
            log.warning(self.warning)

    def _open(self, width: int, height: int) -> None:
        self._size = (width, height)
        if self._cv_writer is None and self.encoder.startswith("mp4v"):
            import cv2

            fourcc = cv2.VideoWriter_fourcc(*"mp4v")
            self._cv_writer = cv2.VideoWriter(str(self.path), fourcc, float(self.rate), (width, height))
            if not self._cv_writer.isOpened():
                raise InputError(f"OpenCV could not open {self.path} for writing")
            return
        import av

        self._container = av.open(str(self.path), "w", options={"movflags": "+faststart"})
        stream = self._container.add_stream(self.encoder, rate=self.rate)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.options = self._options
        if self.timestamps == "capture":
            stream.codec_context.time_base = self.time_base
        self._stream = stream

    def write(self, result: FrameResult) -> None:
        image = _even(result.image)
        height, width = image.shape[:2]
        if self._size is None:
            self._open(width, height)
        elif (width, height) != self._size:
            import cv2  # a camera that changes resolution mid-run: keep the file's size

            image = cv2.resize(image, self._size)
        if self._cv_writer is not None:
            self._cv_writer.write(np.ascontiguousarray(image))
            self.written += 1
            return
        import av

        frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(image), format="bgr24")
        if self.timestamps == "capture":
            if self._t0 is None:
                self._t0 = result.frame.timestamp  # the file starts at 0 even if the camera took a while
            pts = max(
                round((result.frame.timestamp - self._t0) / self.time_base), self._last_pts + 1
            )  # strictly increasing
            frame.time_base = self.time_base
        else:
            pts = self.written
            frame.time_base = 1 / self.rate
        frame.pts = self._last_pts = pts
        for packet in self._stream.encode(frame):
            self._container.mux(packet)
        self.written += 1

    def close(self) -> None:
        """Flush the encoder and write the trailer; a file with no frame at all is removed."""
        if self._cv_writer is not None:
            self._cv_writer.release()
        elif self._container is not None:
            try:
                for packet in self._stream.encode():
                    self._container.mux(packet)
            finally:
                self._container.close()
        if self.written == 0 and self.path.exists():
            self.path.unlink()  # an mp4 without frames plays nowhere; better none than a broken one
        self._container = self._cv_writer = None


class JsonLinesSink:
    """One JSON record per frame, flushed per line so the file parses even if the run is cut short.

    Record: ``{"frame": i, "timestamp": s, "people": [{"score": s, "keypoints": [[x, y, score], ...]}]}``.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = check_output_path(path, (".jsonl", ".ndjson"), "JSON lines file")
        self._file = self.path.open("w", encoding="utf-8")
        self.written = 0

    def write(self, result: FrameResult) -> None:
        record = {
            "frame": result.frame.index,
            "timestamp": round(result.frame.timestamp, 6),
            "people": result.poses.to_records(),
        }
        self._file.write(json.dumps(record) + "\n")
        self._file.flush()
        self.written += 1

    def close(self) -> None:
        self._file.close()


def coco_records(image_id: int, poses: Poses, category_id: int = 1) -> list[dict]:
    """COCO keypoint results for one image: flat ``[x, y, v] * K`` with ``v`` = joint score."""
    return [
        {
            "image_id": int(image_id),
            "category_id": category_id,
            "keypoints": [float(v) for v in person.reshape(-1)],
            "score": float(score),
        }
        for person, score in zip(poses.keypoints, poses.scores, strict=True)
    ]


class CocoSink:
    """COCO keypoint results (``image_id`` = frame index), written as one JSON list when closed."""

    def __init__(self, path: str | Path) -> None:
        self.path = check_output_path(path, (".json",), "COCO results file")
        self._file = self.path.open("w", encoding="utf-8")  # opened now: permission errors show up early
        self._records: list[dict] = []
        self.written = 0

    def write(self, result: FrameResult) -> None:
        self._records.extend(coco_records(result.frame.index, result.poses))
        self.written += 1

    def close(self) -> None:
        if self._file.closed:
            return
        with self._file:
            json.dump(self._records, self._file)
