"""Command: ``hhrt image`` (annotated pictures, keypoints as JSON beside them)."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from hhrnet_rt.cli.app import BackendName, DecodeOn, DecodeOnOpt, Overwrite, app, console, handle_errors
from hhrnet_rt.cli.inputs_expand import expand_images
from hhrnet_rt.cli.model_options import (
    Backend,
    Device,
    Engine,
    Fast,
    Flip,
    InputSize,
    MaxPeople,
    MinScore,
    PrecisionOpt,
    Recursive,
    Refine,
    Threads,
    Weights,
    make_estimator,
)
from hhrnet_rt.cli.stream_io import stdout
from hhrnet_rt.cli.targets import plan_image_outputs
from hhrnet_rt.core.errors import InputError
from hhrnet_rt.core.inputs import check_image_file, read_image
from hhrnet_rt.core.outputs import check_output_dir, write_new_file
from hhrnet_rt.core.runs import new_run_dir, remove_if_empty
from hhrnet_rt.draw import annotator_for
from hhrnet_rt.poses import KEYPOINTS_SCHEMA


@app.command()
@handle_errors
def image(
    inputs: Annotated[
        list[str], typer.Argument(help="Image files, folders or glob patterns.", show_default=False)
    ],  # checked by hhrnet_rt.core.inputs
    out: Annotated[
        Path | None,
        typer.Option(
            "--out",
            "-o",
            help="Folder for the annotated images (created). Default: a new runs/pose/N folder.",
            show_default=False,
        ),
    ] = None,
    json_out: Annotated[
        bool, typer.Option("--json", help="Also write <name>.json with the keypoints.")
    ] = False,
    recursive: Recursive = False,
    min_score: MinScore = None,
    max_people: MaxPeople = None,
    weights: Weights = None,
    backend: Backend = BackendName.auto,
    engine: Engine = None,
    precision: PrecisionOpt = None,
    device: Device = None,
    input_size: InputSize = None,
    flip: Flip = None,
    fast: Fast = False,
    refine: Refine = True,
    exif_orientation: Annotated[
        bool,
        typer.Option(
            "--exif-orientation/--ignore-exif-orientation",
            help="Turn photos upright as their EXIF orientation says (default, like image viewers); "
            "--ignore-exif-orientation keeps the stored pixels, as the official COCO evaluation does.",
        ),
    ] = True,
    decode_on: DecodeOnOpt = DecodeOn.auto,
    threads: Threads = None,
    overwrite: Overwrite = False,
) -> None:
    """Annotate images; keypoints optionally as JSON beside the annotated images."""

    paths = expand_images(inputs, recursive=recursive)
    for path in paths:  # all inputs are checked before the model loads
        check_image_file(path)
    run_dir = new_run_dir() if out is None else None
    try:
        folder = check_output_dir(out) if out is not None else run_dir
        plan = plan_image_outputs(paths, folder, keypoints=json_out, overwrite=overwrite)
        estimator = make_estimator(
            weights, backend, engine, device, input_size, flip, refine, precision, decode_on, threads, fast
        )
        _images(plan, estimator, exif_orientation=exif_orientation, min_score=min_score,
                max_people=max_people, overwrite=overwrite)  # fmt: skip
    finally:
        if run_dir is not None:
            remove_if_empty(run_dir)
    if run_dir is not None and run_dir.is_dir():
        console.print(f"results saved to [bold]{escape(str(run_dir))}[/]", highlight=False)


def _images(plan, estimator, *, exif_orientation, min_score, max_people, overwrite) -> None:
    import cv2

    annotator = annotator_for(min_score)
    table = Table("image", "people", "ms", "written")
    for path, target, keypoints_target in plan:
        picture = read_image(path, exif_orientation=exif_orientation)
        t0 = time.perf_counter()
        poses = estimator.predict(picture).select(min_score, max_people)  # drawn = counted = written
        ms = 1e3 * (time.perf_counter() - t0)
        drawn = int(annotator.drawn(poses).sum())
        encoded, data = cv2.imencode(target.suffix, annotator.annotate(picture, poses))
        if not encoded:
            raise InputError(f"could not encode {target}")
        write_new_file(target, data.tobytes(), overwrite=overwrite)
        people = str(drawn)
        if keypoints_target is not None:
            record = {"schema": KEYPOINTS_SCHEMA, "image": str(path), "width": picture.shape[1],
                      "height": picture.shape[0], "people": poses.to_records()}  # fmt: skip
            write_new_file(keypoints_target, (json.dumps(record) + "\n").encode(), overwrite=overwrite)
            if drawn != len(poses):
                people = f"{drawn} ({len(poses)} in JSON)"
        table.add_row(str(path), people, f"{ms:.0f}", str(target))
    stdout.print(table)
