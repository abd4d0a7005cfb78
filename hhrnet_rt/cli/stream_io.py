"""What ``hhrt video`` and ``hhrt webcam`` share around a run: its settings (batching, tracking), the
sinks of one stream, output checks, the progress display and the summary.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rich.console import Console

from hhrnet_rt.cli import progress
from hhrnet_rt.cluster import recipe
from hhrnet_rt.core.outputs import check_output_path
from hhrnet_rt.draw import PoseStyle
from hhrnet_rt.track.hook import MAX_GAP_S, TemporalSettings
from hhrnet_rt.video.live import LiveSource
from hhrnet_rt.video.pipeline import DEFAULT_MAX_WAIT_MS
from hhrnet_rt.video.reconnect import DEFAULT_STALL_TIMEOUT_S, ReconnectPolicy
from hhrnet_rt.video.report import streams_table, summary_table
from hhrnet_rt.video.sources import FileSource, is_live_url

# Tables are results, not diagnostics: they go to stdout.
stdout = Console()


@dataclass(frozen=True)
class Batching:
    """--batch, --max-wait-ms and --decode-threads, as :func:`hhrnet_rt.video.run_streams` takes them."""

    batch: int = 1
    max_wait_ms: float = DEFAULT_MAX_WAIT_MS
    decode_threads: int = 1

    def run_options(self) -> dict[str, Any]:
        return {"batch": self.batch, "max_wait_ms": self.max_wait_ms, "decode_threads": self.decode_threads}


@dataclass(frozen=True)
class LiveSettings:
    """--reconnect, --no-reconnect, --stall-timeout, --fail-fast, --metrics-port, --segment-time, and --web
    with the token that guards it off loopback."""

    reconnect: int | None = None
    no_reconnect: bool = False
    stall_timeout_s: float = DEFAULT_STALL_TIMEOUT_S
    fail_fast: bool = False
    metrics_port: int | None = None
    segment_s: float | None = None
    web: str | None = None
    web_token: str | None = None

    def policy(self) -> ReconnectPolicy:
        return ReconnectPolicy(
            enabled=not self.no_reconnect, max_attempts=self.reconnect, stall_timeout_s=self.stall_timeout_s
        )


@dataclass(frozen=True)
class RunSettings:
    """How the frames of ``hhrt video`` / ``webcam`` go through a run: the window, how many, who is kept
    (``--min-score``, ``--max-people``), batching, ``--track`` / ``--smooth`` (a hook per stream) and
    how people are drawn (``--line-width``, ``--labels``, ``--boxes``, ``--show-below``)."""

    show: bool = False
    max_frames: int | None = None
    min_score: float | None = None
    max_people: int | None = None
    batching: Batching = field(default_factory=Batching)
    over_time: TemporalSettings = field(default_factory=TemporalSettings)
    live: LiveSettings = field(default_factory=LiveSettings)
    style: PoseStyle = field(default_factory=PoseStyle)


def temporal_settings(
    track: bool, min_hits: int, max_age: int, min_oks: float,
    smooth: bool, min_cutoff: float, beta: float, d_cutoff: float, max_gap_s: float = MAX_GAP_S,
) -> TemporalSettings:  # fmt: skip
    """The settings the options describe (``--smooth`` implies ``--track``: a filter follows one ID)."""
    return TemporalSettings(
        track or smooth, min_hits, max_age, min_oks, smooth, min_cutoff, beta, d_cutoff, max_gap_s
    )


def open_input(spec: Any, live: LiveSettings, *, lossless: bool, request: tuple[Any, Any, Any] = (None,) * 3):
    """A source for one input: a camera index or live stream URL reconnects as ``live`` says
    (:class:`~hhrnet_rt.video.live.LiveSource`; ``lossless`` keeps every frame, for ``hhrt video``), a local
    file or a video file on a web server (:func:`~hhrnet_rt.video.sources.is_live_url`) is read as a file; what the user should know (a camera's other mode, a first try that failed) is
    printed. ``request``: the width, height and rate asked of a camera."""
    if isinstance(spec, int) or (isinstance(spec, str) and (spec.isdigit() or is_live_url(spec))):
        width, height, fps = request
        camera = int(spec) if isinstance(spec, int) or spec.isdigit() else spec
        source: Any = LiveSource(camera, policy=live.policy(), lossless=lossless, width=width, height=height,
                                 fps=fps)  # fmt: skip
    else:
        source = FileSource(spec)
    if getattr(source, "warning", None):
        progress.warn(source.warning)
    return source


def open_sinks(
    out: Path | None, json_out: Path | None, coco: Path | None, source: Any, *, live: bool, overwrite: bool,
    segment_s: float | None = None, formats: dict[str, Path] | None = None, run_header: dict | None = None,
) -> list[Any]:  # fmt: skip
    """The sinks of one stream (:func:`hhrnet_rt.cluster.recipe.open_sinks`, which Ray workers open too),
    warnings on the console."""

    return recipe.open_sinks(out, json_out, coco, source, live=live, overwrite=overwrite, warn=progress.warn,
                             segment_s=segment_s, formats=formats, run_header=run_header)  # fmt: skip


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


def print_summary(result, title: str, files: list[str]) -> None:
    """The run's table (all streams together: frames, FPS, people, the ``files`` written; stage timings
    and queue waits with ``--verbose``), a per-stream table when there are several, warnings."""

    if not progress.quiet():
        stdout.print(summary_table(result, title=title, details=progress.verbose(), files=files))
        if len(result.streams) > 1:
            stdout.print(streams_table(result))
    for stream in result.streams:
        if stream.decode_failures:
            name = f"{stream.name}: " if len(result.streams) > 1 else ""
            progress.warn(f"{name}{stream.decode_failures} frame(s) of the input could not be decoded and "
                          "were skipped")  # fmt: skip
    if result.threads_still_running:
        progress.warn(f"stages still running at exit: {', '.join(result.threads_still_running)}")
