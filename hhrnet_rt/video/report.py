"""Human-readable summaries of a :class:`~hhrnet_rt.video.pipeline.PipelineResult` (Rich tables)."""

from __future__ import annotations

from rich.markup import escape
from rich.table import Table

from hhrnet_rt.video.meters import format_bytes
from hhrnet_rt.video.pipeline import PipelineResult


def summary_table(result: PipelineResult, title: str = "pipeline") -> Table:
    """Counts, wall time, FPS, per-stage p50/p95 latency, bytes device→host per frame, queue waits."""
    table = Table(title=title, show_header=True, header_style="bold")
    table.add_column("")
    table.add_column("value", justify="right")
    table.add_column("p50 ms", justify="right")
    table.add_column("p95 ms", justify="right")
    frames = f"{result.frames_written} written / {result.frames_read} read"
    if result.frames_dropped:
        frames += f" / {result.frames_dropped} dropped"
    if result.decode_failures:
        frames += f" / {result.decode_failures} undecodable"
    table.add_row("frames", frames, "", "")
    people = f"{result.people_written}"
    if result.people_drawn != result.people_written:
        people = f"{result.people_drawn} drawn / {result.people_written} in the files"
    table.add_row("people (all frames)", people, "", "")
    if len(result.streams) == 1 and (only := result.streams[0]).outages:
        table.add_row("stream", escape(only.describe()), "", "")
    table.add_row("wall time", f"{result.wall_s:.2f} s", "", "")
    table.add_row("end-to-end FPS", f"{result.fps:.2f}", "", "")
    if result.mean_batch > 1:
        table.add_row(
            "inference calls", f"{result.inference_calls} ({result.mean_batch:.1f} frames each)", "", ""
        )
    for name, stats in result.stages.items():
        table.add_row(f"  {name}", f"{stats.count} calls", f"{stats.p50_ms:.1f}", f"{stats.p95_ms:.1f}")
    lat = result.latency
    table.add_row("latency (capture→drawn)", "", f"{lat.p50_ms:.1f}", f"{lat.p95_ms:.1f}")
    if result.d2h.count:
        per_frame = f"{format_bytes(result.d2h.mean_bytes)} (max {format_bytes(result.d2h.max_bytes)})"
        table.add_row("device→host per frame", per_frame, "", "")
    for name, wait in result.queue_waits.items():
        table.add_row(f"queue {name}", f"put {wait.put_s:.2f} s / get {wait.get_s:.2f} s", "", "")
    return table


def streams_table(result: PipelineResult) -> Table:
    """One row per stream (frames, drops, FPS, latency) and the aggregate over all of them."""
    table = Table(title="streams", show_header=True, header_style="bold")
    for column in ("stream", "written", "dropped", "FPS", "p50 ms", "p95 ms", "state"):
        table.add_column(column, justify="left" if column in ("stream", "state") else "right")
    for s in result.streams:
        lat = s.latency
        table.add_row(escape(s.name), str(s.frames_written), str(s.frames_dropped), f"{s.fps:.2f}",
                      f"{lat.p50_ms:.1f}", f"{lat.p95_ms:.1f}", escape(s.describe()))  # fmt: skip
    lat = result.latency
    table.add_row("[bold]all[/]", str(result.frames_written), str(result.frames_dropped), f"{result.fps:.2f}",
                  f"{lat.p50_ms:.1f}", f"{lat.p95_ms:.1f}", f"{len(result.failed)} failed")  # fmt: skip
    return table
