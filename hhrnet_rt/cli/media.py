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
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from hhrnet_rt.cli.app import EXIT_INTERRUPTED, BackendName, Precision, app, console, handle_errors
from hhrnet_rt.errors import InputError

# Tables are results, not diagnostics: they go to stdout.
stdout = Console()


def check_input_size(value: int | None) -> int | None:
    """Typer callback: the network input must be a positive multiple of 64 (the official resize rule)."""
    if value is None or (value >= 64 and value % 64 == 0):
        return value
    lower = value // 64 * 64
    nearest = f"{lower} or {lower + 64}" if lower >= 64 else "64"
    raise typer.BadParameter(f"{value} is not a multiple of 64; the nearest valid sizes are {nearest}")


JsonLines = Annotated[
    Path | None, typer.Option("--json", help="Keypoints, one JSON record per frame (.jsonl).")
]
Weights = Annotated[
    str,
    typer.Option(
        "--weights", "-w",
        help="Named weights (w32_512, w32_640, w48_512; downloaded on first use), a checkpoint file "
        "(.pth/.pt/.npz), or 'random' (random-init W32-512, for testing).",
    ),
]  # fmt: skip
Backend = Annotated[BackendName, typer.Option(help="Inference backend; auto picks the fastest available.")]
Engine = Annotated[
    Path | None,
    typer.Option(
        exists=True,
        dir_okay=False,
        help="TensorRT engine file (--backend tensorrt), or an .onnx file (--backend onnxruntime).",
    ),
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
        help="Network input size, a multiple of 64 (default: 640 for *_640 weights, else 512).",
    ),
]
Flip = Annotated[bool, typer.Option("--flip/--no-flip", help="Flip test (official default: on).")]
Refine = Annotated[
    bool, typer.Option("--refine/--no-refine", help="Refine pass of the decoder (official: on).")
]
MaxFrames = Annotated[int | None, typer.Option(min=1, help="Stop after this many frames.")]
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


def fast_preset(fast: bool, input_size: int | None, flip: bool) -> tuple[int | None, bool]:
    """(input size, flip) after the --fast preset: a smaller input and no flip; an explicit size wins."""
    if not fast:
        return input_size, flip
    return input_size or FAST_INPUT_SIZE, False


def make_estimator(weights, backend, engine, device, input_size, flip, refine, precision=None, fast=False):
    """Build the PoseEstimator the options describe and say which backend runs and why."""
    input_size, flip = fast_preset(fast, input_size, flip)
    from hhrnet_rt.backends.select import choose_backend
    from hhrnet_rt.estimator import PoseEstimator

    name, chosen_device, reason = choose_backend(backend.value, engine=engine, device=device)
    console.print(f"backend: [bold]{name}[/] on {chosen_device} ({reason})", highlight=False)
    source = Path(weights) if Path(weights).is_file() else weights
    kwargs = {"flip": flip, "refine": refine, "backend": name, "device": chosen_device, "engine": engine}
    kwargs["precision"] = precision.value if precision is not None else None
    kwargs["input_size"] = input_size or _preset_input_size(weights)
    with console.status("loading the model..."):
        estimator = PoseEstimator(source, **kwargs)
    facts = estimator.describe()
    keys = ("precision", "input_size", "flip", "preprocess")
    shown = ", ".join(f"{k} {facts[k]}" for k in keys if k in facts)
    if shown:
        console.print(f"model: {shown}", highlight=False, soft_wrap=True)
    return estimator


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


def _sinks(out: Path | None, json_out: Path | None, coco: Path | None, source, *, live: bool):
    from hhrnet_rt.video import CocoSink, JsonLinesSink, Mp4Sink

    sinks = []
    try:
        if out is not None:
            mp4 = Mp4Sink(out, source.fps, rate=source.rate, timestamps="capture" if live else "index")
            if mp4.warning:
                console.print(f"[yellow]warning:[/] {mp4.warning}", highlight=False)
            sinks.append(mp4)
        if json_out is not None:
            sinks.append(JsonLinesSink(json_out))
        if coco is not None:
            sinks.append(CocoSink(coco))
    except BaseException:
        for sink in sinks:
            sink.close()
        raise
    return sinks


def _check_outputs(out: Path | None, json_out: Path | None, coco: Path | None) -> None:
    """Fail on bad output paths before the (slow) model is loaded."""
    from hhrnet_rt.video.sinks import check_output_path

    for path, suffixes, what in (
        (out, (".mp4",), "output video"),
        (json_out, (".jsonl", ".ndjson"), "JSON lines file"),
        (coco, (".json",), "COCO results file"),
    ):
        if path is not None:
            check_output_path(path, suffixes, what)


def _run(source, estimator, sinks, *, hud: bool, show: bool, max_frames: int | None, title: str) -> None:
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

        result = run_pipeline(
            source, estimator, sinks, hud=hud, max_frames=max_frames, on_frame=on_frame, display=window
        )
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
        raise typer.Exit(EXIT_INTERRUPTED)


@app.command()
@handle_errors
def video(
    input: Annotated[Path, typer.Argument(exists=True, dir_okay=False, help="Input video file.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Annotated output video (.mp4, H.264).")],
    json_out: JsonLines = None,
    coco: Annotated[Path | None, typer.Option(help="Keypoints in COCO results format (.json).")] = None,
    weights: Weights = "w32_512",
    backend: Backend = BackendName.auto,
    engine: Engine = None,
    precision: PrecisionOpt = None,
    device: Device = None,
    input_size: InputSize = None,
    flip: Flip = True,
    fast: Fast = False,
    refine: Refine = True,
    max_frames: MaxFrames = None,
    show: Annotated[bool, typer.Option(help="Also show the result in a window (q or Esc stops).")] = False,
) -> None:
    """Annotate every frame of a video: one output frame per input frame, in order, at the input rate."""
    from hhrnet_rt.video import FileSource

    _check_outputs(out, json_out, coco)
    if show:
        _require_window()
    source = FileSource(input)
    try:
        estimator = make_estimator(
            weights, backend, engine, device, input_size, flip, refine, precision, fast
        )
        sinks = _sinks(out, json_out, coco, source, live=False)
    except BaseException:
        source.close()
        raise
    _run(source, estimator, sinks, hud=False, show=show, max_frames=max_frames, title=input.name)


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
    weights: Weights = "w32_512",
    backend: Backend = BackendName.auto,
    engine: Engine = None,
    precision: PrecisionOpt = None,
    device: Device = None,
    input_size: InputSize = None,
    flip: Flip = True,
    fast: Fast = False,
    refine: Refine = True,
    max_frames: MaxFrames = None,
    show: Annotated[bool, typer.Option(help="Show the window (default); --no-show to only record.")] = True,
) -> None:
    """Live pose estimation: newest frame wins, drops are counted; q or Esc quits the window."""
    from hhrnet_rt.video import CameraSource
    from hhrnet_rt.video.display import gui_problem

    _check_outputs(out, json_out, None)
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
            weights, backend, engine, device, input_size, flip, refine, precision, fast
        )
        sinks = _sinks(out, json_out, None, source, live=True)
    except BaseException:
        source.close()
        raise
    _run(source, estimator, sinks, hud=True, show=show, max_frames=max_frames, title=source.description)


@app.command()
@handle_errors
def image(
    inputs: Annotated[list[Path], typer.Argument(exists=True, dir_okay=False, help="Image files.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Directory for the annotated images (created).")],
    json_out: Annotated[
        bool, typer.Option("--json", help="Also write <name>.json with the keypoints.")
    ] = False,
    weights: Weights = "w32_512",
    backend: Backend = BackendName.auto,
    engine: Engine = None,
    precision: PrecisionOpt = None,
    device: Device = None,
    input_size: InputSize = None,
    flip: Flip = True,
    fast: Fast = False,
    refine: Refine = True,
) -> None:
    """Annotate images; keypoints optionally as JSON next to them."""
    import cv2

    from hhrnet_rt.draw import PoseAnnotator
    from hhrnet_rt.video.sinks import check_output_dir

    for path in inputs:  # all inputs are checked before the model loads
        if not cv2.haveImageReader(str(path)):
            raise InputError(f"{path} is not an image OpenCV can read")
    check_output_dir(out)
    estimator = make_estimator(weights, backend, engine, device, input_size, flip, refine, precision, fast)
    annotator = PoseAnnotator()
    table = Table("image", "people", "ms", "written")
    used: set[str] = set()
    for path in inputs:
        picture = cv2.imread(str(path), cv2.IMREAD_COLOR)
        if picture is None:
            raise InputError(f"{path} could not be decoded as an image")
        t0 = time.perf_counter()
        poses = estimator.predict(picture)
        ms = 1e3 * (time.perf_counter() - t0)
        stem = _unique_stem(path.stem, used)
        suffix = path.suffix.lower() if cv2.haveImageWriter(f"x{path.suffix}") else ".png"
        target = out / f"{stem}{suffix}"
        if not cv2.imwrite(str(target), annotator.annotate(picture, poses)):
            raise InputError(f"could not write {target}")
        if json_out:
            record = {"image": str(path), "width": picture.shape[1], "height": picture.shape[0],
                      "people": poses.to_records()}  # fmt: skip
            (out / f"{stem}.json").write_text(json.dumps(record) + "\n", encoding="utf-8")
        table.add_row(str(path), str(len(poses)), f"{ms:.0f}", str(target))
    stdout.print(table)


def _unique_stem(stem: str, used: set[str]) -> str:
    """Two inputs called x.jpg in different folders must not overwrite each other's output."""
    candidate, n = stem, 1
    while candidate in used:
        candidate, n = f"{stem}_{n}", n + 1
    used.add(candidate)
    return candidate
