"""The driver side of an archive run: one Ray task per video, a ledger actor for progress and attempts.

Example:
    >>> from hhrnet_rt.cluster import ray_session, run_archive    # doctest: +SKIP
    >>> with ray_session():                                       # doctest: +SKIP
    ...     reports = run_archive(jobs, recipe, gpus_per_task=1)

Retries: Ray runs a task again when its worker dies (a lost node, an out-of-memory kill), up to
``max_retries`` times. A library error inside the task (an unreadable video, a full disk) is not retried:
it would happen again; it comes back in that file's report. The ledger counts the attempts each task
began, which is how the report knows about retries Ray made on its own.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from hhrnet_rt.cluster.ray_setup import check_resources, require_ray
from hhrnet_rt.cluster.recipe import VideoRecipe
from hhrnet_rt.cluster.video_task import FileReport, VideoJob, remove_temporaries, run_video_task
from hhrnet_rt.core.errors import option

POLL_S = 0.2
#: What each task reserves and how often a task whose worker died is run again, unless told otherwise.
TASK_CPUS, TASK_GPUS, MAX_RETRIES = 1.0, 0.0, 3
#: After Ctrl-C, how long the cancelled tasks get to close and publish what they wrote.
CANCEL_WAIT_S = 30.0


class Ledger:
    """Per run, in one actor: attempts begun, frames done by each file's current attempt, totals.

    Frames are counted per attempt: a retry starts its file from zero, and a late message of a dead
    attempt changes nothing.
    """

    def __init__(self, n: int) -> None:
        self.attempts = [0] * n
        self.done = [0] * n
        self.totals: list[int | None] = [None] * n

    def begin(self, index: int) -> int:
        self.attempts[index] += 1
        self.done[index] = 0
        return self.attempts[index]

    def set_total(self, index: int, attempt: int, total: int | None) -> None:
        if attempt == self.attempts[index]:
            self.totals[index] = total

    def advance(self, index: int, attempt: int, frames: int) -> None:
        if attempt == self.attempts[index]:
            self.done[index] += frames

    def snapshot(self) -> tuple[list[int], list[int], list[int | None]]:
        return list(self.attempts), list(self.done), list(self.totals)


@dataclass(frozen=True)
class Progress:
    """What the driver knows mid-run (for a progress bar): frames over all files."""

    frames_done: int
    frames_total: int | None  # None while no file has told its length
    files_done: int
    files: int
    estimated: bool = False  # frames_total counts files not started yet as long as the average one


def run_archive(
    jobs: Sequence[VideoJob],
    recipe: VideoRecipe,
    *,
    cpus_per_task: float = TASK_CPUS,
    gpus_per_task: float = TASK_GPUS,
    max_retries: int = MAX_RETRIES,
    on_progress: Callable[[Progress], None] | None = None,
) -> list[FileReport]:
    """Run every job as a Ray task (Ray must be connected: :func:`ray_session`); one report per job,
    in the jobs' order. Returns when every task has ended; Ctrl-C cancels the tasks that remain."""
    ray = require_ray()
    # One task must fit somewhere; more than fit at once just queue.
    check_resources(ray, {"CPU": cpus_per_task, "GPU": gpus_per_task}, 1, "task",
                    f"lower {option('cpus_per_task')} or {option('gpus_per_task')}, or add nodes")  # fmt: skip
    ledger = ray.remote(num_cpus=0)(Ledger).remote(len(jobs))
    task = ray.remote(run_video_task).options(
        num_cpus=cpus_per_task, num_gpus=gpus_per_task, max_retries=max_retries, retry_exceptions=False
    )
    refs = {task.remote(job, recipe, ledger): job for job in jobs}
    reports: dict[int, FileReport] = {}
    pending = list(refs)
    try:
        while pending:
            ready, pending = ray.wait(pending, num_returns=len(pending), timeout=POLL_S, fetch_local=True)
            for ref in ready:
                job = refs[ref]
                reports[job.index] = _collect(ray, ref, job)
            if on_progress is not None:
                on_progress(progress_of(ray.get(ledger.snapshot.remote()), len(reports)))
        attempts, _, _ = ray.get(ledger.snapshot.remote())
    except KeyboardInterrupt:
        for ref in pending:
            ray.cancel(ref)  # the task sees KeyboardInterrupt: its pipeline stops, closes and publishes
        ray.wait(pending, num_returns=len(pending), timeout=CANCEL_WAIT_S)  # before Ray shuts down
        raise
    finally:
        ray.kill(ledger)  # on a long-lived cluster, each run's actor would otherwise stay
    for report in reports.values():
        report.attempts = max(attempts[report.index], 1)
    return [reports[job.index] for job in jobs]


def _collect(ray: Any, ref: Any, job: VideoJob) -> FileReport:
    """The task's report, or a failed report saying why Ray gave up on it."""
    try:
        return ray.get(ref)
    except ray.exceptions.RayTaskError as exc:  # an unexpected exception inside the task
        cause = exc.cause if exc.cause is not None else exc
        message = f"{type(cause).__name__}: {cause}"
    except (ray.exceptions.WorkerCrashedError, ray.exceptions.NodeDiedError) as exc:
        message = f"the worker running it died on every attempt ({type(exc).__name__})"
    except ray.exceptions.RayError as exc:
        message = f"{type(exc).__name__}: {str(exc).strip().splitlines()[0] if str(exc).strip() else ''}"
    report = FileReport(job.index, job.source)
    report.warnings.extend(remove_temporaries(job))  # the dead attempts' files never closed: no use
    report.error, report.error_kind = message, None
    return report


def progress_of(snapshot: tuple[list[int], list[int], list[int | None]], files_done: int) -> Progress:
    """The bar's figures from a :meth:`Ledger.snapshot`."""
    _, done, totals = snapshot
    files = len(totals)
    known = [t for t in totals if t is not None]
    if not known:
        return Progress(sum(done), None, files_done, files)
    unknown = files - len(known)  # files not started yet (or that announce no length)
    total = sum(known) + round(unknown * sum(known) / len(known))
    return Progress(sum(done), total, files_done, files, estimated=unknown > 0)
