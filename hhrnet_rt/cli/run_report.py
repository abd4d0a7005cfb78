"""The run that ``hhrt video`` and ``hhrt webcam`` share: streams through one estimator, with a progress
bar per stream, the summary at the end, and the exit code of an interrupted run.
"""

from __future__ import annotations

import time

import typer

import hhrnet_rt.video as streaming  # looked up at call time: tests and callers may wrap its functions
from hhrnet_rt.cli import signals
from hhrnet_rt.cli.app import console
from hhrnet_rt.cli.stream_io import Batching, print_summary, progress
from hhrnet_rt.core.errors import InputError, PipelineError
from hhrnet_rt.video import Stream
from hhrnet_rt.video.display import Window, gui_problem

NO_BATCHING = Batching()  # one inference call per frame

# How long the end of a run waits for a stage that is busy (one inference call on a slow device).
JOIN_TIMEOUT_S = 30.0


def close_all(opened) -> None:
    """Close the sources and sinks of streams that never reached the pipeline (which closes its own)."""
    for source, sinks in opened:
        for closable in (*sinks, source):
            closable.close()


def run_and_report(
    opened, estimator, *, hud: bool, show: bool, max_frames: int | None, title: str,
    batching: Batching = NO_BATCHING, min_score: float | None = None, max_people: int | None = None,
    over_time=None,
):  # fmt: skip
    """``opened``: ``(source, sinks)`` per stream; runs them all through one estimator, prints the summary.

    ``over_time``: the --track/--smooth settings; every stream gets its own hook (its own IDs and filters).
    """
    try:
        window = Window(f"hhrt {title}") if show else None
    except BaseException:
        close_all(opened)  # run_streams would have closed them; it never started
        raise
    several = len(opened) > 1
    with progress() as bar:
        streams = []
        for source, sinks in opened:
            total = source.frame_count
            if total is not None and max_frames is not None:
                total = min(total, max_frames)
            name = getattr(source, "name", None) or source.description
            task = bar.add_task(name if several else title, total=total, fps=0.0)
            hook = over_time.hook() if over_time is not None else None
            streams.append(Stream(source, sinks, name=name if several else None, on_frame=_ticker(bar, task),
                                  post_decode=hook))  # fmt: skip
        try:
            common = {
                **batching.run_options(),
                "hud": hud,
                "max_frames": max_frames,
                "display": window,
                "join_timeout_s": JOIN_TIMEOUT_S,
                "min_score": min_score,
                "max_people": max_people,
            }
            if several:
                result = streaming.run_streams(streams, estimator, **common)
            else:  # one input: the single-stream entry point (the same runner underneath)
                only = streams[0]
                result = streaming.run_pipeline(only.source, estimator, only.sinks, on_frame=only.on_frame,
                                                post_decode=only.post_decode, **common)  # fmt: skip
        except PipelineError as exc:
            if exc.threads_still_running:
                signals.request_hard_exit()
            raise
    if result.threads_still_running:
        signals.request_hard_exit()  # the interpreter's shutdown would abort under the busy stage
    print_summary(result, title)
    if result.stopped == "interrupted":
        console.print(
            f"[yellow]interrupted[/]: the outputs hold the {result.frames_written} frames processed so far"
        )
        raise typer.Exit(signals.interrupted_exit_code())
    return result


def _ticker(bar, task):
    """The progress update for one stream; runs in the pipeline's output thread (Progress is thread-safe)."""
    t0 = time.perf_counter()
    done = 0

    def on_frame(result) -> None:
        nonlocal done
        done += 1
        bar.update(task, advance=1, fps=done / max(time.perf_counter() - t0, 1e-9))

    return on_frame


def require_window() -> None:
    """Refuse ``--show`` where no window can open, before any work starts."""
    problem = gui_problem()
    if problem:
        raise InputError(f"cannot open a window: {problem}; write the result with --out OUT.mp4 instead")
