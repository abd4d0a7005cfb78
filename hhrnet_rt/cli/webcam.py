"""Command ``hhrt webcam``: live sources (cameras, stream URLs, files played in real time), one or several."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import typer
from rich.markup import escape

from hhrnet_rt.cli import progress
from hhrnet_rt.cli.app import app, console, handle_errors
from hhrnet_rt.cli.estimator import load_model, model_config, warm_up
from hhrnet_rt.cli.failures import Failures
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
    Camera,
    CameraJson,
    CameraOut,
    CameraShow,
    ClientToken,
    DecodeThreads,
    Fps,
    Height,
    InFlight,
    MaxFrames,
    MaxPeople,
    MaxWaitMs,
    MinScore,
    Overwrite,
    SendAs,
    SendFormat,
    ServerUrl,
    Smooth,
    SmoothBeta,
    SmoothDCutoff,
    SmoothMinCutoff,
    Track,
    TrackMaxAge,
    TrackMinHits,
    TrackMinOks,
    Width,
)
from hhrnet_rt.cli.run_report import close_all, no_empty_folders, run_and_report
from hhrnet_rt.cli.stream_io import (
    Batching,
    LiveSettings,
    RunSettings,
    check_outputs,
    open_input,
    open_sinks,
    temporal_settings,
)
from hhrnet_rt.cli.targets import check_format_targets, format_targets, plan_video_outputs
from hhrnet_rt.cli.web import check_web
from hhrnet_rt.core.errors import HhrtError, InputError
from hhrnet_rt.core.inputs import is_regular_file
from hhrnet_rt.core.outputs import InputFiles
from hhrnet_rt.runtime.preprocess import DEFAULT_MAX_ASPECT
from hhrnet_rt.track.hook import MAX_GAP_S
from hhrnet_rt.video import CameraSource
from hhrnet_rt.video.display import gui_problem
from hhrnet_rt.video.formats import check_formats, parse_formats
from hhrnet_rt.video.pipeline import DEFAULT_MAX_WAIT_MS
from hhrnet_rt.video.records import run_header
from hhrnet_rt.video.sources import is_url

Request = tuple[int | None, int | None, float | None]  # --width, --height, --fps


@app.command()
@handle_errors
@progress.levelled
def webcam(
    ctx: typer.Context,
    camera: Camera = None,
    out: CameraOut = None,
    json_out: CameraJson = None,
    formats: Formats = None,
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
    show: CameraShow = True,
    width: Width = None,
    height: Height = None,
    fps: Fps = None,
    batch: Batch = 1,
    max_wait_ms: MaxWaitMs = DEFAULT_MAX_WAIT_MS,
    decode_threads: DecodeThreads = 1,
    decode_on: DecodeOnOpt = DecodeOn.auto,
    threads: Threads = None,
    overwrite: Overwrite = False,
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
    line_width: LineWidth = None,
    labels: Labels = True,
    boxes: Boxes = False,
    show_below: ShowBelow = False,
    quiet: Quiet = False,
    verbose: Verbose = False,
) -> None:
    """Live pose estimation: newest frame wins, drops are counted; q or Esc quits the window.

    Several --camera options run together through one model: a tiled window, or one recording per camera
    (--out and --json name folders) without it.
    """
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
    check_web(web, token)
    remote = ServerOptions(server, token, send, in_flight) if server is not None else None
    cameras = camera or ["0"]
    names = parse_formats(formats)
    check_formats(names, tracked=run.over_time.enabled)
    runner = _webcam if len(cameras) == 1 else _webcams
    with no_empty_folders(out, json_out):  # a camera that fails to open leaves no empty folder
        runner(cameras, out, json_out, run, request=(width, height, fps), overwrite=overwrite,
               load=lambda: load_model(ctx, model, remote), formats=names)  # fmt: skip


def _webcam(cameras: list[str], out: Path | None, json_out: Path | None, run: RunSettings, *,
            request: Request, overwrite: bool, load: Callable[[], Any], formats: tuple[str, ...]) -> None:  # fmt: skip
    """``hhrt webcam`` with one camera (or stream, or file played live)."""
    spec = cameras[0]
    check_outputs(out, json_out, None, overwrite=overwrite, inputs=[Path(spec)])  # a file played live
    extra = format_targets(json_out if json_out is not None else out, f"camera{spec}", formats)
    check_format_targets(extra, overwrite=overwrite, inputs=InputFiles([Path(spec)]))
    run = replace(
        run,
        show=_window_or_recording(
            run.show, out is not None or json_out is not None or run.live.web is not None, gui_problem()
        ),
    )
    source = _open_camera(spec, request, run)
    try:
        estimator = load()
        warm_up(estimator, [source], run.batching.batch)
        sinks = open_sinks(out, json_out, None, source, live=True, overwrite=overwrite,
                           segment_s=run.live.segment_s, formats=extra,
                           run_header=run_header(estimator, tracked=run.over_time.enabled))  # fmt: skip
    except BaseException:
        source.close()
        raise
    run_and_report([(source, sinks)], estimator, run, hud=True, title=source.description)


def _window_or_recording(show: bool, recording: bool, problem: str | None) -> bool:
    """Whether the window opens; without a display it records (or serves --web) only, and with nothing
    else to do fails (``recording``: --out, --json or --web)."""
    if show and problem:
        if not recording:
            raise InputError(
                f"cannot open a window: {problem}; record with --out OUT.mp4 (and/or --json), or watch with "
                "--web PORT, instead"
            )
        console.print(
            f"[yellow]warning:[/] {problem}; going on without a window (Ctrl-C stops)", highlight=False
        )
        show = False
    if not show and not recording:
        raise InputError("nothing to do: --no-show needs --out OUT.mp4, --json OUT.jsonl and/or --web PORT")
    return show


def _open_camera(spec: str, request: Request, run: RunSettings) -> Any:
    """A camera or stream URL that reconnects (``--reconnect``...), or a local file played in real time."""
    if not spec.isdigit() and not is_url(spec):  # a file played live; every URL is a live stream here
        width, height, fps = request
        source = CameraSource(spec, width=width, height=height, fps=fps)
        if source.warning:
            console.print(f"[yellow]warning:[/] {escape(source.warning)}", highlight=False)
        return source
    return open_input(spec, run.live, lossless=False, request=request)


def _webcams(cameras: list[str], out: Path | None, json_out: Path | None, run: RunSettings, *,
             request: Request, overwrite: bool, load: Callable[[], Any], formats: tuple[str, ...]) -> None:  # fmt: skip
    """``hhrt webcam`` with several --camera: one run, one model, per-camera outputs in folders."""

    # Named after the camera (camera0) or the stream's / file's name; a local file is an input to protect.
    names = [f"camera{c}" if c.isdigit() else (Path(c) if is_regular_file(c) else c) for c in cameras]
    recording = out is not None or json_out is not None
    # nothing recorded (a window or --web only): no outputs to plan; --format alone is refused by the plan
    plan: list[Any] = (
        plan_video_outputs(
            names, out, json_out, None, run_dir=None, overwrite=overwrite, formats=formats, need_video=False
        )  # fmt: skip
        if recording or formats
        else [None] * len(cameras)
    )
    run = replace(
        run,
        show=_window_or_recording(run.show, recording or run.live.web is not None, gui_problem()),
    )
    opened: list[tuple[Any, list[Any]]] = []
    used = []
    failures = Failures()
    try:
        for spec, targets in zip(cameras, plan, strict=True):
            try:
                opened.append((_open_camera(spec, request, run), []))
                used.append(targets)
            except HhrtError as exc:  # this camera alone (it will not come back: reconnecting is off)
                if run.live.fail_fast:
                    raise
                console.print(
                    f"[yellow]warning:[/] {escape(str(exc))}; the other cameras go on", highlight=False
                )
                failures.count()
                failures.add(str(spec), exc)
        if not opened:
            failures.raise_if_any("cameras")
        estimator = load()
        warm_up(estimator, [source for source, _ in opened], run.batching.batch)
        for (source, sinks), targets in zip(opened, used, strict=True):
            if targets is None:
                continue
            sinks.extend(
                open_sinks(
                    targets.video,
                    targets.json,
                    None,
                    source,
                    live=True,
                    overwrite=overwrite,
                    segment_s=run.live.segment_s,
                    formats=targets.formats,
                    run_header=run_header(estimator, tracked=run.over_time.enabled),
                )
            )
    except BaseException:
        close_all(opened)
        raise
    run_and_report(opened, estimator, run, hud=True, title=f"{len(opened)} cameras", failures=failures)
    failures.raise_if_any("cameras")
