"""Long recordings in playable pieces (``--segment-time``): an mp4 is playable only once it is closed (its
index is written last), so a recording that runs for days and is then killed (SIGKILL, power loss) would
be lost whole. :class:`SegmentedMp4Sink` closes the file every ``segment_s`` seconds of the stream's own
timestamps and opens the next, ``walk_000.mp4``, ``walk_001.mp4`` ...; what such an end costs is the
segment being written. Each segment keeps the first frame's size (an outage that changes the size is
handled as by :class:`~hhrnet_rt.video.sinks.Mp4Sink`: scaled) and its own timestamps from 0.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from hhrnet_rt.core.errors import InputError, option
from hhrnet_rt.video.sinks import FrameResult, Mp4Sink


def segment_path(path: Path, k: int) -> Path:
    """The ``k``-th segment's file beside ``path`` (``walk.mp4`` -> ``walk_003.mp4``)."""
    return path.with_name(f"{path.stem}_{k:03d}{path.suffix}")


class SegmentedMp4Sink:
    """Mp4 segments of ``segment_s`` seconds each (see the module docstring).

    Args:
        path: the recording's name; the segments are named after it (:func:`segment_path`).
        segment_s: seconds of stream per file (by the frames' timestamps; a segment ends at the first
            frame at or past its end, so each file starts with a frame).
        open_segment: opens one segment's :class:`Mp4Sink` given its path (the caller's rate, time base,
            overwrite rule).

    Raises:
        InputError: ``segment_s`` is not positive, or the first segment's name is taken (later ones are
            checked as they open: the stream fails there, its earlier segments whole).
    """

    def __init__(self, path: str | Path, segment_s: float, open_segment: Callable[[Path], Mp4Sink]) -> None:
        if not segment_s > 0:
            raise InputError(f"{option('segment_s', segment_s)} must be positive")
        self.path, self.segment_s, self._open = Path(path), float(segment_s), open_segment
        self.paths = [segment_path(self.path, 0)]
        self._sink: Mp4Sink | None = open_segment(self.paths[0])  # its name is checked now, before the run
        self._start: float | None = None  # the current segment's first timestamp
        self.written = 0

    @property
    def warning(self) -> str | None:
        return self._sink.warning if self._sink is not None else None

    def write(self, result: FrameResult) -> None:
        t = result.frame.timestamp
        if self._sink is not None and self._start is not None and t - self._start >= self.segment_s:
            sink, self._sink, self._start = self._sink, None, None
            sink.close()  # this segment is now a whole, playable file
        if self._sink is None:
            self.paths.append(segment_path(self.path, len(self.paths)))
            self._sink = self._open(self.paths[-1])
        if self._start is None:
            self._start = t
        self._sink.write(result)
        self.written += 1

    def close(self) -> None:
        if self._sink is not None:
            sink, self._sink = self._sink, None
            sink.close()


def segmented(path: Path, segment_s: float | None, open_mp4: Callable[[Path], Mp4Sink]) -> Any:
    """One :class:`Mp4Sink` at ``path``, or segments of ``segment_s`` seconds named after it."""
    if segment_s is None:
        return open_mp4(path)
    return SegmentedMp4Sink(path, segment_s, open_mp4)
