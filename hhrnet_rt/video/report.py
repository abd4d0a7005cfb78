"""Human-readable summaries of a :class:`~hhrnet_rt.video.pipeline.PipelineResult` (Rich tables)."""

from __future__ import annotations

from collections.abc import Sequence

from rich.table import Table
from rich.text import Text

from hhrnet_rt.video.meters import format_bytes
from hhrnet_rt.video.pipeline import PipelineResult


def summary_table(
    result: PipelineResult, title: str = "pipeline", *, details: bool = True, files: Sequence[str] = ()
) -> Table:
    """What a user wants first: frames, end-to-end FPS, wall time, people, the ``files`` written; with
    ``details``, then per-stage p50/p95 latency, inference calls, bytes device→host per frame and the time
    each queue's producer and consumer waited (where a slow stage shows)."""
    # Names are Text, not markup: a file called "[a]b.mp4" must show as itself.
    table = Table(title=Text(title), show_header=details, header_style="bold")
    table.add_column("")
    # fold: a long path wraps whole instead of ending in an ellipsis (the user copies it)
    table.add_column("value", justify="right" if details else "left", overflow="fold")
    if details:
        table.add_column("p50 ms", justify="right")
        table.add_column("p95 ms", justify="right")

    def row(name: str, value: str | Text, p50: str = "", p95: str = "") -> None:
        table.add_row(name, value, *((p50, p95) if details else ()))

    frames = f"{result.frames_written} written / {result.frames_read} read"
    if result.frames_dropped:
        frames += f" / {result.frames_dropped} dropped"
    if result.decode_failures:
        frames += f" / {result.decode_failures} undecodable"
    row("frames", frames)
    row("end-to-end FPS", f"{result.fps:.2f}")
    row("wall time", f"{result.wall_s:.2f} s")
    people = f"{result.people_written}"
    if result.people_drawn != result.people_written:
        people = f"{result.people_drawn} drawn / {result.people_written} in the files"
    row("people (all frames)", people)
    for i, path in enumerate(files):
        row("written" if i == 0 else "", Text(path))  # a file name, not markup
    if not details:
        return table
    if result.mean_batch > 1:
        row("inference calls", f"{result.inference_calls} ({result.mean_batch:.1f} frames each)")
    for name, stats in result.stages.items():
        row(f"  {name}", f"{stats.count} calls", f"{stats.p50_ms:.1f}", f"{stats.p95_ms:.1f}")
    lat = result.latency
    row("latency (capture→drawn)", "", f"{lat.p50_ms:.1f}", f"{lat.p95_ms:.1f}")
    if result.d2h.count:
        per_frame = f"{format_bytes(result.d2h.mean_bytes)} (max {format_bytes(result.d2h.max_bytes)})"
        row("device→host per frame", per_frame)
    for name, wait in result.queue_waits.items():
        row(f"queue {name}", f"put {wait.put_s:.2f} s / get {wait.get_s:.2f} s")
    return table


def streams_table(result: PipelineResult) -> Table:
    """One row per stream (frames, drops, FPS, latency) and the aggregate over all of them."""
    table = Table(title="streams", show_header=True, header_style="bold")
    for column in ("stream", "written", "dropped", "FPS", "p50 ms", "p95 ms"):
        table.add_column(column, justify="left" if column == "stream" else "right")
    for s in result.streams:
        lat = s.latency
        table.add_row(Text(s.name), str(s.frames_written), str(s.frames_dropped), f"{s.fps:.2f}",
                      f"{lat.p50_ms:.1f}", f"{lat.p95_ms:.1f}")  # fmt: skip
    lat = result.latency
    table.add_row("[bold]all[/]", str(result.frames_written), str(result.frames_dropped), f"{result.fps:.2f}",
                  f"{lat.p50_ms:.1f}", f"{lat.p95_ms:.1f}")  # fmt: skip
    return table
