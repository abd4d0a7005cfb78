"""Command ``hhrt video`` and the run it shares with ``hhrt webcam`` (cli/webcam.py).

The command only gathers its options into settings (the model's :class:`EstimatorConfig`, the run's
:class:`RunSettings`, a server's or a Ray cluster's options) and hands them on: to Ray tasks, or to
sources, one :class:`~hhrnet_rt.PoseEstimator` shared by all of them, sinks and
:func:`hhrnet_rt.video.run_streams`; every check with a user-facing message lives in the library.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import typer
from rich.markup import escape

from hhrnet_rt.cli import progress, ray_video
from hhrnet_rt.cli.app import app, console, handle_errors
from hhrnet_rt.cli.estimator import load_model, model_config, warm_up
from hhrnet_rt.cli.failures import Failures
from hhrnet_rt.cli.inputs_expand import expand_videos
from hhrnet_rt.cli.options import (
    AUTO_BACKEND,
    Backend,
    DecodeOn,
    DecodeOnOpt,
    Device,
    Engine,
    Fast,
    Flip,
    InputSize,
    MaxAspect,
    PrecisionOpt,
    Refine,
    Threads,
    Weights,
)
from hhrnet_rt.cli.options_draw import Boxes, Labels, LineWidth, Quiet, ShowBelow, Verbose, overlay_style
from hhrnet_rt.cli.options_formats import Formats
from hhrnet_rt.cli.options_streams import (
    STALL_TIMEOUT_S,
    FailFast,
    MetricsPort,
    NoReconnect,
    Reconnect,
    SegmentTime,
    StallTimeout,
    TrackMaxGap,
    WebAddress,
)
from hhrnet_rt.cli.remote import ServerOptions
from hhrnet_rt.cli.run_options import (
    TEMPORAL,
    Batch,
    ClientToken,
    Coco,
    CpusPerTask,
    DecodeThreads,
    GpusPerTask,
    InFlight,
    MaxFrames,
    MaxPeople,
    MaxRetries,
    MaxWaitMs,
    MinScore,
    Overwrite,
    RayAddress,
    RayFlag,
    Recursive,
    SendAs,
    SendFormat,
    ServerUrl,
    SkipExisting,
    Smooth,
    SmoothBeta,
    SmoothDCutoff,
    SmoothMinCutoff,
    Streams,
    Track,
    TrackMaxAge,
    TrackMinHits,
    TrackMinOks,
    VideoInputs,
    VideoJson,
    VideoOut,
    VideoShow,
)
from hhrnet_rt.cli.run_report import close_all, require_window, run_and_report, run_folder
from hhrnet_rt.cli.stream_io import (
    Batching,
    LiveSettings,
    RunSettings,
    open_input,
    open_sinks,
    temporal_settings,
)
from hhrnet_rt.cli.targets import VideoTargets, plan_video_outputs
from hhrnet_rt.cli.web import check_web
from hhrnet_rt.cluster.archive import MAX_RETRIES, TASK_CPUS, TASK_GPUS
from hhrnet_rt.core.errors import HhrtError
from hhrnet_rt.core.inputs import check_input_file
from hhrnet_rt.runtime.preprocess import DEFAULT_MAX_ASPECT
from hhrnet_rt.track.hook import MAX_GAP_S
from hhrnet_rt.video.formats import check_formats, parse_formats
from hhrnet_rt.video.pipeline import DEFAULT_MAX_WAIT_MS
from hhrnet_rt.video.records import run_header


@app.command()
@handle_errors
@progress.levelled
def video(
    ctx: typer.Context,
    inputs: VideoInputs,
    out: VideoOut = None,
    json_out: VideoJson = None,
    coco: Coco = None,
    formats: Formats = None,
    recursive: Recursive = False,
    min_score: MinScore = None,
    max_people: MaxPeople = None,
    weights: Weights = None,
    backend: Backend = AUTO_BACKEND,
    engine: Engine = None,
    precision: PrecisionOpt = None,
    device: Device = None,
    input_size: InputSize = None,
    max_aspect: MaxAspect = DEFAULT_MAX_ASPECT,
    flip: Flip = None,
    fast: Fast = False,
    refine: Refine = True,
    max_frames: MaxFrames = None,
    show: VideoShow = False,
    batch: Batch = 1,
    max_wait_ms: MaxWaitMs = DEFAULT_MAX_WAIT_MS,
    decode_threads: DecodeThreads = 1,
    streams: Streams = 8,
    decode_on: DecodeOnOpt = DecodeOn.auto,
    threads: Threads = None,
    overwrite: Overwrite = False,
    skip_existing: SkipExisting = False,
    track: Track = False,
    track_min_hits: TrackMinHits = TEMPORAL.min_hits,
    track_max_age: TrackMaxAge = TEMPORAL.max_age,
    track_min_oks: TrackMinOks = TEMPORAL.min_oks,
    smooth: Smooth = False,
    smooth_min_cutoff: SmoothMinCutoff = TEMPORAL.min_cutoff,
    smooth_beta: SmoothBeta = TEMPORAL.beta,
    smooth_d_cutoff: SmoothDCutoff = TEMPORAL.d_cutoff,
    track_max_gap: TrackMaxGap = MAX_GAP_S,
    reconnect: Reconnect = None,
    no_reconnect: NoReconnect = False,
    stall_timeout: StallTimeout = STALL_TIMEOUT_S,
    fail_fast: FailFast = False,
    metrics_port: MetricsPort = None,
    web: WebAddress = None,
    segment_time: SegmentTime = None,
    server: ServerUrl = None,
    token: ClientToken = None,
    send: SendAs = SendFormat.jpeg,
    in_flight: InFlight = 4,
    ray: RayFlag = False,
    address: RayAddress = None,
    cpus_per_task: CpusPerTask = TASK_CPUS,
    gpus_per_task: GpusPerTask = TASK_GPUS,
    max_retries: MaxRetries = MAX_RETRIES,
    line_width: LineWidth = None,
    labels: Labels = True,
    boxes: Boxes = False,
    show_below: ShowBelow = False,
    quiet: Quiet = False,
    verbose: Verbose = False,
) -> None:
    """Annotate every frame of each video: one output frame per input frame, in order, at the input rate.

    Several inputs run together (--streams at a time), each with its own outputs, sharing one model;
    --batch N gives the model N frames per call (from several inputs, or consecutive frames of one).
    With --ray each input is a Ray task instead.
    """
    cluster = ray_video.RayOptions(address, cpus_per_task, gpus_per_task, max_retries)
    ray_video.check_options(ray, show, server, cluster)
    if ray and web is not None:
        raise typer.BadParameter(
            "--web shows a run on this machine; --ray runs each input elsewhere: drop one"
        )
    check_web(web, token)
    model = model_config(weights=weights, backend=backend, engine=engine, precision=precision, device=device,
                         input_size=input_size, flip=flip, fast=fast, refine=refine, decode_on=decode_on,
                         threads=threads, max_aspect=max_aspect)  # fmt: skip
    run = RunSettings(show=show, max_frames=max_frames, min_score=min_score, max_people=max_people,
                      batching=Batching(batch, max_wait_ms, decode_threads),
                      over_time=temporal_settings(track, track_min_hits, track_max_age, track_min_oks, smooth,
                                                  smooth_min_cutoff, smooth_beta, smooth_d_cutoff, track_max_gap),
                      live=LiveSettings(reconnect, no_reconnect, stall_timeout, fail_fast, metrics_port,
                                        segment_time, web=web, web_token=token),
                      style=overlay_style(line_width, labels, boxes, show_below))  # fmt: skip
    remote = ServerOptions(server, token, send, in_flight) if server is not None else None
    names = parse_formats(formats)
    check_formats(names, tracked=run.over_time.enabled)
    sources = _checked_inputs(inputs, recursive=recursive, show=show)
    with run_folder(
        out, announce=not ray, outputs=(json_out, coco)
    ) as run_dir:  # --ray says where its workers wrote
        skipped: list[Any] = []
        plan = plan_video_outputs(sources, out, json_out, coco, run_dir=run_dir, overwrite=overwrite,
                                  skip_existing=skip_existing, skipped=skipped, formats=names)  # fmt: skip
        if skipped:
            console.print(f"skipping {len(skipped)} of {len(sources)} videos: their outputs are complete",
                          highlight=False)  # fmt: skip
        if not plan:
            return
        if ray:
            return ray_video.run(plan, ray_video.recipe_for(model, run), cluster, overwrite=overwrite)
        _annotate(plan, lambda: load_model(ctx, model, remote), run, streams=streams, overwrite=overwrite)


def _checked_inputs(inputs: list[str], *, recursive: bool, show: bool) -> list[Any]:
    """The inputs, every local file checked (and a window that can open) before anything is created."""
    sources = expand_videos(inputs, recursive=recursive)
    for source in sources:
        if isinstance(source, Path):
            check_input_file(source, "video file")
    if show:
        require_window()
    return sources


def _annotate(plan: list[VideoTargets], load: Callable[[], Any], run: RunSettings, *, streams: int,
              overwrite: bool) -> None:  # fmt: skip
    """The planned inputs through one model, ``streams`` inputs at a time; an input that fails ends alone
    (see :mod:`hhrnet_rt.cli.failures`) unless ``--fail-fast``."""
    failures = Failures()
    first = _open(plan[0], run, failures, alone=len(plan) == 1)  # not a video: said before the model loads
    try:
        estimator = load()
    except BaseException:
        if first is not None:
            first.close()
        raise
    for start in range(0, len(plan), streams):
        group = plan[start : start + streams]
        ready = [(first, group[0])] if start == 0 and first is not None else []
        _video_group(group[1:] if start == 0 else group, ready, estimator, run, failures, overwrite=overwrite)
    failures.raise_if_any()


def _open(targets: VideoTargets, run: RunSettings, failures: Failures, *, alone: bool = False) -> Any:
    """The input's source; ``None`` if it cannot be opened and the others go on (it is counted failed)."""
    try:
        return open_input(str(targets.source), run.live, lossless=True)
    except HhrtError as exc:
        if alone or run.live.fail_fast:
            raise
        console.print(f"[yellow]warning:[/] {escape(str(exc))}; the other inputs go on", highlight=False)
        failures.count()
        failures.add(Path(str(targets.source)).name, exc)
        return None


def _video_group(group, ready, estimator, run: RunSettings, failures: Failures, *, overwrite: bool) -> None:
    """Some inputs of ``hhrt video`` through one run: ``ready`` the ``(source, targets)`` already open,
    then those of ``group`` that open."""

    opened: list[tuple[Any, list[Any]]] = [(source, []) for source, _ in ready]
    used: list[VideoTargets] = [targets for _, targets in ready]
    try:
        for targets in group:
            source = _open(targets, run, failures)
            if source is not None:
                opened.append((source, []))
                used.append(targets)
        if not opened:
            return
        warm_up(estimator, [source for source, _ in opened], run.batching.batch)
        for (source, sinks), targets in zip(opened, used, strict=True):
            sinks.extend(open_sinks(targets.video, targets.json, targets.coco, source, live=False,
                                    overwrite=overwrite, segment_s=run.live.segment_s, formats=targets.formats,
                                    run_header=run_header(estimator, tracked=run.over_time.enabled)))  # fmt: skip
    except BaseException:
        close_all(opened)
        raise
    title = opened[0][0].name if len(opened) == 1 else f"{len(opened)} videos"
    result = run_and_report(opened, estimator, run, hud=False, title=title, failures=failures)
    for (source, _), stream in zip(opened, result.streams, strict=True):
        whole_file = (
            result.stopped is None
            and stream.state == "done"
            and (run.max_frames is None or stream.frames_read < run.max_frames)
        )
        shortfall = getattr(source, "shortfall_warning", None)
        if whole_file and shortfall is not None and (text := shortfall(stream.frames_read)):
            console.print(f"[yellow]warning:[/] {escape(text)}", highlight=False)  # a name may hold [ ]
