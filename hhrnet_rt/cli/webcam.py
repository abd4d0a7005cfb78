"""Command ``hhrt webcam``: live sources (cameras, stream URLs, files played in real time), one or several."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

from hhrnet_rt.cli import temporal
from hhrnet_rt.cli.app import BackendName, DecodeOn, DecodeOnOpt, Overwrite, app, console, handle_errors
from hhrnet_rt.cli.model_options import (
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
    Refine,
    Threads,
    Weights,
    make_estimator,
    warm_up,
)
from hhrnet_rt.cli.remote import ClientToken, InFlight, SendAs, SendFormat, ServerUrl, remote_estimator
from hhrnet_rt.cli.run_report import close_all, run_and_report
from hhrnet_rt.cli.stream_io import Batch, Batching, DecodeThreads, MaxWaitMs, check_outputs, open_sinks
from hhrnet_rt.cli.targets import plan_video_outputs
from hhrnet_rt.core.errors import InputError
from hhrnet_rt.core.inputs import is_regular_file
from hhrnet_rt.video import CameraSource
from hhrnet_rt.video.display import gui_problem
from hhrnet_rt.video.pipeline import DEFAULT_MAX_WAIT_MS


@app.command()
@handle_errors
def webcam(
    ctx: typer.Context,
    camera: Annotated[
        list[str] | None,
        typer.Option(
            help="Camera index (default 0), stream URL, or a video file played in real time; repeat it "
            "for several streams in one run (one tiled window; --out and --json then name folders).",
            show_default=False,
        ),
    ] = None,
    out: Annotated[
        Path | None,
        typer.Option(
            "--out", "-o", help="Also record the annotated stream (.mp4; a folder for several cameras)."
        ),
    ] = None,
    json_out: Annotated[
        Path | None,
        typer.Option(
            "--json", help="Keypoints, one JSON record per frame (.jsonl; a folder for several cameras)."
        ),
    ] = None,
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
    show: Annotated[bool, typer.Option(help="Show the window (default); --no-show to only record.")] = True,
    width: Annotated[
        int | None, typer.Option(min=1, help="Frame width to ask the camera for.", show_default=False)
    ] = None,
    height: Annotated[
        int | None, typer.Option(min=1, help="Frame height to ask the camera for.", show_default=False)
    ] = None,
    fps: Annotated[
        float | None,
        typer.Option(min=1.0, help="Frame rate to ask the camera for.", show_default=False),
    ] = None,
    batch: Batch = 1,
    max_wait_ms: MaxWaitMs = DEFAULT_MAX_WAIT_MS,
    decode_threads: DecodeThreads = 1,
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
) -> None:
    """Live pose estimation: newest frame wins, drops are counted; q or Esc quits the window.

    Several --camera options run together through one model: a tiled window, or one recording per camera
    (--out and --json name folders) without it.
    """

    batching = Batching(batch, max_wait_ms, decode_threads)
    over_time = temporal.temporal_settings(track, track_min_hits, track_max_age, track_min_oks, smooth,
                                           smooth_min_cutoff, smooth_beta, smooth_d_cutoff)  # fmt: skip

    def load_model():
        if server is not None:  # the server's model; capture, drawing and writing stay here
            return remote_estimator(ctx, server, token, send, in_flight)
        return make_estimator(
            weights, backend, engine, device, input_size, flip, refine, precision, decode_on, threads, fast
        )

    cameras = camera or ["0"]
    if len(cameras) > 1:
        return _webcams(
            cameras,
            out,
            json_out,
            show=show,
            batching=batching,
            max_frames=max_frames,
            min_score=min_score,
            max_people=max_people,
            overwrite=overwrite,
            request=(width, height, fps),
            over_time=over_time,
            load_model=load_model,
        )
    spec = cameras[0]
    check_outputs(out, json_out, None, overwrite=overwrite, inputs=[Path(spec)])  # a file played live
    show = _window_or_recording(show, out is not None or json_out is not None, gui_problem())
    source = _open_camera(spec, (width, height, fps))
    try:
        estimator = load_model()
        warm_up(estimator, [source], batching.batch)
        sinks = open_sinks(out, json_out, None, source, live=True, overwrite=overwrite)
    except BaseException:
        source.close()
        raise
    run_and_report(
        [(source, sinks)],
        estimator,
        hud=True,
        show=show,
        max_frames=max_frames,
        title=source.description,
        batching=batching,
        min_score=min_score,
        max_people=max_people,
        over_time=over_time,
    )


def _window_or_recording(show: bool, recording: bool, problem: str | None) -> bool:
    """Whether the window opens; without a display it records only, and with nothing to record fails."""
    if show and problem:
        if not recording:
            raise InputError(
                f"cannot open a window: {problem}; record with --out OUT.mp4 (and/or --json) instead"
            )
        console.print(
            f"[yellow]warning:[/] {problem}; recording without a window (Ctrl-C stops)", highlight=False
        )
        show = False
    if not show and not recording:
        raise InputError("nothing to do: --no-show needs --out OUT.mp4 and/or --json OUT.jsonl")
    return show


def _open_camera(spec: str, request):

    width, height, fps = request
    source = CameraSource(int(spec) if spec.isdigit() else spec, width=width, height=height, fps=fps)
    if source.warning:  # a camera picks the nearest mode it has
        console.print(f"[yellow]warning:[/] {escape(source.warning)}", highlight=False)
    return source


def _webcams(cameras, out, json_out, *, show, batching, max_frames, min_score, max_people,
             overwrite, request, load_model, over_time) -> None:  # fmt: skip
    """``hhrt webcam`` with several --camera: one run, one model, per-camera outputs in folders."""

    # Named after the camera (camera0) or the stream's / file's name; a local file is an input to protect.
    names = [f"camera{c}" if c.isdigit() else (Path(c) if is_regular_file(c) else c) for c in cameras]
    plan = plan_video_outputs(names, out, json_out, None, run_dir=None, overwrite=overwrite)
    show = _window_or_recording(show, out is not None or json_out is not None, gui_problem())
    opened = []
    try:
        for spec in cameras:
            opened.append((_open_camera(spec, request), []))
        estimator = load_model()
        warm_up(estimator, [source for source, _ in opened], batching.batch)
        for (source, sinks), targets in zip(opened, plan, strict=True):
            sinks.extend(
                open_sinks(targets.video, targets.json, None, source, live=True, overwrite=overwrite)
            )
    except BaseException:
        close_all(opened)
        raise
    run_and_report(
        opened,
        estimator,
        hud=True,
        show=show,
        max_frames=max_frames,
        title=f"{len(opened)} cameras",
        batching=batching,
        min_score=min_score,
        max_people=max_people,
        over_time=over_time,
    )
