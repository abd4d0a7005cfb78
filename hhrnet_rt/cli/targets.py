"""Where each input's outputs go, decided and checked for all inputs before the model loads.

An output option names a file (one input only) or a folder (``<name>.<ext>`` per input, created if
needed); a path that is an existing folder or has no extension is a folder. Without ``--out`` the
annotated outputs go to a new numbered run folder (:mod:`hhrnet_rt.core.runs`), never next to the input.
Every target is checked with the rules of :mod:`hhrnet_rt.core.outputs`: never an input, never an
existing file without ``--overwrite``. ``--format`` outputs go where the JSON lines go (else where the
video goes): ``<name><format suffix>`` in that folder, or beside a named file with its stem
(``--json k.jsonl --format csv`` writes ``k.csv``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from hhrnet_rt.core.errors import InputError, option
from hhrnet_rt.core.outputs import (
    InputFiles,
    check_name_length,
    check_output_dir,
    check_output_path,
    refuse_existing,
    refuse_input,
)
from hhrnet_rt.poses import KEYPOINTS_SCHEMA
from hhrnet_rt.video.formats import FORMATS
from hhrnet_rt.video.formats.common import check_folder_target
from hhrnet_rt.video.records import STREAM_SCHEMA, frames_of
from hhrnet_rt.video.sources import is_url, url_name


@dataclass(frozen=True)
class VideoTargets:
    """The outputs of one ``hhrt video`` input (``None``: not asked for)."""

    source: str | Path
    video: Path | None  # None only for hhrt webcam without --out (it records keypoints only)
    json: Path | None
    coco: Path | None
    formats: dict[str, Path] = field(default_factory=dict)  # --format name -> file or folder


def is_folder_target(path: Path) -> bool:
    return path.is_dir() or path.suffix == ""


def input_name(source: str | Path) -> str:
    """The stem outputs are named after: a file's stem, a URL's last path part without extension."""

    return Path(url_name(str(source))).stem if is_url(source) else Path(source).stem


def plan_video_outputs(
    sources: list[str | Path],
    out: Path | None,
    json_out: Path | None,
    coco: Path | None,
    *,
    run_dir: Path | None,
    overwrite: bool,
    skip_existing: bool = False,
    skipped: list[str | Path] | None = None,
    formats: tuple[str, ...] = (),
    need_video: bool = True,
) -> list[VideoTargets]:
    """One :class:`VideoTargets` per source; ``run_dir`` stands in for a missing ``out``; ``formats``
    (``--format`` names) go where the JSON lines go, else where the video goes (module docstring).

    ``need_video``: ``False`` for ``hhrt webcam``, whose recordings are optional (``--json`` alone).
    ``skip_existing``: a local input whose outputs all exist and are complete
    (:func:`video_outputs_complete`) is left out (and added to ``skipped``); one whose outputs exist but
    are not complete is redone with ``overwrite`` and refused without it.
    """

    local = InputFiles(s for s in sources if isinstance(s, Path))  # each input looked at once: linear
    kinds = {
        "video": (out if out is not None else run_dir, ".mp4", (".mp4",), "output video", "--out"),
        "json": (json_out, ".jsonl", (".jsonl", ".ndjson"), "JSON lines file", "--json"),
        "coco": (coco, ".coco.json", (".json",), "COCO results file", "--coco"),
    }
    for place, _, _, _, flag in kinds.values():
        if place is not None and not is_folder_target(place) and len(sources) > 1:
            raise InputError(
                f"{flag} {place} names one file but {len(sources)} inputs were given; give a folder "
                "(each input gets <name> files there)"
            )
    for place, *_ in kinds.values():
        if place is not None and is_folder_target(place):
            check_output_dir(place)
    used: set[str] = set()
    plan = []
    for source in sources:
        stem = unique_stem(input_name(source), used)
        named = {key: None if place is None else place / f"{stem}{ext}" if is_folder_target(place) else place
                 for key, (place, ext, *_) in kinds.items()}  # fmt: skip
        extra = format_targets(json_out if json_out is not None else kinds["video"][0], stem, formats)
        if (
            skip_existing
            and isinstance(source, Path)
            and all(p is None or p.exists() for p in [*named.values(), *extra.values()])
        ):
            targets = VideoTargets(source, named["video"] or Path(), named["json"], named["coco"], extra)
            if video_outputs_complete(targets):
                if skipped is not None:
                    skipped.append(source)
                continue
            if not overwrite:
                raise InputError(
                    f"the outputs of {source} exist but are not complete (an interrupted run?); add "
                    f"{option('overwrite', True)} to redo them with --skip-existing"
                )
        chosen: dict[str, Path | None] = {}
        for key, (place, _ext, suffixes, what, _) in kinds.items():
            target = named[key]
            if place is None or target is None:
                chosen[key] = None
                continue
            chosen[key] = check_output_path(
                target, suffixes, what, overwrite=overwrite, inputs=local, probe=not is_folder_target(place)
            )  # the folder was probed once above, not once per input
        check_format_targets(extra, overwrite=overwrite, inputs=local)
        paths = [p for p in [*chosen.values(), *extra.values()] if p is not None]
        if len(set(paths)) < len(paths):
            raise InputError(f"two outputs of {source} would be the same file; give them different names")
        video = chosen["video"]
        if video is None and need_video:  # kinds["video"] has run_dir in place of a missing --out
            raise ValueError("plan_video_outputs needs an output video place: out or run_dir")
        plan.append(VideoTargets(source, video, chosen["json"], chosen["coco"], extra))
    return plan


def format_targets(place: Path | None, stem: str, formats: tuple[str, ...]) -> dict[str, Path]:
    """Where each ``--format`` output of one input goes: ``<place>/<stem><suffix>`` when ``place`` is a
    folder, else beside the file ``place`` names, with that file's stem (``k.jsonl`` -> ``k.csv``)."""
    if not formats:
        return {}
    if place is None:
        raise InputError("--format needs a place for its files: give --json or --out")
    folder, name = (place, stem) if is_folder_target(place) else (place.parent, place.stem)
    return {fmt: folder / FORMATS[fmt].target_name(name) for fmt in formats}


def check_format_targets(targets: dict[str, Path], *, overwrite: bool, inputs: InputFiles) -> None:
    """The ``--format`` outputs, checked as every output is: never an input, never an existing file
    (a folder holding files) without ``--overwrite``."""
    for fmt, path in targets.items():
        what = f"{fmt} output"
        if FORMATS[fmt].folder:
            refuse_input(path, what, inputs)
            check_folder_target(path, what, overwrite=overwrite)
        else:
            suffix = FORMATS[fmt].suffix.rsplit(".", 1)[-1]
            check_output_path(path, (f".{suffix}",), what, overwrite=overwrite, inputs=inputs)


def video_outputs_complete(targets: VideoTargets) -> bool:
    """Verified, not only present: the mp4 holds a frame for every video packet of the input, the JSON
    lines file a whole record for each, the COCO file is a whole JSON list, and each ``--format`` output is
    there (a folder: with a file per frame) (read without decoding a frame). An input with undecodable packets never counts as complete: it is redone."""
    frames = _video_packets(targets.source)
    if not frames:
        return False
    if targets.video is not None and targets.video != Path() and _video_packets(targets.video) != frames:
        return False
    try:
        if targets.json is not None:
            records = [json.loads(line) for line in targets.json.read_text(encoding="utf-8").splitlines()]
            if len(frames_of(records)) != frames or any(
                r.get("schema") not in (KEYPOINTS_SCHEMA, STREAM_SCHEMA) for r in records
            ):
                return False  # a version 2 file has a header line besides the frames; version 1 has none
        if targets.coco is not None and not isinstance(
            json.loads(targets.coco.read_text(encoding="utf-8")), list
        ):
            return False
        if not all(FORMATS[fmt].complete(path, frames) for fmt, path in targets.formats.items()):
            return False
    except (OSError, ValueError, AttributeError):
        return False
    return True


def _video_packets(path: str | Path) -> int | None:
    """Packets of the first video stream (demuxed, not decoded), or ``None`` if it cannot be read."""
    import av

    try:
        with av.open(str(path)) as container:
            stream = container.streams.video[0]
            return sum(1 for packet in container.demux(stream) if packet.size)
    except (av.error.FFmpegError, IndexError, OSError):
        return None


def plan_image_outputs(
    inputs: list[Path], out: Path, *, keypoints: bool, overwrite: bool, skip_existing: bool = False
) -> tuple[list[tuple[Path, Path, Path | None]], list[Path]]:
    """(input, annotated image, keypoints file or None) for each input, every target checked up front:
    none may be an input (``--out`` the inputs' own folder), none may exist without --overwrite.

    ``skip_existing``: an input whose outputs all exist and are complete (:func:`image_outputs_complete`)
    is left out of the plan and returned second, so an interrupted batch resumes where it stopped; one
    whose outputs exist but are not complete is redone with --overwrite and refused without it.
    """
    import cv2

    used: set[str] = set()
    plan, skipped = [], []
    known = InputFiles(inputs)
    for path in inputs:
        stem = unique_stem(path.stem, used)
        suffix = path.suffix.lower() if cv2.haveImageWriter(f"x{path.suffix}") else ".png"
        target = out / f"{stem}{suffix}"
        keypoints_target = out / f"{stem}.json" if keypoints else None
        files = [
            (f, what) for f, what in ((target, "output image"), (keypoints_target, "keypoints file")) if f
        ]
        if skip_existing and all(f.exists() for f, _ in files):
            if image_outputs_complete(target, keypoints_target):
                skipped.append(path)
                continue
            if not overwrite:
                raise InputError(
                    f"the outputs of {path} exist but are not complete (an interrupted run?); add "
                    f"{option('overwrite', True)} to redo them with --skip-existing"
                )
        for file, what in files:
            check_name_length(file, what)
            refuse_input(file, what, known)
            refuse_existing(file, what, overwrite)
        plan.append((path, target, keypoints_target))
    return plan, skipped


def image_outputs_complete(image: Path, keypoints: Path | None) -> bool:
    """Verified, not only present: the annotated image decodes, and the keypoints file (if any) is one
    whole keypoints record (files are written whole, so a cut-short one is a damaged copy)."""
    import cv2

    if cv2.imread(str(image), cv2.IMREAD_REDUCED_GRAYSCALE_8) is None:
        return False
    if keypoints is None:
        return True
    try:
        record = json.loads(keypoints.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return (
        isinstance(record, dict)
        and record.get("schema") == KEYPOINTS_SCHEMA
        and isinstance(record.get("people"), list)
    )


def plan_image_file(
    inputs: list[Path], out: Path, *, keypoints: bool, overwrite: bool
) -> tuple[Path, Path, Path | None]:
    """``--out`` naming the annotated image itself (a path with an extension that is not a folder): one
    input only; the keypoints go beside it as ``<out stem>.json``."""
    import cv2

    if len(inputs) > 1:
        raise InputError(f"--out {out} names one image but {len(inputs)} images were given; give a folder "
                         "(each image gets <name> files there)")  # fmt: skip
    if not cv2.haveImageWriter(str(out)):
        raise InputError(f"--out {out}: cannot write {out.suffix} images; use .jpg or .png, or a folder")
    check_output_dir(out.parent)
    keypoints_target = out.with_suffix(".json") if keypoints else None
    if keypoints_target == out:
        raise InputError(f"--out {out} would be the keypoints file too; name the image .jpg or .png")
    for file, what in ((out, "output image"), (keypoints_target, "keypoints file")):
        if file is not None:
            refuse_input(file, what, inputs)
            refuse_existing(file, what, overwrite)
    return inputs[0], out, keypoints_target


def unique_stem(stem: str, used: set[str]) -> str:
    """Two inputs called x.jpg in different folders must not overwrite each other's output."""
    candidate, n = stem, 1
    while candidate in used:
        candidate, n = f"{stem}_{n}", n + 1
    used.add(candidate)
    return candidate
