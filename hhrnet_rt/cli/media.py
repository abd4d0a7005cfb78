"""Command ``hhrt video`` and the run it shares with ``hhrt webcam`` (cli/webcam.py).

The commands only wire things together: sources, one :class:`~hhrnet_rt.PoseEstimator` shared by all of
them, sinks, and :func:`hhrnet_rt.video.run_streams`; every check with a user-facing message lives in the
library.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

from hhrnet_rt.cli import ray_video, temporal
from hhrnet_rt.cli.app import BackendName, DecodeOn, DecodeOnOpt, Overwrite, app, console, handle_errors
from hhrnet_rt.cli.inputs_expand import expand_videos
from hhrnet_rt.cli.model_options import (  # noqa: F401  (FAST_INPUT_SIZE, check_input_size: used from here)
    FAST_INPUT_SIZE,
    Backend,
    Device,
    Engine,
    Fast,
    Flip,
    InputSize,
    MaxFrames,
    MaxPeople,
    MinScore,
    PrecisionOpt,
    Recursive,
    Refine,
    Threads,
    Weights,
    check_input_size,
    fast_preset,
    make_estimator,
    warm_up,
)
from hhrnet_rt.cli.remote import ClientToken, InFlight, SendAs, SendFormat, ServerUrl, remote_estimator
from hhrnet_rt.cli.run_report import close_all, require_window, run_and_report
from hhrnet_rt.cli.stream_io import (
    Batch,
    Batching,
    DecodeThreads,
    MaxWaitMs,
    open_sinks,
)
from hhrnet_rt.cli.targets import plan_video_outputs
from hhrnet_rt.core.inputs import check_input_file
from hhrnet_rt.core.runs import new_run_dir, remove_if_empty
from hhrnet_rt.video import FileSource
from hhrnet_rt.video.pipeline import DEFAULT_MAX_WAIT_MS


@app.command()
@handle_errors
def video(
    ctx: typer.Context,
    inputs: Annotated[
        list[str],
        typer.Argument(help="Video files, folders, glob patterns or http(s)/rtsp URLs.", show_default=False),
    ],  # checked by hhrnet_rt.core.inputs / FileSource
    out: Annotated[
        Path | None,
        typer.Option(
            "--out",
            "-o",
            help="Annotated video: an .mp4 file (one input) or a folder (<name>.mp4 per input). "
            "Default: a new runs/pose/N folder.",
            show_default=False,
        ),
    ] = None,
    json_out: Annotated[
        Path | None,
        typer.Option(
            "--json",
            help="Keypoints as JSON lines: a .jsonl file (one input) or a folder (<name>.jsonl per input).",
            show_default=False,
        ),
    ] = None,
    coco: Annotated[
        Path | None,
        typer.Option(
            help="Keypoints in COCO results format: a .json file (one input) or a folder "
            "(<name>.coco.json per input).",
            show_default=False,
        ),
    ] = None,
    recursive: Recursive = False,
    min_score: MinScore = None,
    max_people: MaxPeople = None,
    weights: Weights = None,
    backend: Backend = BackendName.auto,
    engine: Engine = None,
    precision: PrecisionOpt = None,
    device: Device = None,
    input_size: InputSize = None,
    flip: Flip = None,
    fast: Fast = False,
    refine: Refine = True,
    max_frames: MaxFrames = None,
    show: Annotated[bool, typer.Option(help="Also show the result in a window (q or Esc stops).")] = False,
    batch: Batch = 1,
    max_wait_ms: MaxWaitMs = DEFAULT_MAX_WAIT_MS,
    decode_threads: DecodeThreads = 1,
    streams: Annotated[
        int,
        typer.Option(
            min=1,
            help="Inputs run together, sharing the model and its batches (each has its own reader and "
            "outputs open); more inputs run in groups of this many, one group after the other.",
        ),
    ] = 8,
    decode_on: DecodeOnOpt = DecodeOn.auto,
    threads: Threads = None,
    overwrite: Overwrite = False,
    track: temporal.Track = False,
    track_min_hits: temporal.TrackMinHits = temporal.DEFAULTS.min_hits,
    track_max_age: temporal.TrackMaxAge = temporal.DEFAULTS.max_age,
    track_min_oks: temporal.TrackMinOks = temporal.DEFAULTS.min_oks,
    smooth: temporal.Smooth = False,
    smooth_min_cutoff: temporal.SmoothMinCutoff = temporal.DEFAULTS.min_cutoff,
    smooth_beta: temporal.SmoothBeta = temporal.DEFAULTS.beta,
    smooth_d_cutoff: temporal.SmoothDCutoff = temporal.DEFAULTS.d_cutoff,
    server: ServerUrl = None,
    token: ClientToken = None,
    send: SendAs = SendFormat.jpeg,
    in_flight: InFlight = 4,
    ray: ray_video.RayFlag = False,
    address: ray_video.RayAddress = None,
    cpus_per_task: ray_video.CpusPerTask = ray_video.TASK_CPUS,
    gpus_per_task: ray_video.GpusPerTask = ray_video.TASK_GPUS,
    max_retries: ray_video.MaxRetries = ray_video.MAX_RETRIES,
) -> None:
    """Annotate every frame of each video: one output frame per input frame, in order, at the input rate.

    Several inputs run together (--streams at a time), each with its own outputs, sharing one model;
    --batch N gives the model N frames per call (from several inputs, or consecutive frames of one).
    With --ray each input is a Ray task instead.
    """
    ray_video.check_options(ray, show, address, cpus_per_task, gpus_per_task, max_retries, server)

    batching = Batching(batch, max_wait_ms, decode_threads)
    over_time = temporal.temporal_settings(track, track_min_hits, track_max_age, track_min_oks, smooth,
                                           smooth_min_cutoff, smooth_beta, smooth_d_cutoff)  # fmt: skip
    sources = expand_videos(inputs, recursive=recursive)
    for source in sources:  # every local input is checked before anything is created or loaded
        if isinstance(source, Path):
            check_input_file(source, "video file")
    if show:
        require_window()
    run_dir = new_run_dir() if out is None else None
    try:
        plan = plan_video_outputs(sources, out, json_out, coco, run_dir=run_dir, overwrite=overwrite)
        if ray:
            model = (
                weights,
                backend,
                engine,
                device,
                input_size,
                flip,
                refine,
                precision,
                decode_on,
                threads,
                fast,
            )
            recipe = ray_video.recipe_for(
                *model, min_score=min_score, max_people=max_people, max_frames=max_frames, over_time=over_time
            )
            return ray_video.run(
                plan,
                recipe,
                address=address,
                cpus_per_task=cpus_per_task,
                gpus_per_task=gpus_per_task,
                max_retries=max_retries,
                overwrite=overwrite,
            )
        first = FileSource(plan[0].source)  # a first input that is not a video fails before the model loads
        try:
            if server is not None:
                estimator = remote_estimator(ctx, server, token, send, in_flight)
            else:
                estimator = make_estimator(
                    weights,
                    backend,
                    engine,
                    device,
                    input_size,
                    flip,
                    refine,
                    precision,
                    decode_on,
                    threads,
                    fast,
                )
        except BaseException:
            first.close()
            raise
        for start in range(0, len(plan), streams):
            group = plan[start : start + streams]
            _video_group(group, first if start == 0 else None, estimator, show=show, max_frames=max_frames,
                         min_score=min_score, max_people=max_people, overwrite=overwrite, batching=batching, over_time=over_time)  # fmt: skip
    finally:
        if run_dir is not None:
            remove_if_empty(run_dir)
    if run_dir is not None and run_dir.is_dir():
        console.print(f"results saved to [bold]{escape(str(run_dir))}[/]", highlight=False)


def _video_group(group, first, estimator, *, show, max_frames, min_score, max_people, overwrite, batching,
                 over_time) -> None:  # fmt: skip
    """Some inputs of ``hhrt video`` (the first one possibly open already) through one run."""

    opened = []
    pending = first
    try:
        for targets in group:
            source = pending if pending is not None else FileSource(targets.source)
            pending = None
            opened.append((source, []))
        warm_up(estimator, [source for source, _ in opened], batching.batch)
        for (source, sinks), targets in zip(opened, group, strict=True):
            sinks.extend(open_sinks(targets.video, targets.json, targets.coco, source, live=False,
                                    overwrite=overwrite))  # fmt: skip
    except BaseException:
        if pending is not None:
            pending.close()
        close_all(opened)
        raise
    title = opened[0][0].name if len(opened) == 1 else f"{len(opened)} videos"
    result = run_and_report(
        opened,
        estimator,
        hud=False,
        show=show,
        max_frames=max_frames,
        title=title,
        batching=batching,
        min_score=min_score,
        max_people=max_people,
        over_time=over_time,
    )
    for (source, _), stream in zip(opened, result.streams, strict=True):
        whole_file = result.stopped is None and (max_frames is None or stream.frames_read < max_frames)
        if whole_file and (shortfall := source.shortfall_warning(stream.frames_read)):
            console.print(f"[yellow]warning:[/] {escape(shortfall)}", highlight=False)  # a name may hold [ ]
