"""``hhrt video ... --ray``: the inputs as Ray tasks (:mod:`hhrnet_rt.cluster`), one progress bar, a
per-file summary.

The workers build the estimator and the sinks with the same functions a local ``hhrt video`` calls
(:class:`CliVideoRecipe`), so the files are the same; only where they run differs.
"""

from __future__ import annotations

import contextlib
import secrets
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.markup import escape
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from hhrnet_rt.cli.app import BackendName, DecodeOn, Precision, console, flag_for
from hhrnet_rt.cli.model_options import make_estimator
from hhrnet_rt.cli.stream_io import open_sinks, stdout
from hhrnet_rt.cluster import VideoJob, ray_session, run_archive
from hhrnet_rt.cluster.archive import MAX_RETRIES, TASK_CPUS, TASK_GPUS  # noqa: F401  (the defaults)
from hhrnet_rt.core import errors
from hhrnet_rt.core.errors import InputError, PipelineError
from hhrnet_rt.core.inputs import is_regular_file

if TYPE_CHECKING:
    from hhrnet_rt.track.hook import TemporalSettings

_PANEL = "Ray (videos as tasks on a cluster)"
RayFlag = Annotated[
    bool,
    typer.Option(
        "--ray",
        help="Process the inputs as Ray tasks, one per video, on a local Ray (127.0.0.1) or the cluster "
        "--address names. Outputs are written by the workers: on a cluster, put them on shared storage.",
        rich_help_panel=_PANEL,
    ),
]
RayAddress = Annotated[
    str | None,
    typer.Option(
        "--address",
        help="With --ray: join this Ray cluster (auto, ray://HEAD:10001, HEAD:6379) instead of starting "
        "a local one.",
        show_default=False,
        rich_help_panel=_PANEL,
    ),
]
CpusPerTask = Annotated[
    float, typer.Option(min=0.0, help="With --ray: CPUs each video's task reserves.", rich_help_panel=_PANEL)
]
GpusPerTask = Annotated[
    float,
    typer.Option(
        min=0.0,
        help="With --ray: GPUs each video's task reserves (0.5: two videos share a GPU).",
        rich_help_panel=_PANEL,
    ),
]
MaxRetries = Annotated[
    int,
    typer.Option(
        min=0, help="With --ray: how often a video is retried when its worker dies.", rich_help_panel=_PANEL
    ),
]


def check_options(
    ray: bool, show: bool, address: str | None, cpus: float, gpus: float, retries: int, server: str | None
) -> None:
    """The --ray options make sense only together; a worker has no window and runs its own model."""
    if ray and show:
        raise InputError("--show cannot be used with --ray: the videos are processed on Ray workers")
    if ray and server is not None:
        raise InputError("--server cannot be used with --ray: each Ray task runs the model itself")
    if not ray and (address is not None or (cpus, gpus, retries) != (TASK_CPUS, TASK_GPUS, MAX_RETRIES)):
        raise InputError("--address, --cpus-per-task, --gpus-per-task and --max-retries need --ray")


@dataclass(frozen=True)
class CliVideoRecipe:
    """What a worker needs to build ``hhrt video``'s estimator and sinks (plain values: it is pickled)."""

    model_args: tuple  # make_estimator's positional arguments, enums as their values
    min_score: float | None
    max_people: int | None
    max_frames: int | None
    over_time: TemporalSettings  # --track / --smooth

    def post_decode(self) -> Any:
        return self.over_time.hook()  # a fresh tracker per video, as a local run makes per input

    def estimator(self) -> Any:
        (weights, backend, engine, device, input_size, flip, refine, precision, decode_on, threads,
         fast) = self.model_args  # fmt: skip
        return make_estimator(
            weights, BackendName(backend), engine, device, input_size, flip, refine,
            Precision(precision) if precision is not None else None, DecodeOn(decode_on), threads, fast,
        )  # fmt: skip

    def messages(self) -> contextlib.AbstractContextManager:

        return errors.option_style(flag_for)  # the worker's messages name flags, as the command's do

    def sinks(self, source: Any, video: Path | None, json: Path | None, coco: Path | None) -> list:

        return open_sinks(video, json, coco, source, live=False, overwrite=False)  # temporary names: new


def recipe_for(weights, backend, engine, device, input_size, flip, refine, precision, decode_on, threads,
               fast, *, min_score, max_people, max_frames, over_time) -> CliVideoRecipe:  # fmt: skip
    """The recipe for ``hhrt video``'s options; local files as absolute paths (workers run elsewhere)."""

    if weights is not None and is_regular_file(weights):
        weights = str(Path(weights).absolute())
    engine = str(Path(engine).absolute()) if engine is not None else None
    args = (weights, backend.value, engine, device, input_size, flip, refine,
            precision.value if precision is not None else None, decode_on.value, threads, fast)  # fmt: skip
    return CliVideoRecipe(args, min_score, max_people, max_frames, over_time)


def run(plan, recipe: CliVideoRecipe, *, address: str | None, cpus_per_task: float, gpus_per_task: float,
        max_retries: int, overwrite: bool) -> None:  # fmt: skip
    """Every planned input as a Ray task; the summary on stdout; an error if any video failed."""

    run_id = secrets.token_hex(6)  # in the temporary names: files with it can only be this run's
    jobs = [_job(i, targets, run_id, overwrite) for i, targets in enumerate(plan)]
    where = f"the Ray cluster at {address}" if address else "a local Ray on 127.0.0.1"
    with contextlib.ExitStack() as stack:
        with console.status(f"connecting to {where}..."):
            stack.enter_context(ray_session(address))
        reports = _with_progress(lambda on_progress: run_archive(
            jobs, recipe, cpus_per_task=cpus_per_task, gpus_per_task=gpus_per_task,
            max_retries=max_retries, on_progress=on_progress,
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
    outputs = {k: str(Path(p).absolute()) if p is not None else None
               for k, p in (("video", targets.video), ("json", targets.json), ("coco", targets.coco))}  # fmt: skip
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
    for name, justify in (("video", "left"), ("frames", "right"), ("FPS", "right"), ("retries", "right"),
                          ("result", "left")):  # fmt: skip
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
    failed = [r for r in reports if r.error is not None]
    if not failed:
        return
    kinds = {r.error_kind for r in failed}
    cls = getattr(errors, kinds.pop(), None) if len(kinds) == 1 and None not in kinds else None
    if not (isinstance(cls, type) and issubclass(cls, errors.HhrtError)):
        cls = PipelineError
    details = "; ".join(f"{Path(r.source).name}: {r.error}" for r in failed)
    raise cls(f"{len(failed)} of {len(reports)} videos failed ({details}); the others are complete")
