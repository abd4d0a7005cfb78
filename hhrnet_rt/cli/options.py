"""The options about the model: choosing it, building files, measuring, serving, its cached files.

Each option's name, help and check has one place, here or in :mod:`hhrnet_rt.cli.run_options` (the
options of a run: inputs, outputs, batching, tracking, servers, clusters); command modules import them.
``hhrt video``, ``webcam``, ``image`` and ``serve`` gather the model options into one
:class:`~hhrnet_rt.runtime.config.EstimatorConfig` (:func:`hhrnet_rt.cli.estimator.model_config`);
``hhrt build-engine`` and ``hhrt bench`` spell some of them their own way (other defaults, other help).
"""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer

from hhrnet_rt.core.access import TOKEN_ENV
from hhrnet_rt.core.errors import InputError
from hhrnet_rt.core.names import AUTO, BACKEND_REQUESTS, Precision
from hhrnet_rt.core.sizes import check_input_size as check
from hhrnet_rt.runtime.config import FAST_INPUT_SIZE

# The --backend choices shared by every command: "auto" and the library's backend names (one home:
# hhrnet_rt.core.names); --precision takes the library's Precision enum as it is.
BackendName = StrEnum("BackendName", [(name, name) for name in BACKEND_REQUESTS])  # type: ignore[misc]
#: The --backend choices of every command, and "all": every usable backend and precision in one table.
BENCH_ALL = "all"  # hhrt bench --backend all: every backend and precision in one table
BenchBackend = StrEnum("BenchBackend", {**{b.name: b.value for b in BackendName}, BENCH_ALL: BENCH_ALL})  # type: ignore[misc]
# The defaults, by value: mypy cannot see the members of an enum made from a list.
AUTO_BACKEND = BackendName(AUTO)
BENCH_AUTO = BenchBackend(AUTO)


class DecodeOn(StrEnum):
    """The --decode-on choices (``PoseEstimator(decode_on=...)``)."""

    auto = "auto"
    device = "device"
    host = "host"


class Target(StrEnum):
    tensorrt = "tensorrt"
    cpu = "cpu"
    openvino = "openvino"


class CalibMethod(StrEnum):
    entropy = "entropy"
    percentile = "percentile"
    minmax = "minmax"


def check_input_size(value: int | None) -> int | None:
    """Typer callback: the library's input-size rule (:func:`hhrnet_rt.core.sizes.check_input_size`)."""

    if value is None:
        return None
    try:
        return check(value)
    except InputError as exc:
        raise typer.BadParameter(str(exc)) from None


# --- video, webcam, image, serve ------------------------------------------------------------------------

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
MaxAspect = Annotated[
    float,
    typer.Option(
        min=1.0,
        help="Refuse images whose network input would exceed this aspect ratio (area over MAX_ASPECT x "
        "input size²): a 1x500 strip would cost gigabytes. Raise it for panoramas.",
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
Fast = Annotated[
    bool,
    typer.Option(
        "--fast",
        help=f"Laptop preset: input {FAST_INPUT_SIZE} (unless --input-size is given) and no flip test. "
        "With an int8 CPU file (`hhrt build-engine --target cpu --precision int8 --input-size "
        f"{FAST_INPUT_SIZE} --no-flip`) passed as --engine, the fastest CPU setting; see docs/engines.md.",
    ),
]
Refine = Annotated[
    bool, typer.Option("--refine/--no-refine", help="Refine pass of the decoder (official: on).")
]
DecodeOnOpt = Annotated[
    DecodeOn,
    typer.Option(
        "--decode-on",
        case_sensitive=False,
        help="Where the map-sized decode work runs: device (maps stay on the GPU; only candidates cross), "
        "host (maps copied to the CPU once, Numba decode), or auto: device on CUDA backends, host on CPU.",
    ),
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

# --- build-engine -----------------------------------------------------------------------------------------

BuildWeights = Annotated[str, typer.Option(help="Checkpoint name (w32_512, ...), path, or 'random'.")]
BuildPrecision = Annotated[
    Precision, typer.Option(case_sensitive=False, help="Precision baked into the ONNX file.")
]
BuildInputSize = Annotated[int, typer.Option(help="Short side of the network input (multiple of 64).")]
Shapes = Annotated[
    str | None,
    typer.Option(help="Profile MIN:OPT:MAX, each S, HxW or NxHxW (default: from --input-size)."),
]
EngineMaxBatch = Annotated[
    int | None,
    typer.Option(
        min=1,
        help="Largest batch the engine accepts (for --batch on video/webcam: several streams or "
        "consecutive frames in one call). Default 1. With --shapes, write NxHxW there instead.",
    ),
]
BuildFlip = Annotated[bool, typer.Option("--flip/--no-flip", help="Bake the flip test into the graph.")]
Calib = Annotated[
    Path | None,
    typer.Option(help="INT8 calibration images: a folder or a video (default: calibration/)."),
]
CalibCount = Annotated[int, typer.Option(min=1, help="Number of calibration images/frames.")]
CalibMethodOpt = Annotated[
    CalibMethod,
    typer.Option(
        case_sensitive=False,
        help="Range method; entropy is slow in ONNX Runtime (minutes). --target openvino: NNCF's own.",
    ),
]
DeconvWeightAxis = Annotated[
    int | None,
    typer.Option(
        min=0,
        max=1,
        help="int8 for TensorRT: ConvTranspose weight scales per input channel (0, default: the layout "
        "NVIDIA last documented for its int8 deconvolution) or per output channel (1). The build prints, "
        "per deconvolution, whether TensorRT ran it in int8; see docs/engines.md.",
        show_default=False,
    ),
]
BuildOut = Annotated[Path, typer.Option(help="Output folder for NAME.onnx, NAME.engine, NAME.json.")]
BuildName = Annotated[
    str | None, typer.Option(help="Base file name (default: from weights, size, precision).")
]
WorkspaceGib = Annotated[float, typer.Option(min=0.25, help="TensorRT builder workspace limit, GiB.")]
TargetOpt = Annotated[
    Target,
    typer.Option(
        case_sensitive=False,
        help="tensorrt: build a TensorRT engine. cpu: stop at an ONNX file for ONNX Runtime on the CPU "
        "(int8 in the layout of its CPU kernels; run with --backend onnxruntime --engine NAME.onnx). "
        "openvino: an OpenVINO model NAME.xml + NAME.bin (int8 by NNCF; needs the openvino extra; run "
        "with --backend openvino --engine NAME.xml).",
    ),
]

# --- bench ------------------------------------------------------------------------------------------------

BenchBackendOpt = Annotated[
    BenchBackend,
    typer.Option(
        case_sensitive=False,
        help="Backend to measure; all: every usable backend and precision in one table (model-only "
        "ms, end-to-end FPS, agreement with torch fp32).",
    ),
]
BenchPrecision = Annotated[
    Precision | None,
    typer.Option(
        case_sensitive=False,
        help="fp32, fp16 or int8 (default: fp32, or the precision of the --engine file; a different "
        "explicit value is an error).",
    ),
]
BenchWeights = Annotated[str, typer.Option(help="'random' (default; speed only), a name or a path.")]
BenchInputSize = Annotated[
    int, typer.Option(callback=check_input_size, help="Short side of the network input (multiple of 64).")
]
BenchBatch = Annotated[int, typer.Option(min=1, help="Batch size of the model-only runs.")]
BenchFrames = Annotated[int, typer.Option(min=1, help="Timed runs / frames.")]
BenchWarmup = Annotated[int, typer.Option(min=0, help="Untimed warm-up runs / frames.")]
BenchEngine = Annotated[Path | None, typer.Option(help="TensorRT engine, or an .onnx file for ONNX Runtime.")]
BenchDevice = Annotated[str | None, typer.Option(help="cpu, cuda or cuda:N (default: the backend's).")]
BenchFlip = Annotated[
    bool | None,
    typer.Option("--flip/--no-flip", help="Official flip test in the graph (default: on, or the engine's)."),
]
EndToEnd = Annotated[bool, typer.Option("--e2e/--no-e2e", help="Also run the threaded pipeline.")]
BenchThreads = Annotated[int | None, typer.Option(help="ONNX Runtime intra-op threads.")]
BenchJson = Annotated[Path | None, typer.Option("--json", help="Write the report as JSON here.")]

# --- serve --------------------------------------------------------------------------------------------------

Host = Annotated[
    str,
    typer.Option(help="Address to listen on; anything but 127.0.0.1 is reachable from other machines."),
]
Port = Annotated[int, typer.Option(min=1, max=65535, help="HTTP port.")]
ServeToken = Annotated[
    str | None,
    typer.Option(
        envvar=TOKEN_ENV,
        help="Require 'Authorization: Bearer TOKEN' on /v1/poses and /v1/info.",
        show_default=False,
    ),
]
ServeAddress = Annotated[
    str | None,
    typer.Option(
        help="Join a running Ray cluster (auto, ray://host:10001); default: start a local Ray.",
        show_default=False,
    ),
]
Replicas = Annotated[int, typer.Option(min=1, help="Replicas (each holds one model).")]
MinReplicas = Annotated[
    int | None,
    typer.Option(min=0, help="Autoscale: fewest replicas (with --max-replicas).", show_default=False),
]
MaxReplicas = Annotated[int | None, typer.Option(min=1, help="Autoscale: most replicas.", show_default=False)]
GpusPerReplica = Annotated[
    float | None,
    typer.Option(
        min=0.0,
        help="GPUs each replica reserves (0.5: two replicas per GPU). Default: 1 where the cluster has "
        "GPUs, else 0.",
        show_default=False,
    ),
]
CpusPerReplica = Annotated[float, typer.Option(min=0.0, help="CPUs each replica reserves.")]
ServeMaxBatch = Annotated[
    int, typer.Option(min=1, max=256, help="Most requests one replica runs as one batch.")
]
BatchWaitMs = Annotated[float, typer.Option(min=0.0, max=1000.0, help="How long a batch waits to fill up.")]
MaxRequestMb = Annotated[float, typer.Option(min=0.001, help="Largest request body accepted (413 above).")]

# --- info, cache, weights -------------------------------------------------------------------------------

InfoJson = Annotated[bool, typer.Option("--json", help="Print the same facts as JSON.")]
InfoEngine = Annotated[
    Path | None,
    typer.Argument(
        help="A file from `hhrt build-engine` (.engine, .onnx, .xml): show how it was built and its AP.",
        show_default=False,
    ),
]
CacheWeights = Annotated[
    bool, typer.Option("--weights", help="Also delete the downloaded named weights (they download again).")
]
DryRun = Annotated[bool, typer.Option("--dry-run", help="List what would be deleted; delete nothing.")]
WeightNames = Annotated[
    list[str] | None,
    typer.Argument(help="Named weights to download (default: all of them).", show_default=False),
]
WeightName = Annotated[str, typer.Argument(help="Named weights, e.g. w32_512.")]
