"""Command: ``hhrt image`` (annotated pictures, keypoints as JSON beside them)."""

from __future__ import annotations

import json
import time
from collections import Counter
from pathlib import Path

from rich.table import Table
from rich.text import Text

from hhrnet_rt.cli import progress
from hhrnet_rt.cli.app import app, console, handle_errors
from hhrnet_rt.cli.estimator import make_estimator, model_config
from hhrnet_rt.cli.failures import Failures
from hhrnet_rt.cli.inputs_expand import expand_images
from hhrnet_rt.cli.options import (
    AUTO_BACKEND,
    Backend,
    DecodeOn,
    DecodeOnOpt,
    Device,
    Engine,
    Fast,
    Flip,
    InputSize,
    MaxAspect,
    PrecisionOpt,
    Refine,
    Threads,
    Weights,
)
from hhrnet_rt.cli.options_draw import Boxes, Labels, LineWidth, Quiet, ShowBelow, Verbose, overlay_style
from hhrnet_rt.cli.options_formats import Formats
from hhrnet_rt.cli.run_options import (
    ExifOrientation,
    ImageInputs,
    ImageJson,
    ImageOut,
    MaxPeople,
    MinScore,
    Overwrite,
    Recursive,
    SkipExisting,
)
from hhrnet_rt.cli.run_report import run_folder
from hhrnet_rt.cli.stream_io import stdout
from hhrnet_rt.cli.targets import (
    check_format_targets,
    format_targets,
    is_folder_target,
    plan_image_file,
    plan_image_outputs,
)
from hhrnet_rt.core.errors import HhrtError, InputError
from hhrnet_rt.core.inputs import check_image_file, read_image
from hhrnet_rt.core.outputs import InputFiles, check_output_dir, write_new_file
from hhrnet_rt.draw import PoseStyle, annotator_for
from hhrnet_rt.poses import KEYPOINTS_SCHEMA
from hhrnet_rt.runtime.estimator import PoseEstimator
from hhrnet_rt.runtime.preprocess import DEFAULT_MAX_ASPECT
from hhrnet_rt.video.formats import FORMATS, check_formats, parse_formats
from hhrnet_rt.video.formats.sink import close_all
from hhrnet_rt.video.records import image_record, images_header, run_header

#: The stem of a batch's --format outputs in a folder (keypoints.csv, keypoints.yolo, ...).
BATCH_STEM = "keypoints"


@app.command()
@handle_errors
@progress.levelled
def image(
    inputs: ImageInputs,
    out: ImageOut = None,
    json_out: ImageJson = False,
    formats: Formats = None,
    recursive: Recursive = False,
    min_score: MinScore = None,
    max_people: MaxPeople = None,
    weights: Weights = None,
    backend: Backend = AUTO_BACKEND,
    engine: Engine = None,
    precision: PrecisionOpt = None,
    device: Device = None,
    input_size: InputSize = None,
    max_aspect: MaxAspect = DEFAULT_MAX_ASPECT,
    flip: Flip = None,
    fast: Fast = False,
    refine: Refine = True,
    exif_orientation: ExifOrientation = True,
    decode_on: DecodeOnOpt = DecodeOn.auto,
    threads: Threads = None,
    overwrite: Overwrite = False,
    skip_existing: SkipExisting = False,
    line_width: LineWidth = None,
    labels: Labels = True,
    boxes: Boxes = False,
    show_below: ShowBelow = False,
    quiet: Quiet = False,
    verbose: Verbose = False,
) -> None:
    """Annotate images; keypoints optionally as JSON beside the annotated images.

    --out names a folder (created), or the annotated image itself when one image is given
    (hhrt image a.jpg --out b.jpg writes b.jpg).
    """

    model = model_config(weights=weights, backend=backend, engine=engine, precision=precision, device=device,
                         input_size=input_size, flip=flip, fast=fast, refine=refine, decode_on=decode_on,
                         threads=threads, max_aspect=max_aspect)  # fmt: skip
    if skip_existing and out is None:
        raise InputError("--skip-existing needs --out: a new run folder holds no earlier outputs")
    names = parse_formats(formats)
    check_formats(names, tracked=False)
    if names and skip_existing:
        raise InputError("--format writes one file per format for the whole batch: it cannot resume an "
                         "interrupted batch (--skip-existing); run the batch again with --overwrite")  # fmt: skip
    paths = expand_images(inputs, recursive=recursive)
    for path in paths:  # all inputs are checked before the model loads
        check_image_file(path)
    style = overlay_style(line_width, labels, boxes, show_below)
    with run_folder(out, outputs=(out,)) as run_dir:
        if out is not None and not is_folder_target(out):
            plan = [plan_image_file(paths, out, keypoints=json_out, overwrite=overwrite)]
            extra = format_targets(out, out.stem, names)
        else:
            folder = check_output_dir(out) if out is not None else run_dir
            assert folder is not None  # run_folder makes one exactly when no --out is given
            plan, skipped = plan_image_outputs(paths, folder, keypoints=json_out, overwrite=overwrite,
                                               skip_existing=skip_existing)  # fmt: skip
            if skipped:
                console.print(
                    f"skipping {len(skipped)} of {len(paths)} images: their outputs are complete",
                    highlight=False,
                )
            if not plan:
                return
            extra = format_targets(folder, BATCH_STEM, names)
        check_format_targets(extra, overwrite=overwrite, inputs=InputFiles(paths))
        _images(plan, make_estimator(model), exif_orientation=exif_orientation, min_score=min_score,
                max_people=max_people, overwrite=overwrite, style=style, formats=extra)  # fmt: skip


def _images(plan: list[tuple[Path, Path, Path | None]], estimator: PoseEstimator, *, exif_orientation: bool,
            min_score: float | None, max_people: int | None, overwrite: bool, style: PoseStyle,
            formats: dict[str, Path]) -> None:  # fmt: skip
    """Each planned image annotated and written; the ``--format`` writers get every image's record and
    are published at the end, also when the batch is interrupted or stops on an error (they then hold the
    images done, as the annotated images on disk do)."""
    writers = [FORMATS[name].open(path, overwrite=overwrite) for name, path in formats.items()]
    header = images_header(estimator.num_joints, run_header(estimator))
    try:
        failures = _annotate(plan, estimator, writers, header, exif_orientation=exif_orientation,
                             min_score=min_score, max_people=max_people, overwrite=overwrite, style=style)  # fmt: skip
    finally:
        close_all(writers)
    failures.raise_if_any("images")


def _annotate(plan, estimator, writers, header, *, exif_orientation: bool, min_score: float | None,
              max_people: int | None, overwrite: bool, style: PoseStyle) -> Failures:  # fmt: skip
    import cv2

    annotator = annotator_for(min_score, style)
    table = Table("image", "people", "ms", "written")
    failures = Failures(total=len(plan))
    done = 0
    named = Counter(path.name for path, _, _ in plan)
    for path, target, keypoints_target in plan:
        try:  # an image that cannot be read fails alone: the others still run (exit 9 names it)
            picture = read_image(path, exif_orientation=exif_orientation)
        except HhrtError as exc:
            failures.add(str(path), exc)
            table.add_row(Text(str(path)), "", "", Text(f"failed: {exc}"))
            continue
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
        # The image's own name in the datasets; two inputs of one name take their outputs' unique stems.
        name = path.name if named[path.name] == 1 else f"{target.stem}{path.suffix}"
        record = image_record(done, name, picture.shape[:2], poses)
        for writer in writers:
            if done == 0:
                writer.begin(header)
            writer.frame(record)
        done += 1
        table.add_row(Text(str(path)), people, f"{ms:.0f}", Text(str(target)))  # names, not markup
    if not progress.quiet():
        stdout.print(table)
    return failures
