"""Command: ``hhrt val`` -- COCO / CrowdPose keypoint AP of any backend and precision (:mod:`hhrnet_rt.val`)."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import typer
from rich import box
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

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
    Compare,
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
from hhrnet_rt.core.errors import InputError
from hhrnet_rt.core.names import BACKEND_REQUESTS, PRECISIONS
from hhrnet_rt.core.outputs import check_output_path, write_new_file
from hhrnet_rt.runtime.config import EstimatorConfig
from hhrnet_rt.val import ValReport, evaluate
from hhrnet_rt.val.compare import compare
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


def write_json(path: Path, obj: object, what: str, overwrite: bool, official: bool = False) -> None:
    """A new JSON file (an existing one only with --overwrite; checked before the run, too); ``official``:
    formatted as the official results file (sorted keys, indent 4)."""
    text = json.dumps(obj, indent=4 if official else 2, sort_keys=official, default=str)
    write_new_file(path, (text + "\n").encode(), overwrite=overwrite)
    console.print(f"[green]{what}[/] {escape(str(path))}", highlight=False)


#: The runtime of each kind of file `hhrt build-engine` writes.
_FILE_BACKENDS = {".engine": "tensorrt", ".onnx": "onnxruntime", ".xml": "openvino"}


def compare_row(base: EstimatorConfig, item: str) -> tuple[str, EstimatorConfig]:
    """``--compare ITEM``: a built file (its own input size, flip, precision and weights) or
    ``BACKEND[:PRECISION]`` with the other options of the command."""
    suffix = Path(item).suffix.lower()
    if suffix in _FILE_BACKENDS:
        return item, replace(base, engine=Path(item), backend=_FILE_BACKENDS[suffix], weights=None,
                             precision=None, input_size=None, flip=None, device=None)  # fmt: skip
    backend, _, precision = item.partition(":")
    if backend not in BACKEND_REQUESTS or (precision and precision not in PRECISIONS):
        raise typer.BadParameter(
            f"--compare takes BACKEND[:PRECISION] ({', '.join(BACKEND_REQUESTS)}; {', '.join(PRECISIONS)}) or "
            f"a .engine/.onnx/.xml file, got {item!r}"
        )
    return item, replace(base, backend=backend, precision=precision or None, engine=None, device=None)


def comparison_table(rows: list[dict]) -> tuple[Table, list[str]]:
    """``hhrt val --compare``: one row per estimator; reasons for skipped or failed rows as notes."""
    table = Table(title="hhrt val --compare", box=box.SIMPLE_HEAD, pad_edge=False, collapse_padding=True,
                  caption="ΔAP: AP points against the first row; FPS: images per second, end to end")  # fmt: skip
    for col in ("model", "AP", "ΔAP", "FPS", "people", "NaN/inf", "status"):
        table.add_column(col, justify="left" if col in ("model", "status") else "right")
    notes = []
    for row in rows:
        if "stats" not in row:
            failed = "error" in row
            table.add_row(row["label"], "-", "-", "-", "-", "-", "[red]failed[/]" if failed else "skipped")
            notes.append(f"{row['label']}: {row.get('error') or row.get('skipped')}")
            continue
        bad = row["nonfinite"]
        table.add_row(row["label"], f"{100 * row['AP']:.1f}", f"{row['dAP']:+.2f}", f"{row['fps']:.2f}",
                      str(row["people"]), f"{bad['values']} in {bad['images']}", "ok")  # fmt: skip
    return table, notes


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
    compare_with: Compare = None,
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
    bar = Progress(
        TextColumn("evaluating"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(), console=console
    )
    if compare_with:
        if results is not None:
            raise InputError("--results writes one model's records: leave it out with --compare")
        rows = [("the model above" if not weights else weights, config)]
        rows += [compare_row(config, item) for item in compare_with]
        with bar:
            task = bar.add_task("images", total=None)
            table_rows = compare(
                rows, images, annotations, dataset=None if dataset == ValDataset.auto else dataset.value,
                max_images=max_images, on_step=lambda msg: console.print(f"[cyan]•[/] {escape(msg)}"),
                progress=lambda done, total: bar.update(task, completed=done, total=total),
            )  # fmt: skip
        table, notes = comparison_table(table_rows)
        out = Console()
        out.print(table)
        for note in notes:
            out.print(escape(note), highlight=False)
        if json_out is not None:
            compared = {"compare": table_rows}
            write_json(json_out, compared, "report", overwrite)
        return
    estimator = make_estimator(config)
    with bar:
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
        write_json(json_out, facts, "report", overwrite)
    if results is not None:
        write_json(results, report.records, "results", overwrite, official=True)
