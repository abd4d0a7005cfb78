"""What ``hhrt video`` and ``hhrt webcam`` share around a run: batching options, the sinks of one stream,
output checks, the progress display and the summary.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from hhrnet_rt.cli.app import console
from hhrnet_rt.core.outputs import check_output_path
from hhrnet_rt.video import CocoSink, JsonLinesSink, Mp4Sink
from hhrnet_rt.video.pipeline import DEFAULT_MAX_WAIT_MS
from hhrnet_rt.video.report import streams_table, summary_table

# Tables are results, not diagnostics: they go to stdout.
stdout = Console()

Batch = Annotated[
    int,
    typer.Option(
        min=1,
        help="Frames per inference call: frames of several inputs, or consecutive frames of one file "
        "(1: one call per frame). Larger batches keep a GPU busy; on a CPU they rarely help.",
    ),
]
MaxWaitMs = Annotated[
    float,
    typer.Option(
        min=0.0,
        help="How long inference waits for a batch to fill once it has a frame (the latency --batch may "
        "add to a live stream).",
    ),
]


DecodeThreads = Annotated[
    int,
    typer.Option(
        min=1,
        help="Threads that group the people of one batch's frames side by side (1: the decode thread "
        "alone). For many streams on a fast GPU, where grouping every frame in one thread can be the "
        "slowest stage.",
    ),
]


@dataclass(frozen=True)
class Batching:
    """--batch, --max-wait-ms and --decode-threads, as :func:`hhrnet_rt.video.run_streams` takes them."""

    batch: int = 1
    max_wait_ms: float = DEFAULT_MAX_WAIT_MS
    decode_threads: int = 1

    def run_options(self) -> dict:
        return {"batch": self.batch, "max_wait_ms": self.max_wait_ms, "decode_threads": self.decode_threads}


def progress() -> Progress:
    return Progress(
        TextColumn("[progress.description]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[fps]:.1f} FPS"),
        TimeRemainingColumn(),
        console=console,
        transient=False,
    )


def open_sinks(
    out: Path | None, json_out: Path | None, coco: Path | None, source, *, live: bool, overwrite: bool
):
    """The sinks of one stream (none of them left open if one fails to open)."""

    sinks = []
    try:
        if out is not None:
            # Files too: their frames' presentation times (variable frame rate stays as it was).
            time_base = None if live else source.time_base
            mp4 = Mp4Sink(
                out,
                source.fps,
                rate=source.rate,
                timestamps="capture",
                time_base=time_base,
                overwrite=overwrite,
            )
            if mp4.warning:
                console.print(f"[yellow]warning:[/] {mp4.warning}", highlight=False)
            sinks.append(mp4)
        if json_out is not None:
            sinks.append(JsonLinesSink(json_out, overwrite=overwrite))
        if coco is not None:
            sinks.append(CocoSink(coco, overwrite=overwrite))
    except BaseException:
        for sink in sinks:
            sink.close()
        raise
    return sinks


def check_outputs(
    out: Path | None, json_out: Path | None, coco: Path | None, *, overwrite: bool, inputs: list[Path]
) -> None:
    """Fail on bad output paths before anything is opened and the (slow) model is loaded: never an
    input, never an existing file without --overwrite."""

    for path, suffixes, what in (
        (out, (".mp4",), "output video"),
        (json_out, (".jsonl", ".ndjson"), "JSON lines file"),
        (coco, (".json",), "COCO results file"),
    ):
        if path is not None:
            check_output_path(path, suffixes, what, overwrite=overwrite, inputs=inputs)


def print_summary(result, title: str) -> None:
    """The run's table (all streams together), a per-stream table when there are several, warnings."""

    stdout.print(summary_table(result, title=title))
    if len(result.streams) > 1:
        stdout.print(streams_table(result))
    for stream in result.streams:
        if stream.decode_failures:
            name = f"{escape(stream.name)}: " if len(result.streams) > 1 else ""
            console.print(f"[yellow]warning:[/] {name}{stream.decode_failures} frame(s) of the input could "
                          "not be decoded and were skipped", highlight=False)  # fmt: skip
    if result.threads_still_running:
        console.print(
            f"[yellow]warning:[/] stages still running at exit: {', '.join(result.threads_still_running)}"
        )
