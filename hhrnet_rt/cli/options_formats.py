"""The options of ``--format`` (``hhrt video``, ``webcam``, ``image``) and of ``hhrt convert``: the format
names and who reads them come from the registry (:data:`hhrnet_rt.video.formats.FORMATS`)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from hhrnet_rt.video.formats import format_help

Formats = Annotated[
    list[str] | None,
    typer.Option(
        "--format",
        metavar="NAME[,NAME]",
        help="Also write the keypoints in these formats (repeat it, or NAME,NAME): "
        f"{format_help()}. Written where --json goes (else beside the video), <name>.<format> per input "
        "(hhrt image: keypoints.<format> for the batch, in the output folder); "
        "docs/interop.md describes each. `hhrt convert` writes them from a JSON lines file later.",
        show_default=False,
    ),
]

JsonLinesInput = Annotated[
    Path,
    typer.Argument(
        help="A JSON lines file written by hhrt video|webcam --json (version 1 or 2).", show_default=False
    ),
]
ConvertFormats = Annotated[
    list[str] | None,
    typer.Option(
        "--format",
        metavar="NAME[,NAME]",
        help=f"The formats to write (repeat it, or NAME,NAME): {format_help()}.",
        show_default=False,
    ),
]
ConvertOut = Annotated[
    Path | None,
    typer.Option(
        "--out",
        "-o",
        help="A folder (created; <input name>.<format> per format), or with one --format the file or folder "
        "to write. Default: beside the input.",
        show_default=False,
    ),
]
FrameWidth = Annotated[
    int | None,
    typer.Option(
        min=1, help="Frame width, for a file whose header does not say (version 1).", show_default=False
    ),
]
FrameHeight = Annotated[
    int | None,
    typer.Option(
        min=1, help="Frame height, for a file whose header does not say (version 1).", show_default=False
    ),
]
