"""One video on a Ray worker: the single-file job ``hhrt video`` runs, with outputs published at the end.

The worker opens the source, builds the estimator (from the recipe's
:class:`~hhrnet_rt.runtime.config.EstimatorConfig`) and the sinks through a
:class:`~hhrnet_rt.cluster.recipe.VideoRecipe` (the sinks a local ``hhrt video`` opens, so a cluster run
makes the same files as a local one), runs :func:`hhrnet_rt.video.run_pipeline` and reports frames to
the run's ledger.

Why outputs are written under a temporary name and published at the end: Ray retries a task whose worker
died, and the retry must start its files afresh. The temporary names carry the run's random id, so a file
by that name can only have been made by an earlier attempt of this run, and removing it breaks no rule;
the final names are only ever created by :func:`hhrnet_rt.core.outputs.publish` (never replacing a file
without ``overwrite``). A pipeline failure publishes what was written, as a local run leaves it; a worker
that died publishes nothing (its files are not closed, so they would not play).

This module imports no Ray at the top: it is pickled by reference and imported on the workers.
"""

from __future__ import annotations

import contextlib
import json
import os
import pickle
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hhrnet_rt.cluster.recipe import VideoRecipe
from hhrnet_rt.core.errors import HhrtError, InputError
from hhrnet_rt.core.outputs import publish, publish_folder
from hhrnet_rt.core.temporaries import remove_temporary, temporary_name
from hhrnet_rt.video.records import run_header

#: Test-only fault injection: a JSON file {source: {"crash_attempts": N, "at_frame": K}}; the worker
#: running that source dies (``os._exit``) at frame K of its first N attempts. Nothing reads it unless
#: it is set, and its name says what it is for.
FAULTS_ENV = "HHRT_TEST_FAULTS_FILE"

#: How often a worker tells the ledger how far it got (one small actor call, not one per frame).
REPORT_EVERY_S = 0.25


@dataclass(frozen=True)
class VideoJob:
    """One input and its final outputs (absolute paths: workers do not share the driver's directory)."""

    index: int
    source: str
    outputs: dict[str, str | None]  # "video", "json", "coco", "format:<name>" -> final path or None
    run_id: str
    overwrite: bool


@dataclass
class FileReport:
    """What became of one video (returned by the task; ``attempts`` is filled in by the driver)."""

    index: int
    source: str
    frames_read: int = 0
    frames_written: int = 0
    decode_failures: int = 0
    wall_s: float = 0.0
    stopped: str | None = None
    error: str | None = None
    error_kind: str | None = None  # the hhrnet_rt.core.errors class name of ``error``
    attempts: int = 1
    backend: str = ""
    warnings: list[str] = field(default_factory=list)
    published: list[str] = field(default_factory=list)

    @property
    def fps(self) -> float:
        return self.frames_written / self.wall_s if self.wall_s > 0 else 0.0


#: The prefix of a ``--format`` output's key in :attr:`VideoJob.outputs` (``"format:csv"``).
FORMAT_KEY = "format:"


def temporary_path(final: str | Path, run_id: str) -> Path:
    """Where an output is written until it is published: hidden, beside the final file, same suffix, and
    short enough for any final name the plan accepted (:func:`hhrnet_rt.core.temporaries.temporary_name`)."""
    return temporary_name(final, run_id)


def remove_temporaries(job: VideoJob) -> list[str]:
    """Remove what an attempt of this run left (the names hold the run's random id: ours). Returns what
    could not be removed, with why: a leftover must not end the run or hide the other files' results."""
    problems = []
    for final in job.outputs.values():
        if final is not None:
            temp = temporary_path(final, job.run_id)
            try:
                remove_temporary(temp)
            except OSError as exc:
                problems.append(f"could not remove the temporary file {temp}: {exc.strerror or exc}")
    return problems


_ESTIMATORS: dict[bytes, Any] = {}  # per worker process: a reused worker loads the model once


def _estimator(recipe: VideoRecipe) -> Any:
    try:
        key = pickle.dumps(recipe.estimator)
    except Exception:  # not picklable by the standard pickle: build every time
        return recipe.build_estimator()
    if key not in _ESTIMATORS:
        _ESTIMATORS.clear()  # one model per worker at a time
        _ESTIMATORS[key] = recipe.build_estimator()
    return _ESTIMATORS[key]


class _Progress:
    """Counts frames in the pipeline's output thread and sends them to the ledger now and then."""

    def __init__(self, ledger: Any, job: VideoJob, attempt: int, crash_at: int | None) -> None:
        self.ledger, self.job, self.attempt, self.crash_at = ledger, job, attempt, crash_at
        self.pending = self.frames = 0
        self.last = time.monotonic()

    def __call__(self, _result: Any) -> None:
        self.frames += 1
        self.pending += 1
        if self.crash_at is not None and self.frames >= self.crash_at:
            os._exit(70)  # test fault: the worker dies mid-file, as an OOM kill or a lost node would
        if time.monotonic() - self.last >= REPORT_EVERY_S:
            self.flush()

    def flush(self) -> None:
        if self.pending:
            self.ledger.advance.remote(self.job.index, self.attempt, self.pending)
            self.pending, self.last = 0, time.monotonic()


def _test_fault(job: VideoJob, attempt: int) -> int | None:
    """The frame at which this attempt must die, from the test-only faults file; else None."""
    path = os.environ.get(FAULTS_ENV)
    if not path:
        return None
    spec = json.loads(Path(path).read_text()).get(job.source)
    if spec is None or attempt > int(spec.get("crash_attempts", 0)):
        return None
    at_frame = int(spec.get("at_frame", 0))
    if at_frame <= 0:
        os._exit(70)
    return at_frame


def run_video_task(job: VideoJob, recipe: VideoRecipe, ledger: Any) -> FileReport:
    """The body of the Ray task for one video (see the module doc). Library errors become the report's
    ``error``: they are facts about the input or the outputs, and retrying would meet them again."""
    import ray

    attempt = ray.get(ledger.begin.remote(job.index))
    crash_at = _test_fault(job, attempt)
    report = FileReport(job.index, job.source)
    try:
        with recipe.messages():
            report.warnings.extend(remove_temporaries(job))
            _process(job, recipe, ledger, attempt, crash_at, report)
    except HhrtError as exc:
        report.error, report.error_kind = str(exc), type(exc).__name__
    return report


def _process(
    job: VideoJob, recipe: VideoRecipe, ledger: Any, attempt: int, crash_at: int | None, report: FileReport
) -> None:
    from hhrnet_rt.video import FileSource, run_pipeline

    source = FileSource(job.source)
    try:
        total = source.frame_count
        if total is not None and recipe.max_frames is not None:
            total = min(total, recipe.max_frames)
        ledger.set_total.remote(job.index, attempt, total)
        estimator = _estimator(recipe)
        facts = estimator.describe()
        report.backend = f"{facts['backend']} on {facts['device']}"
        w, h = source.size or (0, 0)
        try:
            estimator.warmup((h, w) if w > 0 and h > 0 else (480, 640))
        except Exception:  # noqa: BLE001 - as a local run: the first frame meets and reports it
            pass
        temps = {k: temporary_path(v, job.run_id) if v else None for k, v in job.outputs.items()}
        formats = {k.removeprefix(FORMAT_KEY): v for k, v in temps.items() if k.startswith(FORMAT_KEY) and v}
        sinks = recipe.sinks(source, temps["video"], temps["json"], temps["coco"], warn=report.warnings.append,
                             formats=formats, run_header=run_header(estimator, tracked=recipe.over_time.enabled))  # fmt: skip
    except BaseException:
        source.close()
        raise
    progress = _Progress(ledger, job, attempt, crash_at)
    try:
        result = run_pipeline(
            source, estimator, sinks, on_frame=progress, max_frames=recipe.max_frames,
            min_score=recipe.min_score, max_people=recipe.max_people, post_decode=recipe.post_decode(),
            annotator=recipe.annotator(),
        )  # fmt: skip
    except BaseException:
        progress.flush()
        report.frames_read, report.frames_written = source.frames_read, progress.frames
        report.decode_failures = source.decode_failures
        with contextlib.suppress(HhrtError, OSError):  # the pipeline's error is the one to report
            _publish(job, temps, report)  # a failed run keeps what it wrote, as a local run does
        raise
    progress.flush()
    # The counts first: a file whose results could not be published was still processed (its report
    # says both).
    report.frames_read, report.frames_written = result.frames_read, result.frames_written
    report.decode_failures = result.decode_failures
    report.wall_s, report.stopped = result.wall_s, result.stopped
    _publish(job, temps, report)
    whole_file = result.stopped is None and (
        recipe.max_frames is None or result.frames_read < recipe.max_frames
    )
    if whole_file and (shortfall := source.shortfall_warning(result.frames_read)):
        report.warnings.append(shortfall)


def _publish(job: VideoJob, temps: dict[str, Path | None], report: FileReport) -> None:
    """Give every output its final name; one that cannot be published does not keep the others back,
    and the error names only files that exist (a temporary kept with the results, or none)."""
    problems = []
    for key, temp in temps.items():
        final = job.outputs[key]
        if temp is None or final is None or not temp.exists():  # an mp4 that got no frame is gone
            continue
        try:
            if temp.is_dir():  # a format that is a folder of files
                publish_folder(temp, Path(final), overwrite=job.overwrite)
            else:
                publish(temp, Path(final), overwrite=job.overwrite)
        except InputError as exc:  # the final name appeared meanwhile: the temporary keeps the results
            problems.append(str(exc))
            continue
        except OSError as exc:
            kept = f"; the results are in {temp}" if temp.exists() else ""
            problems.append(f"could not publish {final} ({exc.strerror or exc}){kept}")
            continue
        report.published.append(final)
    if problems:
        raise InputError("; ".join(problems))
