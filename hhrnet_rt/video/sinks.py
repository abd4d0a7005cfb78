"""Where processed frames go: an mp4 file, a JSON lines file, a COCO results file.

A sink has ``write(result: FrameResult)`` and ``close()``. The pipeline calls ``write`` from its output
thread, in frame order, and ``close`` exactly once in a ``finally``, so an interrupted run still leaves a
playable mp4 (trailer written) and JSON that parses. Paths are checked when a sink is created, before any
frame is processed, so a bad ``--out`` fails at once instead of after minutes of inference. What a sink may
create, replace or remove follows :mod:`hhrnet_rt.core.outputs`: an existing file only with
``overwrite=True``, and it removes only a file it created itself.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
from collections.abc import Iterable
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from hhrnet_rt.core.errors import DiskFullError, InputError
from hhrnet_rt.core.outputs import (
    RecordFile,
    check_output_dir,  # noqa: F401 - callers import it from here too; its home is video.outputs
    check_output_path,
    create_exclusive,
    disk_full,
    is_disk_full,
)
from hhrnet_rt.poses import Poses
from hhrnet_rt.video.records import frame_record, header_record, outage_record
from hhrnet_rt.video.sources import Frame

if TYPE_CHECKING:  # imported where they are used: opening an output must not import both at start-up
    import cv2
    from av.container import OutputContainer
    from av.packet import Packet
    from av.video.stream import VideoStream

    from hhrnet_rt.video.reconnect import Outage

log = logging.getLogger(__name__)

_ROOM_MARGIN = 512 * 1024  # the muxer's buffer, the moov's fixed part and the faststart rewrite: generous


def _free_bytes(directory: Path) -> int:
    """Bytes an unprivileged writer may still use there (a huge number where that cannot be asked)."""
    try:
        return shutil.disk_usage(directory).free
    except OSError:
        return 1 << 62


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


def _exists(path: Path) -> bool:
    return path.exists() or path.is_symlink()


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
        overwrite: replace an existing file (only once the first frame is written; until then it stays).

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
        overwrite: bool = False,
    ) -> None:
        import av

        self.path = check_output_path(path, (".mp4",), "output video", overwrite=overwrite)
        self.overwrite = overwrite
        self._created = False  # the file is ours only once _open has created it
        self.rate = Fraction(rate) if rate else Fraction(fps).limit_denominator(1001)
        self.timestamps = timestamps
        self.time_base = Fraction(time_base) if time_base else Fraction(1, 1000)
        self.written = 0
        self.warning: str | None = None
        self._size: tuple[int, int] | None = None
        # The open writer: PyAV's container and its stream, or OpenCV's (the mp4v fallback); set by _open.
        self._av: tuple[OutputContainer, VideoStream] | None = None
        self._cv_writer: cv2.VideoWriter | None = None
        self._last_pts = -1
        self._packets = self._largest_packet = 0  # muxed so far: what ending the file will still need
        self._t0: float | None = None
        self._options: dict[str, object] = {"crf": str(crf), "preset": preset}  # PyAV's options type
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
        os.close(create_exclusive(self.path, overwrite=self.overwrite))  # the encoder reopens it by name
        self._created = True
        if self._cv_writer is None and self.encoder.startswith("mp4v"):
            import cv2

            fourcc = cv2.VideoWriter.fourcc(*"mp4v")
            self._cv_writer = cv2.VideoWriter(str(self.path), fourcc, float(self.rate), (width, height))
            if not self._cv_writer.isOpened():
                raise InputError(f"OpenCV could not open {self.path} for writing")
            return
        import av

        container = av.open(str(self.path), "w", options={"movflags": "+faststart"})
        stream = container.add_stream(self.encoder, rate=self.rate)
        if not isinstance(stream, av.video.stream.VideoStream):
            container.close()
            raise InputError(f"{self.encoder!r} is not a video encoder; pass one such as libx264")
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.options = self._options
        if self.timestamps == "capture":
            stream.codec_context.time_base = self.time_base
        self._av = container, stream

    def write(self, result: FrameResult) -> None:
        """Encode one frame; a full disk raises DiskFullError (close() still finishes what it can)."""
        image = _even(result.image)
        height, width = image.shape[:2]
        try:
            self._write(result, image, width, height)
        except OSError as exc:
            raise disk_full(self.path, exc) if is_disk_full(exc) else exc from None

    def _write(self, result: FrameResult, image: np.ndarray, width: int, height: int) -> None:
        if self._size is None:
            self._open(width, height)
        elif (width, height) != self._size:
            import cv2  # a camera that changes resolution mid-run: keep the file's size

            image = cv2.resize(image, self._size)
        self._ensure_room_to_finish()
        if self._cv_writer is not None:
            self._cv_writer.write(np.ascontiguousarray(image))
            self.written += 1
            return
        assert self._av is not None  # _open made one writer or the other
        container, stream = self._av
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
        self._mux(container, stream.encode(frame))
        self.written += 1

    def _mux(self, container: OutputContainer, packets: Iterable[Packet]) -> None:
        for packet in packets:
            self._largest_packet = max(self._largest_packet, packet.size)
            self._packets += 1
            container.mux(packet)

    def _ensure_room_to_finish(self) -> None:
        """Stop while there is still room to end the file, not when the disk is full.

        After one failed write FFmpeg's writer drops every later write (its error is sticky), so an mp4
        that hit a full disk never gets its index (moov) and plays nowhere. Room is kept for the frames
        still inside the encoder (at the size of the largest packet so far, twice), the index (about
        64 bytes a frame) and a margin for the muxer's buffer.
        """
        pending = self.written + 1 - self._packets  # frames inside the encoder, and this one
        needed = _ROOM_MARGIN + 64 * self.written + 2 * pending * self._largest_packet
        free = _free_bytes(self.path.parent)
        if free < needed:
            raise DiskFullError(
                f"no space left for {self.path} ({free // 1024} KiB free, {needed // 1024} KiB kept to end "
                "the video so that it plays)"
            )

    def close(self) -> None:
        """Flush the encoder and write the trailer; a file this sink created but got no frame is removed.

        A run stopped for lack of space (see ``_ensure_room_to_finish``) still has the room to do so.
        """
        try:
            if self._cv_writer is not None:
                self._cv_writer.release()
            elif self._av is not None:
                container, stream = self._av
                try:
                    self._mux(container, stream.encode())
                finally:
                    container.close()
        except OSError as exc:
            raise disk_full(self.path, exc) if is_disk_full(exc) else exc from None
        finally:
            self._av = self._cv_writer = None
            if self._created and self.written == 0:
                # an mp4 without frames plays nowhere; better none than a broken one (and it was ours)
                self.path.unlink(missing_ok=True)
                self._created = False


class JsonLinesSink:
    """One JSON record per line, each written whole with one system call, so the file parses even if the
    run is cut short; on a full disk the half-written line is cut off again and DiskFullError raised. A new
    file is created at once (empty if no frame comes); an existing one (``overwrite``) is replaced only at
    the first record, so a run that fails before it leaves that file as it was.

    Records (:mod:`hhrnet_rt.video.records`, ``schemas/keypoints.schema.json``): a ``header`` first, then
    ``{"schema": "hhrnet-rt/keypoints/2", "type": "frame", "frame": i, "timestamp": s, "people": [{"score":
    s, "keypoints": [[x, y, score], ...]}]}`` per frame, x/y rounded to 0.01 px and scores to 1e-4; with
    tracking each person also has ``"id"``, and ``"smoothed": true`` says that x/y were smoothed over time.
    A live source's outages come as ``outage`` records among the frames (``write_outage``).

    Args:
        source: the stream's source, for the header (its name and rate); ``None``: a header without them.
        run_header: what the run adds to the header (:func:`~hhrnet_rt.video.records.run_header`).
    """

    def __init__(
        self, path: str | Path, *, overwrite: bool = False, source: Any = None, run_header: dict | None = None
    ) -> None:
        self.path = check_output_path(path, (".jsonl", ".ndjson"), "JSON lines file", overwrite=overwrite)
        self.overwrite = overwrite
        self.source = source
        self.run_header = run_header
        self._file: RecordFile | None = None
        self._header_written = False
        self.written = 0
        if not _exists(self.path):
            self._file = RecordFile.create(self.path, overwrite=False)
        self._created_empty = self._file is not None

    def _append(self, record: dict[str, Any], first: FrameResult | None = None) -> None:
        if self._file is None:
            self._file = RecordFile.create(self.path, overwrite=self.overwrite)
        lines = [record]
        if not self._header_written:
            lines.insert(0, header_record(self.source, first, self.run_header))
        self._file.append("".join(json.dumps(line) + "\n" for line in lines).encode("utf-8"))
        self._header_written = True

    def write(self, result: FrameResult) -> None:
        self._append(frame_record(result), result)
        self.written += 1

    def write_outage(self, outage: Outage) -> None:
        """An outage of the live source, written in its place among the frames."""
        self._append(outage_record(outage))

    def close(self) -> None:
        if self._file is not None:
            self._file.close()

    def discard(self) -> None:
        """Close, and remove the file if this sink created it and wrote nothing: the run ended before it
        began (another output could not be opened), so an empty file would only block the next run."""
        self.close()
        if self._created_empty and self.written == 0:
            self.path.unlink(missing_ok=True)


def coco_records(image_id: int, poses: Poses, category_id: int = 1) -> list[dict]:
    """COCO keypoint results for one image: flat ``[x, y, v] * K`` with ``v`` = joint score. Tracked people
    (``poses.ids``) also get ``"track_id"`` (as PoseTrack results name it; ``None`` until confirmed), which
    COCO's evaluation ignores."""
    records = [
        {
            "image_id": int(image_id),
            "category_id": category_id,
            "keypoints": [float(v) for v in person.reshape(-1)],
            "score": float(score),
        }
        for person, score in zip(poses.keypoints, poses.scores, strict=True)
    ]
    if poses.ids is not None:
        for record, track_id in zip(records, poses.ids.tolist(), strict=True):
            record["track_id"] = track_id if track_id >= 0 else None
    return records


class CocoSink:
    """COCO keypoint results (``image_id`` = frame index) as one JSON list, streamed to disk as frames come.

    The list is written to a hidden temporary file beside the target (memory stays flat over a long run)
    and renamed to the target name when closed, so the target is either absent or a whole JSON list, and
    an existing file is never replaced without ``overwrite``. A run cut short still publishes the records
    written so far; one that got no frame at all publishes ``[]``, but never in place of an existing file.
    """

    def __init__(self, path: str | Path, *, overwrite: bool = False) -> None:
        self.path = check_output_path(path, (".json",), "COCO results file", overwrite=overwrite)
        self.overwrite = overwrite
        self._file = RecordFile.temporary_beside(self.path)  # created now: permission errors show up early
        self._records = 0
        self.written = 0

    def write(self, result: FrameResult) -> None:
        records = coco_records(result.frame.index, result.poses)
        if records:
            text = ",\n".join(json.dumps(r) for r in records)
            self._file.append(("[" if self._records == 0 else ",\n").encode() + text.encode("utf-8"))
            self._records += len(records)
        self.written += 1

    def close(self) -> None:
        if self._file.closed:
            return
        if self.written == 0 and _exists(self.path):  # an empty run does not replace a file (overwrite)
            self._file.discard()
            return
        self._file.publish_as(self.path, b"[]\n" if self._records == 0 else b"]\n", overwrite=self.overwrite)

    def discard(self) -> None:
        """Close without publishing: the temporary goes (the run ended before it began)."""
        self._file.discard()
