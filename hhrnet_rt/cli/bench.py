"""Command: ``hhrt bench`` -- model-only and end-to-end FPS, per-stage latency, memory, the machine."""

from __future__ import annotations

import json
import os
from typing import Any

from rich import box
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from hhrnet_rt.bench.compare import compare_backends
from hhrnet_rt.bench.run import BenchConfig, frame_shape, run_bench
from hhrnet_rt.cli import progress
from hhrnet_rt.cli.app import app, console, handle_errors
from hhrnet_rt.cli.options import (
    BENCH_ALL,
    BENCH_AUTO,
    BenchBackendOpt,
    BenchBatch,
    BenchDevice,
    BenchEngine,
    BenchFlip,
    BenchFrames,
    BenchInputSize,
    BenchJson,
    BenchPrecision,
    BenchThreads,
    BenchWarmup,
    BenchWeights,
    DecodeOn,
    DecodeOnOpt,
    EndToEnd,
)
from hhrnet_rt.cli.options_draw import Quiet
from hhrnet_rt.cli.run_options import Overwrite
from hhrnet_rt.core.errors import InputError
from hhrnet_rt.core.outputs import check_output_path, write_new_file
from hhrnet_rt.video.meters import format_bytes


def report_tables(report: dict[str, Any]) -> list[Table]:
    """The bench report as Rich tables: summary and per-stage latency."""
    summary = Table(title="hhrt bench", show_header=False)
    summary.add_column("what")
    summary.add_column("value")
    b, m, mo, e2e = report["backend"], report["machine"], report["model_only"], report["end_to_end"]
    cfg = report["config"]
    summary.add_row("backend", f"{b['name']} on {b['device']} ({b['precision']})")
    summary.add_row("why", b["reason"])
    summary.add_row("weights", f"{cfg['weights']} {report['weights_note']}".strip())
    summary.add_row("input", f"{tuple(mo['input_shape'])}, flip={cfg['flip']}")
    summary.add_row(
        "model-only", f"{mo['fps']:.1f} FPS  (p50 {mo['p50_ms']:.2f} ms, p95 {mo['p95_ms']:.2f} ms)"
    )
    if e2e:
        lat = e2e["latency"]
        summary.add_row(
            "end-to-end",
            f"{e2e['fps']:.1f} FPS over {e2e['frames']} frames (latency p50 {lat['p50_ms']:.1f} ms, "
            f"p95 {lat['p95_ms']:.1f} ms)",
        )
    transfer = report.get("transfer")
    if transfer:
        per_frame = format_bytes(transfer["d2h_bytes_per_frame"])
        h, w = transfer["frame_hw"]
        summary.add_row("device→host", f"{per_frame} per {w}x{h} frame ({transfer['decode_on']} decode)")
    mem = report["memory"]
    gpu_mem = (
        f", GPU max allocated {mem['gpu_max_allocated_mib']:.0f} MiB"
        if "gpu_max_allocated_mib" in mem
        else ""
    )
    summary.add_row("memory", f"peak RSS {mem['peak_rss_mib']:.0f} MiB{gpu_mem}")
    summary.add_row("cpu", f"{m['cpu']} ({m['cores']} cores)")
    summary.add_row(
        "gpu", f"{m['gpu']} (cc {m['gpu_capability']}, driver {m['driver']})" if m["gpu"] else "none"
    )
    versions = ", ".join(f"{k} {m[k]}" for k in ("torch", "onnxruntime", "tensorrt") if m.get(k))
    summary.add_row("versions", versions)
    tables = [summary]
    if e2e and e2e["stages"]:
        stages = Table(title="per-stage latency (end-to-end run)")
        for col in ("stage", "p50 ms", "p95 ms"):
            stages.add_column(col, justify="right" if col != "stage" else "left")
        for name, st in e2e["stages"].items():
            stages.add_row(name, f"{st['p50_ms']:.2f}", f"{st['p95_ms']:.2f}")
        tables.append(stages)
    return tables


def comparison_table(report: dict[str, Any]) -> tuple[Table, list[str]]:
    """``hhrt bench --backend all``: one row per backend and precision, and a note for each row that was
    skipped or failed (below the table: reasons are sentences, too long for a column)."""
    cfg = report["config"]
    table = Table(
        title="hhrt bench --backend all",
        box=box.SIMPLE_HEAD,  # fits 80 columns
        pad_edge=False,
        collapse_padding=True,
        caption=f"input {cfg['input_size']}, flip={cfg['flip']}, weights {cfg['weights']}"
        + (" (random: speed only)" if cfg["weights"] == "random" else "")
        + f". ms, FPS: model only; e2e: threaded pipeline; err (heatmap max |error|) and peaks (share "
        f"of heatmap peaks kept): against {report['reference']} on one synthetic frame",
    )
    for col in ("backend", "prec", "device"):
        table.add_column(col, no_wrap=True)
    # ms, FPS: the model alone (p50, mean); e2e: the threaded pipeline; err: heatmap max |error|; peaks:
    # the share of the reference's heatmap peaks found again (the caption says so too)
    for col in ("ms", "FPS", "e2e FPS", "err", "peaks"):
        table.add_column(col, justify="right", no_wrap=True)
    table.add_column("status", no_wrap=True)
    notes = []

    def num(value: float | None, fmt: str) -> str:
        return "-" if value is None else format(value, fmt)

    for row in report["rows"]:
        facts = [row["backend"], row["precision"], row["device"]]
        if "skipped" in row or "error" in row:
            failed = "error" in row
            table.add_row(*facts, "-", "-", "-", "-", "-", "[red]failed[/]" if failed else "skipped")
            notes.append(f"{row['backend']} {row['precision']}: {row['error'] if failed else row['skipped']}")
            continue
        peaks = row["peak_agreement"]
        table.add_row(
            *facts,
            num(row["model_only_p50_ms"], ".2f"),
            num(row["model_only_fps"], ".1f"),
            num(row["end_to_end_fps"], ".1f"),
            num(row["heatmap_max_abs"], ".4f"),
            "-" if peaks is None else f"{100 * peaks:.1f}%",
            "ok",
        )
    return table, notes


@app.command("bench")
@handle_errors
@progress.levelled
def bench_cmd(
    backend: BenchBackendOpt = BENCH_AUTO,
    precision: BenchPrecision = None,
    weights: BenchWeights = "random",
    input_size: BenchInputSize = 512,
    batch: BenchBatch = 1,
    frames: BenchFrames = 100,
    warmup: BenchWarmup = 10,
    engine: BenchEngine = None,
    device: BenchDevice = None,
    flip: BenchFlip = None,
    decode_on: DecodeOnOpt = DecodeOn.auto,
    end_to_end: EndToEnd = True,
    threads: BenchThreads = None,
    json_out: BenchJson = None,
    overwrite: Overwrite = False,
    quiet: Quiet = False,
) -> None:
    """Measure model-only and end-to-end speed of a backend, bytes device→host per frame, the machine."""

    _check_batch_fits(batch, input_size)
    if json_out is not None:  # before minutes of measuring, not after
        json_out.parent.mkdir(parents=True, exist_ok=True)
        json_out = check_output_path(json_out, (".json",), "report file", overwrite=overwrite)

    cfg = BenchConfig(
        backend=backend.value if backend != BENCH_ALL else "auto",
        precision=precision.value if precision is not None else None,
        weights=weights,
        input_size=input_size,
        batch=batch,
        frames=frames,
        warmup=warmup,
        engine=str(engine) if engine is not None else None,
        device=device,
        flip=flip,
        decode_on=decode_on.value,
        end_to_end=end_to_end,
        threads=threads,
    )

    out = Console()  # tables on stdout: they are the command's result
    if backend == BENCH_ALL:
        if precision is not None:
            raise InputError("--backend all measures every precision; leave --precision out")
        # Minutes: each backend's part with its elapsed time, the rows done and the time left.
        with progress.step("measuring every backend", done="measured") as measuring:
            report = compare_backends(cfg, on_step=lambda text: measuring.update(escape(text)),
                                      on_row=lambda done, total: measuring.count(done, total, "backends"))  # fmt: skip
        table, notes = comparison_table(report)
        out.print(table)
        for note in notes:
            out.print(escape(note), highlight=False)
    else:
        try:
            with progress.step("measuring", done="measured") as measuring:
                report = run_bench(cfg, on_step=lambda text: measuring.update(escape(text)))
        except MemoryError:  # what the estimate below let through: the activations, not the input
            raise InputError(
                f"--batch {batch} needs more memory than this machine has; try a smaller --batch"
            ) from None
        for table in report_tables(report):
            out.print(table)
    if json_out is not None:
        write_new_file(json_out, (json.dumps(report, indent=2) + "\n").encode(), overwrite=overwrite)
        console.print(f"[green]report[/] {json_out}", highlight=False)


def _check_batch_fits(batch: int, input_size: int) -> None:
    """Refuse a batch whose input alone (float32, the bench's 16:9 frame) would not fit in memory: the
    network's activations need many times more, and numpy's MemoryError is a traceback."""
    h, w = frame_shape(input_size)
    need = batch * 3 * h * w * 4
    try:
        have = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):  # not Linux/macOS: the MemoryError handler above decides
        return
    if need > have // 4:
        raise InputError(
            f"--batch {batch} at input size {input_size} needs {need / 2**30:.1f} GiB for the input alone "
            f"(and several times that for the network); this machine has {have / 2**30:.0f} GiB: try "
            f"--batch {max(1, batch * (have // 4) // max(need, 1))} or less"
        )
