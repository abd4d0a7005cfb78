"""Command: ``hhrt val`` -- COCO / CrowdPose keypoint AP of any backend and precision (:mod:`hhrnet_rt.val`)."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from hhrnet_rt.cli.app import app, console, handle_errors
from hhrnet_rt.cli.estimator import make_estimator, model_config
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
    PrecisionOpt,
    Refine,
    Threads,
    Weights,
)
from hhrnet_rt.cli.options_val import (
    MaxImages,
    Scales,
    ValAnnotations,
    ValDataset,
    ValDatasetOpt,
    ValImages,
    ValJson,
    ValResults,
    parse_scales,
)
from hhrnet_rt.cli.run_options import Overwrite
from hhrnet_rt.core.outputs import check_output_path, write_new_file
from hhrnet_rt.val import ValReport, evaluate
from hhrnet_rt.val.metrics import official_table


def print_report(out: Console, report: ValReport, arch: str) -> None:
    """The stats as the official repo prints them, then people, speed and NaN/inf counts."""
    out.print(official_table(report.dataset, report.stats, arch), highlight=False, soft_wrap=True)
    d = report.to_dict()
    out.print(
        f"{d['images']} images, {d['people']} people ({d['mean_people_per_image']:.2f} per image), "
        f"{d['fps']:.2f} images/s end to end, {100 * d['overhead']:.1f}% of the time outside inference",
        highlight=False,
    )
    bad = report.nonfinite
    colour = "red" if bad["values"] else "green"
    out.print(
        f"[{colour}]NaN/inf in the network outputs: {bad['values']} values in {bad['images']} images[/]"
    )


@app.command("val")
@handle_errors
def val_cmd(
    images: ValImages,
    annotations: ValAnnotations,
    dataset: ValDatasetOpt = ValDataset.auto,
    weights: Weights = None,
    backend: Backend = AUTO_BACKEND,
    engine: Engine = None,
    precision: PrecisionOpt = None,
    device: Device = None,
    input_size: InputSize = None,
    flip: Flip = None,
    fast: Fast = False,
    refine: Refine = True,
    decode_on: DecodeOnOpt = DecodeOn.auto,
    threads: Threads = None,
    scales: Scales = "1",
    max_images: MaxImages = None,
    json_out: ValJson = None,
    results: ValResults = None,
    overwrite: Overwrite = False,
) -> None:
    """Measure COCO or CrowdPose keypoint AP by the official protocol (valid.py + pycocotools).

    Example: hhrt val --images val2017 --annotations person_keypoints_val2017.json --weights w32_512
    """
    outputs: list[Path] = []
    for path, what in ((json_out, "report file"), (results, "results file")):
        if path is not None:  # before minutes of evaluating, not after
            outputs.append(check_output_path(path, (".json",), what, overwrite=overwrite))
    config = model_config(
        weights=weights, backend=backend, engine=engine, precision=precision, device=device,
        input_size=input_size, flip=flip, fast=fast, refine=refine, decode_on=decode_on, threads=threads,
    )  # fmt: skip
    config = replace(config, scales=parse_scales(scales))
    estimator = make_estimator(config)
    with Progress(
        TextColumn("evaluating"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(), console=console
    ) as bar:
        task = bar.add_task("images", total=None)
        report = evaluate(
            estimator,
            images,
            annotations,
            dataset=None if dataset == ValDataset.auto else dataset.value,
            max_images=max_images,
            progress=lambda done, total: bar.update(task, completed=done, total=total),
        )
    print_report(Console(), report, arch=str(estimator.describe().get("weights", "hhrt")))
    if json_out is not None:
        facts = {**report.to_dict(), "model": estimator.describe()}
        write_new_file(
            json_out, (json.dumps(facts, indent=2, default=str) + "\n").encode(), overwrite=overwrite
        )
        console.print(f"[green]report[/] {escape(str(json_out))}", highlight=False)
    if results is not None:
        write_new_file(
            results,
            (json.dumps(report.records, sort_keys=True, indent=4) + "\n").encode(),
            overwrite=overwrite,
        )
        console.print(f"[green]results[/] {escape(str(results))}", highlight=False)
