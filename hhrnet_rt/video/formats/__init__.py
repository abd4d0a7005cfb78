"""Keypoints in the formats other tools read: the registry, the one home of the format names.

Each format is a writer fed the records of :mod:`hhrnet_rt.video.records` (see
:mod:`hhrnet_rt.video.formats.common`): live beside the JSON lines sink (:class:`FormatSink`, from
``hhrt video|webcam|image --format``) or after the fact from a JSON lines file (:func:`convert`, ``hhrt
convert``), with the same bytes either way. docs/interop.md describes each format and its consumer.

Example:
    >>> sorted(FORMATS)
    ['coco-dataset', 'csv', 'mot', 'openpose', 'yolo']
    >>> parse_formats(["csv,yolo", "csv"])
    ('csv', 'yolo')
    >>> FORMATS["yolo"].target_name("walk")
    'walk.yolo'
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hhrnet_rt.core.errors import InputError, option
from hhrnet_rt.video.formats.coco_dataset import CocoDatasetWriter
from hhrnet_rt.video.formats.csv_rows import CsvWriter
from hhrnet_rt.video.formats.mot import MotWriter
from hhrnet_rt.video.formats.openpose import OpenPoseWriter
from hhrnet_rt.video.formats.reading import read_records
from hhrnet_rt.video.formats.sink import FormatSink, convert
from hhrnet_rt.video.formats.yolo import YoloWriter


@dataclass(frozen=True)
class Format:
    """One output format.

    Attributes:
        name: what ``--format`` takes.
        suffix: what is added to an input's stem to name the output (``walk`` -> ``walk.csv``).
        writer: the writer class (``writer(path, overwrite=...)``).
        folder: the output is a folder of files, not one file.
        needs_track: only meaningful with ``--track`` (people need IDs).
        feeds: who reads it (for ``--help``).
        frame_files: for a folder format, the pattern of its per-frame files (a run's are all there when
            there are as many as frames).
    """

    name: str
    suffix: str
    writer: type
    folder: bool = False
    needs_track: bool = False
    feeds: str = ""
    frame_files: str = ""

    def complete(self, path: Path, frames: int) -> bool:
        """Whether a finished run's output is there: a file (published whole), or a folder with one file
        per frame."""
        if not self.folder:
            return path.is_file()
        return path.is_dir() and sum(1 for _ in path.glob(self.frame_files)) == frames

    def target_name(self, stem: str) -> str:
        return f"{stem}{self.suffix}"

    def open(self, path: Path, *, overwrite: bool) -> Any:
        return self.writer(path, overwrite=overwrite)


FORMATS: dict[str, Format] = {
    f.name: f
    for f in (
        Format("coco-dataset", ".coco-dataset.json", CocoDatasetWriter,
               feeds="a COCO keypoint dataset for CVAT, Label Studio, FiftyOne, pycocotools"),
        Format("yolo", ".yolo", YoloWriter, folder=True, feeds="YOLO-pose labels for yolo pose train",
               frame_files="labels/*.txt"),
        Format("openpose", ".openpose", OpenPoseWriter, folder=True,
               feeds="OpenPose JSON (COCO-18) for 3D lifters", frame_files="*_keypoints.json"),
        Format("csv", ".csv", CsvWriter, feeds="a row per person for spreadsheets"),
        Format("mot", ".mot.txt", MotWriter, needs_track=True, feeds="MOT-challenge tracks of tracked people"),
    )
}  # fmt: skip


def parse_formats(values: Iterable[str] | None) -> tuple[str, ...]:
    """``--format`` values (repeated and/or comma-separated) as known names, in order, each once.

    Raises:
        InputError: a name that is not a format (the message lists them).
    """
    names: list[str] = []
    for value in values or ():
        for name in (part.strip().lower() for part in value.split(",")):
            if not name:
                continue
            if name not in FORMATS:
                raise InputError(
                    f"{option('format', name)}: unknown format; choose from {', '.join(FORMATS)}"
                )
            if name not in names:
                names.append(name)
    return tuple(names)


def format_sink(
    name: str,
    path: str | Path,
    source: Any = None,
    *,
    overwrite: bool = False,
    run_header: dict | None = None,
) -> FormatSink:
    """A pipeline sink writing format ``name`` to ``path`` (what ``--format`` opens for each input).

    Example:
        >>> sink = format_sink("csv", "walk.csv", FileSource("walk.mp4"))  # doctest: +SKIP
        >>> run_pipeline(FileSource("walk.mp4"), estimator, [sink])          # doctest: +SKIP
    """
    if name not in FORMATS:
        raise InputError(f"unknown format {name!r}; choose from {', '.join(FORMATS)}")
    return FormatSink(FORMATS[name].open(Path(path), overwrite=overwrite), source, run_header)


def check_formats(names: tuple[str, ...], *, tracked: bool) -> None:
    """Refuse, before any work, a format the run cannot feed (``mot`` without ``--track``)."""
    for name in names:
        if FORMATS[name].needs_track and not tracked:
            raise InputError(f"{option('format', name)} needs tracked people: add {option('track', True)}")


def format_help() -> str:
    """The ``--format`` help text: every name and who reads it."""
    return "; ".join(f"{f.name}: {f.feeds}" for f in FORMATS.values())


__all__ = [
    "FORMATS",
    "Format",
    "FormatSink",
    "check_formats",
    "convert",
    "format_help",
    "format_sink",
    "parse_formats",
    "read_records",
]
