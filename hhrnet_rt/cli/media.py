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

from hhrnet_rt.cli import signals
from hhrnet_rt.cli.app import BackendName, DecodeOn, DecodeOnOpt, Precision, app, console, handle_errors
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
Overwrite = Annotated[
    bool,
    typer.Option("--overwrite", "-y", help="Replace output files that already exist (never the input)."),
]

# How long the end of a run waits for a stage that is busy (one inference call on a slow device).
JOIN_TIMEOUT_S = 30.0


def make_estimator(
    weights, backend, engine, device, input_size, flip, refine, precision=None, decode_on=DecodeOn.auto
):
    """Build the PoseEstimator the options describe and say which backend runs and why."""
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
    kwargs = {"flip": flip, "refine": refine, "backend": name, "device": chosen_device, "engine": engine}
    kwargs["precision"] = precision.value if precision is not None else None
    kwargs["input_size"] = input_size  # None with --engine: the file's (hhrnet_rt.engine_file)
    kwargs["decode_on"] = decode_on.value
    with console.status("loading the model..."):
        estimator = PoseEstimator(source, **kwargs)
    facts = estimator.describe()
    keys = ("precision", "input_size", "flip", "preprocess", "decode_on")
    shown = ", ".join(f"{k} {facts[k]}" for k in keys if k in facts)
    if shown:
        console.print(f"model: {shown}", highlight=False, soft_wrap=True)
    return estimator


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


def _run(source, estimator, sinks, *, hud: bool, show: bool, max_frames: int | None, title: str):
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
                join_timeout_s=JOIN_TIMEOUT_S,
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
    input: Annotated[Path, typer.Argument(help="Input video file.")],  # checked by FileSource
    out: Annotated[Path, typer.Option("--out", "-o", help="Annotated output video (.mp4, H.264).")],
    json_out: JsonLines = None,
    coco: Annotated[Path | None, typer.Option(help="Keypoints in COCO results format (.json).")] = None,
    weights: Weights = None,
    backend: Backend = BackendName.auto,
    engine: Engine = None,
    precision: PrecisionOpt = None,
    device: Device = None,
    input_size: InputSize = None,
    flip: Flip = None,
    refine: Refine = True,
    max_frames: MaxFrames = None,
    show: Annotated[bool, typer.Option(help="Also show the result in a window (q or Esc stops).")] = False,
    decode_on: DecodeOnOpt = DecodeOn.auto,
    overwrite: Overwrite = False,
) -> None:
    """Annotate every frame of a video: one output frame per input frame, in order, at the input rate."""
    from hhrnet_rt.video import FileSource

    _check_outputs(out, json_out, coco, overwrite=overwrite, inputs=[input])
    if show:
        _require_window()
    source = FileSource(input)
    try:
        estimator = make_estimator(
            weights, backend, engine, device, input_size, flip, refine, precision, decode_on
        )
        _warm_up(estimator, source)
        sinks = _sinks(out, json_out, coco, source, live=False, overwrite=overwrite)
    except BaseException:
        source.close()
        raise
    result = _run(source, estimator, sinks, hud=False, show=show, max_frames=max_frames, title=input.name)
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
    camera: Annotated[
        str, typer.Option(help="Camera index, stream URL, or a video file played in real time.")
    ] = "0",
    out: Annotated[
        Path | None, typer.Option("--out", "-o", help="Also record the annotated stream (.mp4).")
    ] = None,
    json_out: JsonLines = None,
    weights: Weights = None,
    backend: Backend = BackendName.auto,
    engine: Engine = None,
    precision: PrecisionOpt = None,
    device: Device = None,
    input_size: InputSize = None,
    flip: Flip = None,
    refine: Refine = True,
    max_frames: MaxFrames = None,
    show: Annotated[bool, typer.Option(help="Show the window (default); --no-show to only record.")] = True,
    decode_on: DecodeOnOpt = DecodeOn.auto,
    overwrite: Overwrite = False,
) -> None:
    """Live pose estimation: newest frame wins, drops are counted; q or Esc quits the window."""
    from hhrnet_rt.video import CameraSource
    from hhrnet_rt.video.display import gui_problem

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
    source = CameraSource(int(camera) if camera.isdigit() else camera)
    try:
        estimator = make_estimator(
            weights, backend, engine, device, input_size, flip, refine, precision, decode_on
        )
        _warm_up(estimator, source)
        sinks = _sinks(out, json_out, None, source, live=True, overwrite=overwrite)
    except BaseException:
        source.close()
        raise
    _run(source, estimator, sinks, hud=True, show=show, max_frames=max_frames, title=source.description)


@app.command()
@handle_errors
def image(
    inputs: Annotated[list[Path], typer.Argument(help="Image files.")],  # checked by hhrnet_rt.inputs
    out: Annotated[Path, typer.Option("--out", "-o", help="Directory for the annotated images (created).")],
    json_out: Annotated[
        bool, typer.Option("--json", help="Also write <name>.json with the keypoints.")
    ] = False,
    weights: Weights = None,
    backend: Backend = BackendName.auto,
    engine: Engine = None,
    precision: PrecisionOpt = None,
    device: Device = None,
    input_size: InputSize = None,
    flip: Flip = None,
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
    overwrite: Overwrite = False,
) -> None:
    """Annotate images; keypoints optionally as JSON next to them."""
    import cv2

    from hhrnet_rt.draw import PoseAnnotator
    from hhrnet_rt.inputs import check_image_file, read_image
    from hhrnet_rt.video.outputs import check_output_dir, write_new_file

    for path in inputs:  # all inputs are checked before the model loads
        check_image_file(path)
    check_output_dir(out)
    plan = _image_targets(inputs, out, keypoints=json_out, overwrite=overwrite)
    estimator = make_estimator(
        weights, backend, engine, device, input_size, flip, refine, precision, decode_on
    )
    annotator = PoseAnnotator()
    table = Table("image", "people", "ms", "written")
    for path, target, keypoints_target in plan:
        picture = read_image(path, exif_orientation=exif_orientation)
        t0 = time.perf_counter()
        poses = estimator.predict(picture)
        ms = 1e3 * (time.perf_counter() - t0)
        encoded, data = cv2.imencode(target.suffix, annotator.annotate(picture, poses))
        if not encoded:
            raise InputError(f"could not encode {target}")
        write_new_file(target, data.tobytes(), overwrite=overwrite)
        if keypoints_target is not None:
            record = {"image": str(path), "width": picture.shape[1], "height": picture.shape[0],
                      "people": poses.to_records()}  # fmt: skip
            write_new_file(keypoints_target, (json.dumps(record) + "\n").encode(), overwrite=overwrite)
        table.add_row(str(path), str(len(poses)), f"{ms:.0f}", str(target))
    stdout.print(table)


def _image_targets(
    inputs: list[Path], out: Path, *, keypoints: bool, overwrite: bool
) -> list[tuple[Path, Path, Path | None]]:
    """(input, annotated image, keypoints file or None) for each input, every target checked up front:
    none may be an input (``--out`` the inputs' own folder), none may exist without --overwrite."""
    import cv2

    from hhrnet_rt.video.outputs import refuse_existing, refuse_input

    used: set[str] = set()
    plan = []
    for path in inputs:
        stem = _unique_stem(path.stem, used)
        suffix = path.suffix.lower() if cv2.haveImageWriter(f"x{path.suffix}") else ".png"
        target = out / f"{stem}{suffix}"
        keypoints_target = out / f"{stem}.json" if keypoints else None
        for file, what in ((target, "output image"), (keypoints_target, "keypoints file")):
            if file is not None:
                refuse_input(file, what, inputs)
                refuse_existing(file, what, overwrite)
        plan.append((path, target, keypoints_target))
    return plan


def _unique_stem(stem: str, used: set[str]) -> str:
    """Two inputs called x.jpg in different folders must not overwrite each other's output."""
    candidate, n = stem, 1
    while candidate in used:
        candidate, n = f"{stem}_{n}", n + 1
    used.add(candidate)
    return candidate
