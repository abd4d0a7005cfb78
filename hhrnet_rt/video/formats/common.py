"""What every format writer shares: how it is fed, where its bytes go, and the rules several formats state.

A writer is fed the records of :mod:`hhrnet_rt.video.records` (a ``header``, then ``frame`` records), never
the pipeline's arrays: a live run (:class:`~hhrnet_rt.video.formats.sink.FormatSink`) and ``hhrt convert``
of the JSON lines it wrote feed the same dicts, so they write the same bytes.

Two kinds of output, both whole whatever happens to the run:

- :class:`FileWriter`: one file, streamed into a hidden temporary beside the target and published under
  its name when closed (:func:`~hhrnet_rt.core.outputs.publish`: an existing file only with ``overwrite``).
- :class:`FolderWriter`: a folder of files (one per frame), each written to a temporary and published
  whole; the folder is refused if it holds files, unless ``overwrite`` (then only the files this run
  writes are replaced; others are left alone).

A run that got no frame publishes nothing (and an empty folder it made is removed).
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

from hhrnet_rt.core.errors import InputError, option
from hhrnet_rt.core.outputs import RecordFile, check_name_length, check_output_path
from hhrnet_rt.core.skeleton import COCO_KEYPOINTS
from hhrnet_rt.overlay import PoseStyle

#: A joint whose score is above this is "labeled and visible" (v = 2); a found joint at or below it is
#: "labeled, not visible" (v = 1); a joint not found (score 0 or no position) is "not labeled" (v = 0).
#: The threshold the picture uses to hide weak joints, taken from its one home
#: (:attr:`hhrnet_rt.overlay.PoseStyle.score_threshold`, 0.1), so a file and the picture never disagree.
VISIBLE_SCORE: float = PoseStyle().score_threshold


def visibility(joint: list[Any]) -> int:
    """COCO's 0/1/2 for one ``[x, y, score]`` row (see :data:`VISIBLE_SCORE`)."""
    x, y, score = joint
    if x is None or y is None or not score:
        return 0
    return 2 if score > VISIBLE_SCORE else 1


def labeled_box(joints: list[list[Any]]) -> tuple[float, float, float, float] | None:
    """``(left, top, width, height)`` around the labeled joints (v > 0); ``None`` if none is labeled."""
    points = [(x, y) for x, y, s in joints if visibility([x, y, s]) > 0]
    if not points:
        return None
    xs, ys = [p[0] for p in points], [p[1] for p in points]
    return min(xs), min(ys), max(xs) - min(xs), max(ys) - min(ys)


def keypoint_names(header: dict[str, Any], record: dict[str, Any] | None = None) -> list[str]:
    """The joint names the header gives, else COCO's when a person has 17 joints."""
    names = header.get("keypoint_names")
    if names:
        return [str(n) for n in names]
    people = (record or {}).get("people") or []
    if not people or len(people[0]["keypoints"]) == len(COCO_KEYPOINTS):
        return list(COCO_KEYPOINTS)
    raise InputError(
        f"the records have {len(people[0]['keypoints'])} joints per person and no header naming them; "
        "only files whose header lists keypoint_names (or COCO's 17 joints) can be converted"
    )


def require_coco(header: dict[str, Any], record: dict[str, Any], fmt: str) -> None:
    """Formats whose layout is COCO's 17 joints refuse other models (CrowdPose's 14) in one clear line."""
    if keypoint_names(header, record) != list(COCO_KEYPOINTS):
        raise InputError(f"the {fmt} format is written for COCO's 17 joints; this model has other joints "
                         "(a CrowdPose model?): write the csv or coco-dataset format instead")  # fmt: skip


def frame_size(header: dict[str, Any], record: dict[str, Any], fmt: str) -> tuple[int, int]:
    """``(width, height)`` of a frame: its own (an image of a batch) or the stream's from the header."""
    width, height = record.get("width", header.get("width")), record.get("height", header.get("height"))
    if not width or not height:
        raise InputError(
            f"the {fmt} format needs the frame size, which this file does not record (JSON lines version 1 "
            f"has no header); give it with {option('width', 'W')} and {option('height', 'H')}"
        )
    return int(width), int(height)


def source_stem(header: dict[str, Any]) -> str:
    """A file-name-safe stem from the header's source (``walk.mp4`` -> ``walk``; a URL -> its last part)."""
    source = str(header.get("source") or "")
    last = source.split("?")[0].rstrip("/").rsplit("/", 1)[-1]
    stem = re.sub(r"[^\w.-]+", "_", Path(last).stem).strip("._")
    return stem or "frame"


def frame_stem(header: dict[str, Any], record: dict[str, Any], digits: int = 6) -> str:
    """A frame's name in per-frame outputs: an image's own stem, or ``<source stem>_<frame, 0-padded>``
    (the names ``ffmpeg -i IN -start_number 0 <stem>_%06d.jpg`` gives the frames it extracts)."""
    if record.get("image"):
        return Path(str(record["image"])).stem
    return f"{source_stem(header)}_{int(record['frame']):0{digits}d}"


def number(value: float) -> str:
    """A coordinate or score as text: at most 6 decimals, no trailing zeros (``12.5``, ``0``)."""
    text = f"{value:.6f}".rstrip("0").rstrip(".")
    return "0" if text in ("-0", "") else text


class FileWriter:
    """One output file, streamed to a temporary and published on :meth:`close` (module docstring).

    Subclasses give :meth:`head`, :meth:`body` and :meth:`tail` (bytes), and ``what`` (for messages).
    """

    suffixes: tuple[str, ...] = ()
    what = "output file"

    def __init__(self, path: Path, *, overwrite: bool = False) -> None:
        self.path = check_output_path(path, self.suffixes, self.what, overwrite=overwrite)
        self.overwrite = overwrite
        self._file = RecordFile.temporary_beside(self.path)  # created now: permission errors show up early
        self.header: dict[str, Any] = {}
        self.written = 0

    def begin(self, header: dict[str, Any]) -> None:
        self.header = header

    def frame(self, record: dict[str, Any]) -> None:
        data = (self.head(record) if self.written == 0 else b"") + self.body(record)
        if data:
            self._file.append(data)
        self.written += 1

    def head(self, record: dict[str, Any]) -> bytes:
        return b""

    def body(self, record: dict[str, Any]) -> bytes:
        raise NotImplementedError

    def tail(self) -> bytes:
        return b""

    def close(self) -> None:
        """Finish the file and give it its name; without a frame, nothing is published."""
        if self._file.closed:
            return
        if self.written == 0:
            self.discard()
            return
        self._file.publish_as(self.path, self.tail(), overwrite=self.overwrite)

    def discard(self) -> None:
        """Close without publishing: the temporary goes."""
        self._file.discard()


class FolderWriter:
    """A folder of whole files (module docstring); subclasses call :meth:`put` for each file."""

    what = "output folder"

    def __init__(self, path: Path, *, overwrite: bool = False) -> None:
        self.path = check_folder_target(Path(path), self.what, overwrite=overwrite)
        self.overwrite = overwrite
        self.header: dict[str, Any] = {}
        self.written = 0
        self._made: list[Path] = []  # folders this writer created (removed again if left empty)
        self._files: list[Path] = []  # files it wrote (removed again by discard)

    def begin(self, header: dict[str, Any]) -> None:
        self.header = header

    def frame(self, record: dict[str, Any]) -> None:
        self.write_frame(record)
        self.written += 1

    def write_frame(self, record: dict[str, Any]) -> None:
        raise NotImplementedError

    def put(self, relative: str, data: bytes) -> None:
        """Write ``<folder>/<relative>`` whole: a temporary beside it, then published under its name."""
        target = self.path / relative
        self._mkdir(target.parent)
        check_name_length(target, self.what)
        RecordFile.temporary_beside(target).publish_as(target, data, overwrite=self.overwrite)
        self._files.append(target)

    def _mkdir(self, folder: Path) -> None:
        missing = []
        while not folder.exists() and folder != folder.parent:
            missing.append(folder)
            folder = folder.parent
        for made in reversed(missing):
            made.mkdir()
            self._made.append(made)

    def close(self) -> None:
        self._remove_empty_folders()  # a run that got no frame leaves no folder behind

    def discard(self) -> None:
        """Remove what this writer wrote (the conversion failed: no half dataset is left)."""
        for file in self._files:
            file.unlink(missing_ok=True)
        self._files = []
        self._remove_empty_folders()

    def _remove_empty_folders(self) -> None:
        for folder in reversed(self._made):
            try:
                folder.rmdir()  # only when empty: a file in it is a result (or someone else's)
            except OSError:
                pass
        self._made = [f for f in self._made if f.exists()]


def check_folder_target(path: Path, what: str, *, overwrite: bool) -> Path:
    """A folder output: not a file, and not a folder holding files unless ``overwrite``; its parent must
    exist (as for a file output). Nothing is created."""
    check_name_length(path, what)
    if path.exists() and not path.is_dir():
        raise InputError(f"{what} {path} is an existing file; give a folder name")
    if not path.parent.is_dir():
        raise InputError(f"{what} {path}: directory {path.parent} does not exist; create it first")
    if path.is_dir() and any(path.iterdir()) and not overwrite:
        raise InputError(f"{what} {path} already exists and holds files; add {option('overwrite', True)} "
                         "to write into it (only the files of this run are replaced)")  # fmt: skip
    if not os.access(path.parent, os.W_OK):
        raise InputError(f"{what} {path}: cannot write in {path.parent}; choose another location")
    return path


__all__ = [
    "VISIBLE_SCORE",
    "FileWriter",
    "FolderWriter",
    "check_folder_target",
    "frame_size",
    "frame_stem",
    "keypoint_names",
    "labeled_box",
    "number",
    "require_coco",
    "source_stem",
    "visibility",
]
