"""Commands: ``hhrt video``, ``hhrt webcam``, ``hhrt image`` (the streaming app).

The commands only wire things together: a source, a :class:`~hhrnet_rt.PoseEstimator`, sinks, and
:func:`hhrnet_rt.video.run_pipeline`; every check with a user-facing message lives in the library.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from hhrnet_rt.cli import ray_video, signals, temporal
from hhrnet_rt.cli.app import (
    BackendName,
    DecodeOn,
    DecodeOnOpt,
    Overwrite,
    Precision,
    app,
    console,
    handle_errors,
)
from hhrnet_rt.cli.remote import ClientToken, InFlight, SendAs, SendFormat, ServerUrl, remote_estimator
from hhrnet_rt.errors import InputError, PipelineError

# Tables are results, not diagnostics: they go to stdout.
stdout = Console()


def check_input_size(value: int | None) -> int | None:
    """Typer callback: the library's input-size rule (:func:`hhrnet_rt.preprocess.check_input_size`)."""
    from hhrnet_rt.preprocess import check_input_size as check

    if value is None:
        return None
    try:
        return check(value)
    except InputError as exc:
        raise typer.BadParameter(str(exc)) from None


JsonLines = Annotated[
    Path | None, typer.Option("--json", help="Keypoints, one JSON record per frame (.jsonl).")
]
Weights = Annotated[
    str | None,
    typer.Option(
        "--weights", "-w",
        help="Named weights (w32_512, w32_640, w48_512; downloaded on first use), a checkpoint file "
        "(.pth/.pt/.npz), or 'random' (random-init W32-512, for testing). Default: w32_512, or none "
        "with --engine (the file carries its weights; given with it, they must be the file's).",
        show_default=False,
    ),
]  # fmt: skip
Backend = Annotated[BackendName, typer.Option(help="Inference backend; auto picks the fastest available.")]
Engine = Annotated[
    Path | None,  # checked by hhrnet_rt.inputs (Click's exists=True calls a FIFO or a long name "missing")
    typer.Option(help="TensorRT engine file (--backend tensorrt), or an .onnx file (--backend onnxruntime)."),
]
PrecisionOpt = Annotated[
    Precision | None,
    typer.Option(
        case_sensitive=False,
        help="fp32 (default), fp16 (torch on CUDA, or an fp16 --engine file) or int8 (an int8 --engine "
        "file from `hhrt build-engine --precision int8`). With --engine the default is the file's "
        "precision, and a different value is an error.",
    ),
]
Device = Annotated[str | None, typer.Option(help="cpu, cuda, cuda:1 ... (default: chosen with the backend).")]
InputSize = Annotated[
    int | None,
    typer.Option(
        callback=check_input_size,
        help="Network input size, a multiple of 64 (default: the --engine file's; else 640 for *_640 "
        "weights, else 512).",
    ),
]
# None = not given: an --engine file then decides, and a value that contradicts the file is an error.
Flip = Annotated[
    bool | None,
    typer.Option(
        "--flip/--no-flip",
        help="Flip test (default: on, or as the --engine file was built).",
        show_default=False,
    ),
]
Refine = Annotated[
    bool, typer.Option("--refine/--no-refine", help="Refine pass of the decoder (official: on).")
]
MaxFrames = Annotated[int | None, typer.Option(min=1, help="Stop after this many frames.")]
MinScore = Annotated[
    float | None,
    typer.Option(
        min=0.0,
        help="Keep only people with score >= this: the one threshold for what is drawn, counted and "
        "written (JSON, COCO). Default: the files keep everyone (as the official evaluation does) and the "
        "picture hides people scoring 0.1 or less.",
        show_default=False,
    ),
]
MaxPeople = Annotated[
    int | None,
    typer.Option(
        min=1, help="Keep at most this many people per frame (the highest scores).", show_default=False
    ),
]
Recursive = Annotated[
    bool, typer.Option("--recursive", "-r", help="Also look in the sub-folders of folder inputs.")
]
Threads = Annotated[
    int | None,
    typer.Option(
        min=1,
        help="CPU threads for inference: torch's on the CPU, ONNX Runtime's intra-op threads "
        "(default: the library's, about one per core).",
        show_default=False,
    ),
]

FAST_INPUT_SIZE = 384
Fast = Annotated[
    bool,
    typer.Option(
        "--fast",
        help=f"Laptop preset: input {FAST_INPUT_SIZE} (unless --input-size is given) and no flip test. "
        "With an int8 CPU file (`hhrt build-engine --target cpu --precision int8 --input-size "
        f"{FAST_INPUT_SIZE} --no-flip`) passed as --engine, the fastest CPU setting; see README, CPU.",
    ),
]


def fast_preset(fast: bool, input_size: int | None, flip: bool | None) -> tuple[int | None, bool | None]:
    """(input size, flip) after the --fast preset: a smaller input and no flip; an explicit size wins."""
    if not fast:
        return input_size, flip
    return input_size or FAST_INPUT_SIZE, False


# How long the end of a run waits for a stage that is busy (one inference call on a slow device).
JOIN_TIMEOUT_S = 30.0


def make_estimator(
    weights, backend, engine, device, input_size, flip, refine, precision=None, decode_on=DecodeOn.auto,
    threads=None, fast=False,
):  # fmt: skip
    """Build the PoseEstimator the options describe and say which backend runs and why."""
    input_size, flip = fast_preset(fast, input_size, flip)
    from hhrnet_rt.backends.select import choose_backend
    from hhrnet_rt.estimator import PoseEstimator
    from hhrnet_rt.inputs import check_input_file, is_regular_file

    if engine is not None:
        check_input_file(engine, "engine file")
    name, chosen_device, reason = choose_backend(backend.value, engine=engine, device=device)
    console.print(f"backend: [bold]{name}[/] on {chosen_device} ({reason})", highlight=False)
    if engine is None:
        weights = weights or "w32_512"
        input_size = input_size or _preset_input_size(weights)
    source = Path(weights) if weights is not None and is_regular_file(weights) else weights
    _download_before_spinner(source)
    kwargs = {"flip": flip, "refine": refine, "backend": name, "device": chosen_device, "engine": engine}
    kwargs["precision"] = precision.value if precision is not None else None
    kwargs["input_size"] = input_size  # None with --engine: the file's (hhrnet_rt.engine_file)
    kwargs["decode_on"] = decode_on.value
    if threads is not None:
        import torch

        torch.set_num_threads(threads)  # process-wide: torch has no per-model thread count
        kwargs["onnx_threads"] = threads
    with console.status("loading the model..."):
        estimator = PoseEstimator(source, **kwargs)
    facts = estimator.describe()
    keys = ("precision", "input_size", "flip", "preprocess", "decode_on")
    shown = ", ".join(f"{k} {facts[k]}" for k in keys if k in facts)
    if shown:
        console.print(f"model: {shown}", highlight=False, soft_wrap=True)
    return estimator


def _download_before_spinner(weights) -> None:
    """A first use of named weights downloads them here, with their own progress bar, rather than under
    the loading spinner (two live displays on one terminal overwrite each other)."""
    from hhrnet_rt.download import NAMED_WEIGHTS, fetch_named, needs_download

    if isinstance(weights, str) and weights in NAMED_WEIGHTS and needs_download(weights):
        fetch_named(weights)


def _warm_up(estimator, source) -> None:
    """CUDA graph capture, cuDNN autotuning and lazy inits run here, at the source's frame size, so that
    the first timed frame does not pay them (a camera that reports no size: 640x480).

    A failure here is only a warning: the run meets the same problem on its first frame and reports it
    with the stage and frame it happened in (the one message the user gets for a failed run).
    """
    w, h = getattr(source, "size", None) or (0, 0)
    try:
        with console.status("warming up..."):
            estimator.warmup((h, w) if w > 0 and h > 0 else (480, 640))
    except Exception as exc:
        console.print(
            f"[yellow]warning:[/] warm-up failed ({type(exc).__name__}: {escape(str(exc))}); "
            "the first frames will include one-off setup time",
            highlight=False,
        )


def _preset_input_size(weights: str) -> int:
    """640 for the *_640 named weights, 512 for everything else (the released models' test sizes)."""
    from hhrnet_rt.model import ModelSpec

    try:
        return ModelSpec.preset(weights).input_size
    except ValueError:
        return 512


def _progress() -> Progress:
    return Progress(
        TextColumn("[progress.description]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[fps]:.1f} FPS"),
        TimeRemainingColumn(),
        console=console,
        transient=False,
    )


def _sinks(
    out: Path | None, json_out: Path | None, coco: Path | None, source, *, live: bool, overwrite: bool
):
    from hhrnet_rt.video import CocoSink, JsonLinesSink, Mp4Sink

    sinks = []
    try:
        if out is not None:
            # Files too: their frames' presentation times (variable frame rate stays as it was).
            time_base = None if live else source.time_base
            mp4 = Mp4Sink(
                out,
                source.fps,
                rate=source.rate,
                timestamps="capture",
                time_base=time_base,
                overwrite=overwrite,
            )
            if mp4.warning:
                console.print(f"[yellow]warning:[/] {mp4.warning}", highlight=False)
            sinks.append(mp4)
        if json_out is not None:
            sinks.append(JsonLinesSink(json_out, overwrite=overwrite))
        if coco is not None:
            sinks.append(CocoSink(coco, overwrite=overwrite))
    except BaseException:
        for sink in sinks:
            sink.close()
        raise
    return sinks


def _check_outputs(
    out: Path | None, json_out: Path | None, coco: Path | None, *, overwrite: bool, inputs: list[Path]
) -> None:
    """Fail on bad output paths before anything is opened and the (slow) model is loaded: never an
    input, never an existing file without --overwrite."""
    from hhrnet_rt.video.outputs import check_output_path

    for path, suffixes, what in (
        (out, (".mp4",), "output video"),
        (json_out, (".jsonl", ".ndjson"), "JSON lines file"),
        (coco, (".json",), "COCO results file"),
    ):
        if path is not None:
            check_output_path(path, suffixes, what, overwrite=overwrite, inputs=inputs)


def _run(
    source, estimator, sinks, *, hud: bool, show: bool, max_frames: int | None, title: str,
    min_score: float | None = None, max_people: int | None = None, post_decode=None,
):  # fmt: skip
    from hhrnet_rt.video import run_pipeline
    from hhrnet_rt.video.display import Window
    from hhrnet_rt.video.report import summary_table

    try:
        window = Window(f"hhrt {title}") if show else None
    except BaseException:
        for closable in (*sinks, source):  # run_pipeline would have closed them; it never started
            closable.close()
        raise
    total = source.frame_count
    if total is not None and max_frames is not None:
        total = min(total, max_frames)
    with _progress() as progress:
        task = progress.add_task(title, total=total, fps=0.0)
        t0 = time.perf_counter()

        done = 0

        def on_frame(result) -> None:  # runs in the pipeline's output thread; Progress is thread-safe
            nonlocal done
            done += 1
            progress.update(task, advance=1, fps=done / max(time.perf_counter() - t0, 1e-9))

        try:
            result = run_pipeline(
                source, estimator, sinks, hud=hud, max_frames=max_frames, on_frame=on_frame, display=window,
                join_timeout_s=JOIN_TIMEOUT_S, min_score=min_score,
                max_people=max_people, post_decode=post_decode,
            )  # fmt: skip
        except PipelineError as exc:
            if exc.threads_still_running:
                signals.request_hard_exit()
            raise
    if result.threads_still_running:
        signals.request_hard_exit()  # the interpreter's shutdown would abort under the busy stage
    stdout.print(summary_table(result, title=title))
    if result.decode_failures:
        console.print(f"[yellow]warning:[/] {result.decode_failures} frame(s) of the input could not be decoded "
                      "and were skipped", highlight=False)  # fmt: skip
    if result.threads_still_running:
        console.print(
            f"[yellow]warning:[/] stages still running at exit: {', '.join(result.threads_still_running)}"
        )
    if result.stopped == "interrupted":
        console.print(
            f"[yellow]interrupted[/]: the outputs hold the {result.frames_written} frames processed so far"
        )
        raise typer.Exit(signals.interrupted_exit_code())
    return result


@app.command()
@handle_errors
def video(
    ctx: typer.Context,
    inputs: Annotated[
        list[str],
        typer.Argument(help="Video files, folders, glob patterns or http(s)/rtsp URLs.", show_default=False),
    ],  # checked by hhrnet_rt.inputs / FileSource
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

    Several inputs are processed one after another, each with its own outputs (with --ray: as Ray tasks).
    """
    ray_video.check_options(ray, show, address, cpus_per_task, gpus_per_task, max_retries, server)
    from hhrnet_rt.cli.inputs_expand import expand_videos
    from hhrnet_rt.cli.targets import plan_video_outputs
    from hhrnet_rt.inputs import check_input_file
    from hhrnet_rt.runs import new_run_dir, remove_if_empty
    from hhrnet_rt.video import FileSource

    over_time = temporal.temporal_settings(track, track_min_hits, track_max_age, track_min_oks, smooth,
                                           smooth_min_cutoff, smooth_beta, smooth_d_cutoff)  # fmt: skip
    sources = expand_videos(inputs, recursive=recursive)
    for source in sources:  # every local input is checked before anything is created or loaded
        if isinstance(source, Path):
            check_input_file(source, "video file")
    if show:
        _require_window()
    run_dir = new_run_dir() if out is None else None
    try:
        plan = plan_video_outputs(sources, out, json_out, coco, run_dir=run_dir, overwrite=overwrite)
        if ray:
            model = (weights, backend, engine, device, input_size, flip, refine, precision, decode_on, threads, fast)
            recipe = ray_video.recipe_for(*model, min_score=min_score, max_people=max_people, max_frames=max_frames,
                                          over_time=over_time)
            return ray_video.run(plan, recipe, address=address, cpus_per_task=cpus_per_task,
                                 gpus_per_task=gpus_per_task, max_retries=max_retries, overwrite=overwrite)
        source = FileSource(plan[0].source)  # a first input that is not a video fails before the model loads
        try:
            if server is not None:
                estimator = remote_estimator(ctx, server, token, send, in_flight)
            else:
                estimator = make_estimator(
                    weights, backend, engine, device, input_size, flip, refine, precision, decode_on, threads, fast
                )
        except BaseException:
            source.close()
            raise
        for targets in plan:
            if source is None:
                source = FileSource(targets.source)
            _video_one(source, targets, estimator, show=show, max_frames=max_frames, min_score=min_score,
                       max_people=max_people, overwrite=overwrite, over_time=over_time)  # fmt: skip
            source = None
    finally:
        if run_dir is not None:
            remove_if_empty(run_dir)
    if run_dir is not None and run_dir.is_dir():
        console.print(f"results saved to [bold]{escape(str(run_dir))}[/]", highlight=False)


def _video_one(
    source, targets, estimator, *, show, max_frames, min_score, max_people, overwrite, over_time
) -> None:
    """One input of ``hhrt video`` (its source open) through the pipeline into its outputs."""
    try:
        _warm_up(estimator, source)
        sinks = _sinks(targets.video, targets.json, targets.coco, source, live=False, overwrite=overwrite)
    except BaseException:
        source.close()
        raise
    result = _run(source, estimator, sinks, hud=False, show=show, max_frames=max_frames, title=source.name,
                  min_score=min_score, max_people=max_people, post_decode=over_time.hook())  # fmt: skip
    whole_file = result.stopped is None and (max_frames is None or result.frames_read < max_frames)
    if whole_file and (shortfall := source.shortfall_warning(result.frames_read)):
        console.print(f"[yellow]warning:[/] {escape(shortfall)}", highlight=False)  # a file name may hold [ ]


def _require_window() -> None:
    from hhrnet_rt.video.display import gui_problem

    problem = gui_problem()
    if problem:
        raise InputError(f"cannot open a window: {problem}; write the result with --out OUT.mp4 instead")


@app.command()
@handle_errors
def webcam(
    ctx: typer.Context,
    camera: Annotated[
        str, typer.Option(help="Camera index, stream URL, or a video file played in real time.")
    ] = "0",
    out: Annotated[
        Path | None, typer.Option("--out", "-o", help="Also record the annotated stream (.mp4).")
    ] = None,
    json_out: JsonLines = None,
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
    """Live pose estimation: newest frame wins, drops are counted; q or Esc quits the window."""
    from hhrnet_rt.video import CameraSource
    from hhrnet_rt.video.display import gui_problem

    over_time = temporal.temporal_settings(track, track_min_hits, track_max_age, track_min_oks, smooth,
                                           smooth_min_cutoff, smooth_beta, smooth_d_cutoff)  # fmt: skip
    _check_outputs(out, json_out, None, overwrite=overwrite, inputs=[Path(camera)])  # a file played live
    if show and (problem := gui_problem()):
        if out is None and json_out is None:
            raise InputError(
                f"cannot open a window: {problem}; record with --out OUT.mp4 (and/or --json) instead"
            )
        console.print(
            f"[yellow]warning:[/] {problem}; recording without a window (Ctrl-C stops)", highlight=False
        )
        show = False
    if not show and out is None and json_out is None:
        raise InputError("nothing to do: --no-show needs --out OUT.mp4 and/or --json OUT.jsonl")
    source = CameraSource(int(camera) if camera.isdigit() else camera, width=width, height=height, fps=fps)
    if source.warning:  # a camera picks the nearest mode it has
        console.print(f"[yellow]warning:[/] {escape(source.warning)}", highlight=False)
    try:
        if server is not None:
            estimator = remote_estimator(ctx, server, token, send, in_flight)
        else:
            estimator = make_estimator(
                weights, backend, engine, device, input_size, flip, refine, precision, decode_on, threads, fast
            )
        _warm_up(estimator, source)
        sinks = _sinks(out, json_out, None, source, live=True, overwrite=overwrite)
    except BaseException:
        source.close()
        raise
    _run(source, estimator, sinks, hud=True, show=show, max_frames=max_frames, title=source.description,
         min_score=min_score, max_people=max_people, post_decode=over_time.hook())  # fmt: skip


@app.command()
@handle_errors
def image(
    inputs: Annotated[
        list[str], typer.Argument(help="Image files, folders or glob patterns.", show_default=False)
    ],  # checked by hhrnet_rt.inputs
    out: Annotated[
        Path | None,
        typer.Option(
            "--out",
            "-o",
            help="Folder for the annotated images (created). Default: a new runs/pose/N folder.",
            show_default=False,
        ),
    ] = None,
    json_out: Annotated[
        bool, typer.Option("--json", help="Also write <name>.json with the keypoints.")
    ] = False,
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
    exif_orientation: Annotated[
        bool,
        typer.Option(
            "--exif-orientation/--ignore-exif-orientation",
            help="Turn photos upright as their EXIF orientation says (default, like image viewers); "
            "--ignore-exif-orientation keeps the stored pixels, as the official COCO evaluation does.",
        ),
    ] = True,
    decode_on: DecodeOnOpt = DecodeOn.auto,
    threads: Threads = None,
    overwrite: Overwrite = False,
) -> None:
    """Annotate images; keypoints optionally as JSON beside the annotated images."""
    from hhrnet_rt.cli.inputs_expand import expand_images
    from hhrnet_rt.cli.targets import plan_image_outputs
    from hhrnet_rt.inputs import check_image_file
    from hhrnet_rt.runs import new_run_dir, remove_if_empty
    from hhrnet_rt.video.outputs import check_output_dir

    paths = expand_images(inputs, recursive=recursive)
    for path in paths:  # all inputs are checked before the model loads
        check_image_file(path)
    run_dir = new_run_dir() if out is None else None
    try:
        folder = check_output_dir(out) if out is not None else run_dir
        plan = plan_image_outputs(paths, folder, keypoints=json_out, overwrite=overwrite)
        estimator = make_estimator(
            weights, backend, engine, device, input_size, flip, refine, precision, decode_on, threads, fast
        )
        _images(plan, estimator, exif_orientation=exif_orientation, min_score=min_score,
                max_people=max_people, overwrite=overwrite)  # fmt: skip
    finally:
        if run_dir is not None:
            remove_if_empty(run_dir)
    if run_dir is not None and run_dir.is_dir():
        console.print(f"results saved to [bold]{escape(str(run_dir))}[/]", highlight=False)


def _images(plan, estimator, *, exif_orientation, min_score, max_people, overwrite) -> None:
    import cv2

    from hhrnet_rt.draw import annotator_for
    from hhrnet_rt.inputs import read_image
    from hhrnet_rt.poses import KEYPOINTS_SCHEMA
    from hhrnet_rt.video.outputs import write_new_file

    annotator = annotator_for(min_score)
    table = Table("image", "people", "ms", "written")
    for path, target, keypoints_target in plan:
        picture = read_image(path, exif_orientation=exif_orientation)
        t0 = time.perf_counter()
        poses = estimator.predict(picture).select(min_score, max_people)  # drawn = counted = written
        ms = 1e3 * (time.perf_counter() - t0)
        drawn = int(annotator.drawn(poses).sum())
        encoded, data = cv2.imencode(target.suffix, annotator.annotate(picture, poses))
        if not encoded:
            raise InputError(f"could not encode {target}")
        write_new_file(target, data.tobytes(), overwrite=overwrite)
        people = str(drawn)
        if keypoints_target is not None:
            record = {"schema": KEYPOINTS_SCHEMA, "image": str(path), "width": picture.shape[1],
                      "height": picture.shape[0], "people": poses.to_records()}  # fmt: skip
            write_new_file(keypoints_target, (json.dumps(record) + "\n").encode(), overwrite=overwrite)
            if drawn != len(poses):
                people = f"{drawn} ({len(poses)} in JSON)"
        table.add_row(str(path), people, f"{ms:.0f}", str(target))
    stdout.print(table)
