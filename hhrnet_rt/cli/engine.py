"""Command: ``hhrt build-engine`` -- precision-baked ONNX, agreement report and (where TensorRT is) an engine."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import typer
from rich.table import Table

from hhrnet_rt.artifacts.shape_profile import parse_shapes
from hhrnet_rt.cli import progress
from hhrnet_rt.cli.app import app, console, handle_errors
from hhrnet_rt.cli.options import (
    BuildFlip,
    BuildInputSize,
    BuildName,
    BuildOut,
    BuildPrecision,
    BuildWeights,
    Calib,
    CalibCount,
    CalibMethod,
    CalibMethodOpt,
    DeconvWeightAxis,
    EngineMaxBatch,
    Precision,
    Shapes,
    Target,
    TargetOpt,
    WorkspaceGib,
)
from hhrnet_rt.cli.options_draw import Quiet
from hhrnet_rt.cli.options_val import GateAnnotations, GateImages, MaxApDrop
from hhrnet_rt.cli.run_options import Overwrite
from hhrnet_rt.core.errors import InputError
from hhrnet_rt.export.build import BuildResult, build_onnx_files, build_tensorrt_engine
from hhrnet_rt.export.deconv_report import report_lines
from hhrnet_rt.export.quantize import DEFAULT_DECONV_WEIGHT_AXIS
from hhrnet_rt.val import gate


def _parse_shapes(value: str | None) -> Any:
    if value is None:
        return None

    try:
        return parse_shapes(value)
    except InputError as exc:
        raise typer.BadParameter(str(exc)) from None


def agreement_table(precision: str, report: dict[str, Any], runtime: str = "ONNX Runtime") -> Table:
    """The agreement report as a Rich table (one row per figure)."""

    def fmt(v: Any) -> str:
        if v is None:
            return "n/a"
        if isinstance(v, float):
            return f"{v:.4g}" if abs(v) < 1 else f"{v:.3f}"
        return str(v)

    table = Table(title=f"{precision} vs fp32 ({runtime}, CPU)")
    table.add_column("figure")
    table.add_column("value", justify="right")
    rows = [
        ("images", "images"),
        ("heatmap max |err|", "heatmap_max_abs"),
        ("heatmap mean |err|", "heatmap_mean_abs"),
        ("tags max |err|", "tags_max_abs"),
        ("tags mean |err|", "tags_mean_abs"),
        ("fp32 peaks", "peaks_fp32"),
        ("peak agreement", "peak_agreement"),
        ("people fp32 / other", None),
        (f"people agreement (<= {report.get('tol_px', 2)} px)", "people_agreement"),
        (f"keypoint agreement (<= {report.get('tol_px', 2)} px)", "keypoint_agreement"),
    ]
    for label, key in rows:
        if key is None:
            value = f"{report.get('people_fp32', 'n/a')} / {report.get('people_other', 'n/a')}"
        else:
            value = fmt(report.get(key))
        table.add_row(label, value)
    table.caption = report.get("images_from", "")
    if report.get("weights_note"):
        table.caption += f"; {report['weights_note']}"
    return table


@app.command("build-engine")
@handle_errors
@progress.levelled
def build_engine_cmd(
    weights: BuildWeights,
    precision: BuildPrecision = Precision.fp16,
    input_size: BuildInputSize = 512,
    shapes: Shapes = None,
    max_batch: EngineMaxBatch = None,
    flip: BuildFlip = True,
    calib: Calib = None,
    calib_count: CalibCount = 200,
    calib_method: CalibMethodOpt = CalibMethod.percentile,
    deconv_weight_axis: DeconvWeightAxis = None,
    out: BuildOut = Path("engines"),
    name: BuildName = None,
    workspace_gib: WorkspaceGib = 4.0,
    target: TargetOpt = Target.tensorrt,
    val_images: GateImages = None,
    val_annotations: GateAnnotations = None,
    max_ap_drop: MaxApDrop = gate.DEFAULT_MAX_AP_DROP,
    overwrite: Overwrite = False,
    quiet: Quiet = False,
) -> None:
    """Export the pose graph to ONNX at the chosen precision, report its agreement with fp32, and build a
    TensorRT engine where TensorRT is installed (otherwise stop after the ONNX, exit code 5). With
    --val-images and --val-annotations, measure the AP of fp32 and of the built file and refuse (exit 10)
    a build that loses more than --max-ap-drop AP points."""
    gate.check_val_options(val_images, val_annotations)  # before minutes of building, not after
    profile = _parse_shapes(shapes)
    logging.getLogger("hhrnet_rt").setLevel(logging.INFO)
    if deconv_weight_axis is not None and (precision is not Precision.int8 or target is not Target.tensorrt):
        progress.warn("--deconv-weight-axis only changes int8 builds for --target tensorrt; ignored")

    def step(msg: str) -> None:
        progress.note(f"[cyan]•[/] {msg}")

    # Export, calibration (minutes for 200 images) and quantisation: each part with its elapsed time,
    # the images read and the time left.
    with progress.step("building", done="ONNX files built") as building:
        result = build_onnx_files(
            weights, precision.value, input_size=input_size, profile=profile, max_batch=max_batch, flip=flip,
            calib=calib, calib_count=calib_count, calib_method=calib_method.value, out_dir=out, name=name,
            deconv_weight_axis=DEFAULT_DECONV_WEIGHT_AXIS if deconv_weight_axis is None else deconv_weight_axis,
            target=target.value, overwrite=overwrite,
            on_step=building.update, on_count=lambda done, total: building.count(done, total, "images"),
            warn=progress.warn,
        )  # fmt: skip
    _report(result, precision, target, workspace_gib, step)
    if val_images is not None and val_annotations is not None:
        _accuracy_gate(result, target, weights, val_images, val_annotations, max_ap_drop, step)


def _accuracy_gate(
    result: BuildResult, target, weights, val_images, val_annotations, max_ap_drop, step
) -> None:
    """AP of fp32 and of the built file into the sidecar; a refused build raises AccuracyGateError (exit 10)."""
    accuracy = gate.measure(
        result, target.value, weights, val_images, val_annotations, max_ap_drop=max_ap_drop, on_step=step
    )
    gate.record(result, accuracy)
    console.print(f"[green]accuracy[/] {gate.accuracy_line(accuracy)}", highlight=False)


def _report(result, precision, target, workspace_gib, step) -> None:
    """The agreement table and the files; with the TensorRT target, the engine build."""
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    if result.sidecar.agreement:
        runtime = "OpenVINO" if target is Target.openvino else "ONNX Runtime"
        console.print(agreement_table(precision.value, result.sidecar.agreement, runtime))
    deconvs = (result.sidecar.agreement or {}).get("deconvolutions", [])
    for line in report_lines(deconvs):
        console.print(line, highlight=False, markup=False, soft_wrap=True)
    console.print(
        f"[green]ONNX[/] {result.onnx_path}\n[green]sidecar[/] {result.sidecar_path}", highlight=False
    )
    if target is Target.openvino:
        console.print(f"[green]OpenVINO model[/] {result.engine_path}", highlight=False)
        console.print(
            f"run it with: hhrt video IN --backend openvino --engine {result.engine_path}", highlight=False
        )
        return
    if target is Target.cpu:
        console.print(
            f"run it with: hhrt video IN --backend onnxruntime --engine {result.onnx_path}", highlight=False
        )
        return
    bar = Progress(TextColumn("{task.description}"), BarColumn(), TimeElapsedColumn(), console=console)
    with bar:
        # Raises TensorRTUnavailableError (exit 5) where TensorRT is missing; the ONNX files are kept.
        build_tensorrt_engine(result, workspace_gib=workspace_gib, progress=bar, on_step=step)
    for line in report_lines(deconvs, (result.sidecar.tensorrt or {}).get("deconvolutions", {})):
        console.print(line, highlight=False, markup=False, soft_wrap=True)
    for row in (result.sidecar.tensorrt or {}).get("io", []):
        console.print(
            f"  {row['mode']:<6} {row['name']:<9} {row['dtype']:<7} {row['shape']}", highlight=False
        )
    console.print(f"[green]engine[/] {result.engine_path}", highlight=False)
