"""``hhrt video ... --ray``: the inputs as Ray tasks (:mod:`hhrnet_rt.cluster`), one progress bar, a
per-file summary.

The workers get a :class:`~hhrnet_rt.cluster.recipe.VideoRecipe`: the command's
:class:`~hhrnet_rt.runtime.config.EstimatorConfig` and run settings, from which they build the estimator
and the sinks a local ``hhrt video`` builds, so the files are the same; only where they run differs.
"""

from __future__ import annotations

import contextlib
import secrets
import time
from dataclasses import dataclass
from pathlib import Path

from rich.console import JustifyMethod
from rich.markup import escape
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from hhrnet_rt.cli.app import console, flag_for
from hhrnet_rt.cli.estimator import for_workers
from hhrnet_rt.cli.failures import Failures
from hhrnet_rt.cli.stream_io import RunSettings, stdout
from hhrnet_rt.cluster import VideoJob, VideoRecipe, ray_session, run_archive
from hhrnet_rt.cluster.archive import MAX_RETRIES, TASK_CPUS, TASK_GPUS
from hhrnet_rt.cluster.video_task import FORMAT_KEY
from hhrnet_rt.core import errors
from hhrnet_rt.core.errors import InputError, PipelineError
from hhrnet_rt.core.temporaries import remove_stale_temporaries
from hhrnet_rt.runtime.config import EstimatorConfig


@dataclass(frozen=True)
class RayOptions:
    """``--address``, ``--cpus-per-task``, ``--gpus-per-task`` and ``--max-retries`` (defaults: Ray's own
    run defaults, :mod:`hhrnet_rt.cluster.archive`)."""

    address: str | None = None
    cpus_per_task: float = TASK_CPUS
    gpus_per_task: float = TASK_GPUS
    max_retries: int = MAX_RETRIES


def check_options(ray: bool, show: bool, server: str | None, options: RayOptions) -> None:
    """The --ray options make sense only together; a worker has no window and runs its own model."""
    if ray and show:
        raise InputError("--show cannot be used with --ray: the videos are processed on Ray workers")
    if ray and server is not None:
        raise InputError("--server cannot be used with --ray: each Ray task runs the model itself")
    if not ray and options != RayOptions():
        raise InputError("--address, --cpus-per-task, --gpus-per-task and --max-retries need --ray")


def recipe_for(model: EstimatorConfig, run: RunSettings) -> VideoRecipe:
    """What each worker builds its video's run from: the model's config with local files as absolute
    paths (workers run elsewhere), the run settings, and messages that name the command's flags."""
    return VideoRecipe(
        estimator=for_workers(model), min_score=run.min_score, max_people=run.max_people,
        max_frames=run.max_frames, over_time=run.over_time, option_style=flag_for, style=run.style,
    )  # fmt: skip


def run(plan, recipe: VideoRecipe, ray: RayOptions, *, overwrite: bool) -> None:
    """Every planned input as a Ray task; the summary on stdout; an error if any video failed."""

    run_id = secrets.token_hex(6)  # in the temporary names: files with it can only be this run's
    jobs = [_job(i, targets, run_id, overwrite) for i, targets in enumerate(plan)]
    # A driver killed with SIGKILL never removed its workers' temporaries: they are found by name and age.
    out_folders = {Path(p).parent for job in jobs for p in job.outputs.values() if p is not None}
    for left in remove_stale_temporaries(out_folders):
        console.print(
            f"removed {escape(str(left))}: a temporary file an earlier, killed run left", highlight=False
        )
    where = f"the Ray cluster at {ray.address}" if ray.address else "a local Ray on 127.0.0.1"
    with contextlib.ExitStack() as stack:
        with console.status(f"connecting to {where}..."):
            stack.enter_context(ray_session(ray.address))
        reports = _with_progress(lambda on_progress: run_archive(
            jobs, recipe, cpus_per_task=ray.cpus_per_task, gpus_per_task=ray.gpus_per_task,
            max_retries=ray.max_retries, on_progress=on_progress,
        ), len(jobs))  # fmt: skip
    stdout.print(summary_table(reports))
    for backend in sorted({r.backend for r in reports if r.backend}):
        console.print(f"backend on the workers: {backend}", highlight=False)
    for report in reports:
        for warning in report.warnings:
            console.print(f"[yellow]warning:[/] {escape(warning)}", highlight=False)
    folders = sorted({str(Path(path).parent) for r in reports for path in r.published})
    if folders:
        console.print(f"results saved to [bold]{escape(', '.join(folders))}[/]", highlight=False)
    _raise_for_failures(reports)


def _job(index: int, targets, run_id: str, overwrite: bool):

    source = targets.source if isinstance(targets.source, str) else str(Path(targets.source).absolute())
    named = (("video", targets.video), ("json", targets.json), ("coco", targets.coco),
             *((f"{FORMAT_KEY}{name}", path) for name, path in targets.formats.items()))  # fmt: skip
    outputs = {k: str(Path(p).absolute()) if p is not None else None for k, p in named}
    return VideoJob(index, source, outputs, run_id, overwrite)


def _with_progress(run, files: int):
    columns = (TextColumn("{task.description}"), BarColumn(), TextColumn("{task.completed} / {task.fields[of]} frames"),
               TextColumn("{task.fields[fps]:.1f} FPS"), TimeElapsedColumn())  # fmt: skip
    with Progress(*columns, console=console, transient=False) as bar:
        task = bar.add_task(f"0/{files} videos", total=None, of="?", fps=0.0)
        t0 = time.perf_counter()

        def on_progress(p) -> None:
            fps = p.frames_done / max(time.perf_counter() - t0, 1e-9)
            bar.update(task, completed=p.frames_done, total=p.frames_total, fps=fps,
                       of="?" if p.frames_total is None else f"~{p.frames_total}" if p.estimated else p.frames_total,
                       description=f"{p.files_done}/{p.files} videos")  # fmt: skip

        return run(on_progress)


def summary_table(reports) -> Table:
    """One row per video: frames, FPS, attempts, and what happened."""
    table = Table(title="videos on Ray", header_style="bold")
    columns: tuple[tuple[str, JustifyMethod], ...] = (
        ("video", "left"), ("frames", "right"), ("FPS", "right"), ("retries", "right"), ("result", "left"),
    )  # fmt: skip
    for name, justify in columns:
        table.add_column(name, justify=justify)
    for r in reports:
        frames = f"{r.frames_written}/{r.frames_read}" + (
            f" ({r.decode_failures} undecodable)" if r.decode_failures else ""
        )
        result = "ok" if r.error is None and r.stopped is None else (r.stopped or f"failed: {r.error}")
        table.add_row(
            escape(Path(r.source).name), frames, f"{r.fps:.1f}", str(r.attempts - 1), escape(result)
        )
    written = sum(r.frames_written for r in reports)
    failed = sum(r.error is not None for r in reports)
    table.caption = f"{len(reports) - failed} of {len(reports)} videos done, {written} frames written"
    return table


def _raise_for_failures(reports) -> None:
    """Exit 9 when some videos failed and the others completed (:mod:`hhrnet_rt.cli.failures`); the
    worker's error class, by name, when every one failed."""
    failures = Failures(total=len(reports))
    for r in reports:
        if r.error is not None:
            cls = getattr(errors, r.error_kind or "", None)
            if not (isinstance(cls, type) and issubclass(cls, errors.HhrtError)):
                cls = PipelineError
            failures.add(Path(r.source).name, cls(r.error))
    failures.raise_if_any("videos")
