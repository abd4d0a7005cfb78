"""Command ``hhrt convert``: keypoints from a JSON lines file into other tools' formats, after the fact.

The same writers as ``hhrt video --format`` (:mod:`hhrnet_rt.video.formats`), fed the records read back
from the file, so a run with ``--format X --json`` and ``convert`` of its JSON lines give the same bytes.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

from rich.markup import escape

from hhrnet_rt.cli import progress
from hhrnet_rt.cli.app import app, handle_errors
from hhrnet_rt.cli.options_draw import Quiet
from hhrnet_rt.cli.options_formats import ConvertFormats, ConvertOut, FrameHeight, FrameWidth, JsonLinesInput
from hhrnet_rt.cli.run_options import Overwrite
from hhrnet_rt.cli.run_report import no_empty_folders
from hhrnet_rt.cli.stream_io import stdout
from hhrnet_rt.cli.targets import check_format_targets, format_targets, is_folder_target
from hhrnet_rt.core.errors import InputError
from hhrnet_rt.core.inputs import check_input_file
from hhrnet_rt.core.outputs import InputFiles, check_output_dir
from hhrnet_rt.video.formats import FORMATS, parse_formats, read_records
from hhrnet_rt.video.formats import convert as convert_records


@app.command()
@handle_errors
@progress.levelled
def convert(
    source: JsonLinesInput,
    formats: ConvertFormats = None,
    out: ConvertOut = None,
    width: FrameWidth = None,
    height: FrameHeight = None,
    overwrite: Overwrite = False,
    quiet: Quiet = False,
) -> None:
    """Write the keypoints of a JSON lines file in other tools' formats (--format, one or more).

    hhrt convert walk.jsonl --format coco-dataset,csv writes walk.coco-dataset.json and walk.csv beside it.
    """
    names = parse_formats(formats)
    if not names:
        raise InputError(f"say which format to write: --format NAME (one of {', '.join(FORMATS)})")
    source = check_input_file(source, "JSON lines file")
    with no_empty_folders(out):  # a folder made for --out goes again if nothing is written into it
        _convert(source, _targets(source, out, names), width=width, height=height, overwrite=overwrite)


def _convert(source: Path, targets: dict[str, Path], *, width: int | None, height: int | None,
             overwrite: bool) -> None:  # fmt: skip
    """The writers opened (every target checked first), fed the file's records, and a line per file."""
    check_format_targets(targets, overwrite=overwrite, inputs=InputFiles([source]))
    writers = []
    try:
        for name, path in targets.items():
            writers.append(FORMATS[name].open(path, overwrite=overwrite))
    except BaseException:
        for writer in writers:
            writer.discard()
        raise
    with progress.bar("KiB") as bar:
        frames = _feed(
            source, writers, bar, defaults={"source": source.name, "width": width, "height": height}
        )
    if frames == 0:
        progress.warn(f"{source} holds no frame records: nothing was written")
        return
    if not progress.quiet():
        for name, path in targets.items():
            stdout.print(f"{name}: {escape(str(path))} ({frames} frames)", highlight=False)


def _feed(source: Path, writers: list[Any], bar: Any, *, defaults: dict[str, Any]) -> int:
    """The file's records through the writers, the bar following the bytes read (the frame count is
    not known before the end)."""
    total_kib = max(source.stat().st_size // 1024, 1)
    task = bar.add_task(escape(source.name), total=total_kib)
    done = 0
    with source.open("rb") as file:

        def lines() -> Iterator[bytes]:
            nonlocal done
            for line in file:
                yield line
                done += len(line)

        frames = convert_records(read_records(lines(), str(source)), writers, defaults=defaults,
                                 on_frame=lambda: bar.update(task, completed=done // 1024))  # fmt: skip
    bar.update(task, completed=total_kib)
    return frames


def _targets(source: Path, out: Path | None, names: tuple[str, ...]) -> dict[str, Path]:
    """Beside the input, in the folder ``out`` names, or (one format) at ``out`` itself."""
    if out is None:
        return format_targets(source.parent, source.stem, names)
    if is_folder_target(out) and not (len(names) == 1 and out.suffix == FORMATS[names[0]].suffix):
        return format_targets(check_output_dir(out), source.stem, names)
    if len(names) > 1:
        raise InputError(f"--out {out} names one file but {len(names)} formats were asked for; give a folder")
    return {names[0]: out}
