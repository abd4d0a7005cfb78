"""The run that ``hhrt video`` and ``hhrt webcam`` share: streams through one estimator, with a progress
bar per stream, the summary at the end, and the exit code of an interrupted run.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from pathlib import Path

import typer
from rich.markup import escape

import hhrnet_rt.video as streaming  # looked up at call time: tests and callers may wrap its functions
from hhrnet_rt.cli import progress, signals
from hhrnet_rt.cli.failures import Failures
from hhrnet_rt.cli.metrics import metrics_endpoint
from hhrnet_rt.cli.stream_io import RunSettings, print_summary
from hhrnet_rt.cli.web import Attached, web_view
from hhrnet_rt.core.errors import InputError, PipelineError, SomeInputsFailedError
from hhrnet_rt.core.runs import DEFAULT_RUNS_ROOT, new_run_dir, remove_if_empty
from hhrnet_rt.draw import annotator_for
from hhrnet_rt.video import Stream
from hhrnet_rt.video.display import Window, gui_problem

# How long the end of a run waits for a stage that is busy (one inference call on a slow device).
JOIN_TIMEOUT_S = 30.0


@contextlib.contextmanager
def run_folder(
    out: Path | None, *, announce: bool = True, outputs: tuple[Path | None, ...] = ()
) -> Iterator[Path | None]:
    """A new numbered run folder when no ``--out`` is given (else ``None``): removed again if the run
    leaves it empty; after a run that wrote into it, ``announce`` says where the results are. Folders
    made for ``out`` and the other ``outputs`` are removed when left empty (:func:`no_empty_folders`)."""
    with no_empty_folders(out, *outputs, DEFAULT_RUNS_ROOT if out is None else None):
        run_dir = new_run_dir() if out is None else None
        try:
            yield run_dir
        except SomeInputsFailedError:  # the others completed: their results are there
            _announce(run_dir if announce else None)
            raise
        finally:
            if run_dir is not None:
                remove_if_empty(run_dir)
    _announce(run_dir if announce else None)


def _announce(run_dir: Path | None) -> None:
    if run_dir is not None and run_dir.is_dir() and any(run_dir.iterdir()):
        progress.note(f"results saved to [bold]{escape(str(run_dir))}[/]")


@contextlib.contextmanager
def no_empty_folders(*outputs: Path | None) -> Iterator[None]:
    """Folders that writing ``outputs`` (folders, or files: names with an extension) creates and that
    are still empty when the block ends are removed, so a failed run leaves no empty folders behind.
    Only folders that did not exist before the block are touched, and only when empty."""
    made = {folder for path in outputs if path is not None for folder in _missing_folders(path)}
    try:
        yield
    finally:
        for folder in sorted(made, key=lambda f: len(f.parts), reverse=True):  # deepest first
            remove_if_empty(folder)


def _missing_folders(path: Path) -> list[Path]:
    folder = path if path.suffix == "" or path.is_dir() else path.parent
    missing = []
    while folder != folder.parent and not folder.exists():
        missing.append(folder)
        folder = folder.parent
    return missing


def close_all(opened) -> None:
    """Close the sources and sinks of streams that never reached the pipeline (which closes its own)."""
    for source, sinks in opened:
        for closable in (*sinks, source):
            closable.close()


def run_and_report(
    opened, estimator, run: RunSettings, *, hud: bool, title: str, failures: Failures | None = None
):
    """``opened``: ``(source, sinks)`` per stream; runs them all through one estimator, prints the summary.

    Every stream gets its own post-decode hook from ``run.over_time`` (its own IDs and filters). A stream
    that fails ends alone and goes into ``failures`` (the caller raises once every input has run); without
    ``failures``, or with ``--fail-fast``, a failure is raised here.
    """
    max_frames = run.max_frames
    try:
        window = Window(f"hhrt {title}") if run.show else None
    except BaseException:
        close_all(opened)  # run_streams would have closed them; it never started
        raise
    several = len(opened) > 1
    own = failures is None
    failures = failures or Failures()
    failures.count(len(opened))
    names = [getattr(source, "name", None) or source.description for source, _ in opened]
    annotator = annotator_for(run.min_score, run.style)
    with (
        progress.bar("frames", rate=True) as bar,
        metrics_endpoint(run.live.metrics_port) as monitor,
        web_view(run.live.web, run.live.web_token, names) as view,
    ):
        streams = []
        for i, (source, sinks) in enumerate(opened):
            total = source.frame_count
            if total is not None and max_frames is not None:
                total = min(total, max_frames)
            name = names[i]
            task = bar.add_task(
                escape(name if several else title), total=total, fps=0.0
            )  # a name, not markup
            hook = run.over_time.hook()
            on_frame = _ticker(bar, task, view.frame_hook(i, annotator.drawn) if view is not None else None)
            streams.append(Stream(source, sinks, name=name if several else None, on_frame=on_frame,
                                  post_decode=hook))  # fmt: skip
        common = {
            **run.batching.run_options(),
            "annotator": annotator,
            "hud": hud,
            "max_frames": max_frames,
            "display": window,
            "join_timeout_s": JOIN_TIMEOUT_S,
            "min_score": run.min_score,
            "max_people": run.max_people,
            "monitor": Attached(monitor, view),
        }
        try:
            if several:
                result = streaming.run_streams(streams, estimator, fail_fast=run.live.fail_fast, **common)
            else:  # one input: the single-stream entry point (the same runner underneath)
                only = streams[0]
                result = streaming.run_pipeline(only.source, estimator, only.sinks, on_frame=only.on_frame,
                                                post_decode=only.post_decode, **common)  # fmt: skip
        except PipelineError as exc:
            if exc.threads_still_running:
                signals.request_hard_exit()
            if exc.result is None or run.live.fail_fast:
                raise
            result = exc.result  # every stream failed: the summary says how, then the error
            failures.runs_failed.append(exc)
    if result.threads_still_running:
        signals.request_hard_exit()  # the interpreter's shutdown would abort under the busy stage
    print_summary(result, title, files_written(opened))
    if result.stopped == "interrupted":
        progress.warn(f"interrupted: the outputs hold the {result.frames_written} frames processed so far")
        raise typer.Exit(signals.interrupted_exit_code())
    for stream, (source, _) in zip(result.streams, opened, strict=True):
        if stream.state == "failed":
            failures.add(getattr(source, "name", None) or source.description, stream.error or "failed")
    if own:
        failures.raise_if_any()
    return result


def files_written(opened) -> list[str]:
    """The paths of the files the streams' sinks left on disk (an mp4 that got no frame is removed)."""
    paths = [getattr(sink, "path", None) for _, sinks in opened for sink in sinks]
    return [str(path) for path in paths if isinstance(path, Path) and path.exists()]  # a --format folder too


def _ticker(bar, task, also=None):
    """The progress update for one stream, then ``also`` (the live view's hand-over); runs in the
    pipeline's output thread (Progress is thread-safe)."""
    t0 = time.perf_counter()
    done = 0

    def on_frame(result) -> None:
        nonlocal done
        done += 1
        bar.update(task, advance=1, fps=done / max(time.perf_counter() - t0, 1e-9))
        if also is not None:
            also(result)

    return on_frame


def require_window() -> None:
    """Refuse ``--show`` where no window can open, before any work starts."""
    problem = gui_problem()
    if problem:
        raise InputError(f"cannot open a window: {problem}; write the result with --out OUT.mp4 instead")
