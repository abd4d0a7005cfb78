"""Feeding the format writers: live from the pipeline (:class:`FormatSink`) or from a JSON lines file
(:func:`convert`), with the same records either way (the header and frame records of
:mod:`hhrnet_rt.video.records`), so the same bytes come out."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from hhrnet_rt.video.records import STREAM_SCHEMA, frame_record, header_record


class FormatSink:
    """A pipeline sink (``write(result)``, ``close()``, ``discard()``) that hands one format writer the
    records the JSON lines sink writes: the header (built at the first frame, as that sink does), then
    one frame record per frame.

    Args:
        writer: a format writer (:data:`hhrnet_rt.video.formats.FORMATS`).
        source: the stream's source, for the header.
        run_header: what the run adds to the header (:func:`~hhrnet_rt.video.records.run_header`).
    """

    def __init__(self, writer: Any, source: Any = None, run_header: dict[str, Any] | None = None) -> None:
        self.writer, self.source, self.run_header = writer, source, run_header
        self.path: Path = writer.path
        self.written = 0

    def write(self, result: Any) -> None:
        if self.written == 0:
            self.writer.begin(header_record(self.source, result, self.run_header))
        self.writer.frame(frame_record(result))
        self.written += 1

    def close(self) -> None:
        self.writer.close()

    def discard(self) -> None:
        self.writer.discard()


def convert(
    records: Iterable[dict[str, Any]],
    writers: list[Any],
    *,
    defaults: dict[str, Any] | None = None,
    on_frame: Callable[[], None] | None = None,
) -> int:
    """Feed a JSON lines file's records to ``writers`` and close them; returns the frames written.

    A version 2 file starts with its header; a version 1 file has none, so one is made from ``defaults``
    (``source``, ``width``, ``height``, ``fps``), which also fill what a header lacks. Outage records and
    record types this version does not know are skipped. On an error every writer is discarded (nothing
    half-made is left) and the error raised.
    """
    frames = 0
    header: dict[str, Any] | None = None
    try:
        for record in records:
            kind = record.get("type", "frame")
            if kind == "header" and header is None and frames == 0:
                header = _filled(record, defaults)
            if kind != "frame":
                continue
            if header is None:  # version 1: no header line
                header = _filled({"schema": STREAM_SCHEMA, "type": "header"}, defaults)
            if frames == 0:
                for writer in writers:
                    writer.begin(header)
            for writer in writers:
                writer.frame(record)
            frames += 1
            if on_frame is not None:
                on_frame()
    except BaseException:
        for writer in writers:
            writer.discard()
        raise
    close_all(writers)
    return frames


def close_all(writers: list[Any]) -> None:
    """Close every writer even if one fails (its error is raised once all had their turn)."""
    error: BaseException | None = None
    for writer in writers:
        try:
            writer.close()
        except BaseException as exc:  # noqa: BLE001 - the others still publish; this one is raised below
            error = error or exc
    if error is not None:
        raise error


def _filled(header: dict[str, Any], defaults: dict[str, Any] | None) -> dict[str, Any]:
    """The header with what it lacks taken from ``defaults`` (what it says wins)."""
    extra = {k: v for k, v in (defaults or {}).items() if v is not None and header.get(k) is None}
    return {**header, **extra}
