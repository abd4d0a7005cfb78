"""Options shared by the commands that run the model (video, webcam, image) and the estimator they build.

One home for each option's name, help and check, so every command spells them the same way.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

from hhrnet_rt.cli.app import BackendName, DecodeOn, Precision, console
from hhrnet_rt.core.errors import InputError
from hhrnet_rt.core.inputs import check_input_file, is_regular_file
from hhrnet_rt.core.sizes import check_input_size as check
from hhrnet_rt.model.download import NAMED_WEIGHTS, fetch_named, needs_download
from hhrnet_rt.runtime.backends.select import choose_backend
from hhrnet_rt.runtime.estimator import PoseEstimator


def check_input_size(value: int | None) -> int | None:
    """Typer callback: the library's input-size rule (:func:`hhrnet_rt.runtime.preprocess.check_input_size`)."""

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
    Path
    | None,  # checked by hhrnet_rt.core.inputs (Click's exists=True calls a FIFO or a long name "missing")
    typer.Option(
        help="TensorRT engine file (--backend tensorrt), an .onnx file (--backend onnxruntime or openvino), "
        "or an OpenVINO .xml (--backend openvino)."
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
        help="CPU threads for inference: torch's on the CPU, ONNX Runtime's intra-op threads, OpenVINO's "
        "inference threads (default: the library's, about one per core).",
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


def make_estimator(
    weights, backend, engine, device, input_size, flip, refine, precision=None, decode_on=DecodeOn.auto,
    threads=None, fast=False,
):  # fmt: skip
    """Build the PoseEstimator the options describe and say which backend runs and why."""
    input_size, flip = fast_preset(fast, input_size, flip)

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
    kwargs["input_size"] = input_size  # None with --engine: the file's (hhrnet_rt.artifacts.engine_settings)
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

    if isinstance(weights, str) and weights in NAMED_WEIGHTS and needs_download(weights):
        fetch_named(weights)


def warm_up(estimator, sources, batch: int = 1) -> None:
    """CUDA graph capture, cuDNN autotuning and lazy inits run here, once per frame size of the sources
    (and for a full batch of that size when ``batch`` > 1: kernels are chosen per batch shape), so that
    the first timed frames do not pay them (a camera that reports no size: 640x480).

    A failure here is only a warning: the run meets the same problem on its first frame and reports it
    with the stage and frame it happened in (the one message the user gets for a failed run).
    """
    import numpy as np

    sizes = []
    for source in sources:
        w, h = getattr(source, "size", None) or (0, 0)
        hw = (h, w) if w > 0 and h > 0 else (480, 640)
        if hw not in sizes:
            sizes.append(hw)
    try:
        with console.status("warming up..."):
            for hw in sizes:
                estimator.warmup(hw)
                if batch > 1 and hasattr(estimator, "infer_batch"):
                    prepared = estimator.prepare(np.zeros((*hw, 3), np.uint8))
                    estimator.infer_batch([prepared] * batch)
    except Exception as exc:
        console.print(
            f"[yellow]warning:[/] warm-up failed ({type(exc).__name__}: {escape(str(exc))}); "
            "the first frames will include one-off setup time",
            highlight=False,
        )


def _preset_input_size(weights: str) -> int:
    """640 for the *_640 named weights, 512 for everything else (the released models' test sizes)."""
    from hhrnet_rt.model.spec import ModelSpec

    try:
        return ModelSpec.preset(weights).input_size
    except ValueError:
        return 512
