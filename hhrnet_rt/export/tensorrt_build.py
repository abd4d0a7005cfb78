"""Build a strongly typed TensorRT engine from a precision-baked ONNX file.

TensorRT 10.12+ / 11 only: the network is created with ``NetworkDefinitionCreationFlag.STRONGLY_TYPED``,
so every layer runs in the type the ONNX file gives it (fp16 graph -> fp16 kernels, Q/DQ -> int8
kernels). There are no FP16/INT8 builder flags and no calibrator classes here on purpose: TensorRT 11
removed them, and keeping precision in the ONNX file means the CPU tests (ONNX Runtime) check the very
graph the engine is built from.

The TF32 builder flag, which TensorRT turns on by default, is cleared for every build: it lets "fp32"
convolutions round their inputs to a 10-bit mantissa, so an fp32 engine would not be the fp32 its sidecar
says, and the layers an fp16 or int8 file keeps in fp32 on purpose (the flip/aggregation tail, the tags)
would not be either. (TF32 is the one precision flag TensorRT 11 kept.)

``tensorrt`` is imported inside the functions; :func:`parse_shapes` and :class:`ShapeProfile` are plain
Python so the CLI can check ``--shapes`` on machines without TensorRT.
"""

from __future__ import annotations

import logging
import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hhrnet_rt.errors import (
    TENSORRT_INSTALL_HINT,
    BackendUnavailableError,
    InputError,
    TensorRTUnavailableError,
    option,
)
from hhrnet_rt.export.sidecar import INPUT_NAME

log = logging.getLogger(__name__)

# The network downsamples by 32 and resize_align pads the long side to a multiple of 64; profile sizes
# that are not multiples of 64 could never be fed, so they are refused rather than silently unused.
SIZE_MULTIPLE = 64
DEFAULT_WORKSPACE_GIB = 4.0


@dataclass(frozen=True)
class ShapeProfile:
    """Min/opt/max input shapes ``(N, 3, H, W)`` of the engine's single optimisation profile."""

    min: tuple[int, int, int, int]
    opt: tuple[int, int, int, int]
    max: tuple[int, int, int, int]

    def as_dict(self) -> dict[str, list[int]]:
        return {"min": list(self.min), "opt": list(self.opt), "max": list(self.max)}

    def contains(self, shape: tuple[int, ...]) -> bool:
        return all(lo <= s <= hi for lo, s, hi in zip(self.min, shape, self.max, strict=True))


def profile_from_dict(data: dict[str, list[int]]) -> ShapeProfile:
    """Inverse of :meth:`ShapeProfile.as_dict` (the sidecar stores profiles as lists)."""
    return ShapeProfile(*(tuple(int(v) for v in data[k]) for k in ("min", "opt", "max")))  # type: ignore[arg-type]


def _round_up(value: float, multiple: int = SIZE_MULTIPLE) -> int:
    return int(math.ceil(value / multiple) * multiple)


def default_profile(input_size: int, batch: int = 1) -> ShapeProfile:
    """Profile for frames resized by ``resize_align`` at ``input_size``.

    Short side = input size; ``opt`` is a 16:9 landscape frame (the common camera shape); ``max`` allows
    a 2:1 frame either way round, which covers phone-portrait video too.
    """
    s = input_size
    return ShapeProfile(
        min=(1, 3, s, s),
        opt=(batch, 3, s, _round_up(s * 16 / 9)),
        max=(batch, 3, 2 * s, 2 * s),
    )


def resolve_profile(input_size: int, profile: ShapeProfile | None, max_batch: int | None) -> ShapeProfile:
    """The build's profile: ``profile`` as given, else :func:`default_profile` for up to ``max_batch`` frames.

    Raises:
        InputError: both are given (the batch range is then part of ``profile``: NxHxW), or ``max_batch``
            is not a positive integer.
    """
    if max_batch is not None:
        if isinstance(max_batch, bool) or not isinstance(max_batch, int) or max_batch < 1:
            raise InputError(f"{option('max_batch')} must be a positive integer, got {max_batch!r}")
        if profile is not None:
            raise InputError(
                f"give {option('max_batch')} or {option('shapes')}, not both: with {option('shapes')} "
                "write the batch range as NxHxW (e.g. 1x512x512:8x512x960:8x1024x1024)"
            )
    return profile or default_profile(input_size, max_batch or 1)


def _parse_one(text: str, what: str) -> tuple[int, int, int]:
    parts = text.lower().split("x")
    try:
        nums = [int(p) for p in parts]
    except ValueError:
        raise InputError(f"{option('shapes')} {what} {text!r} is not S, HxW or NxHxW with integers") from None
    if len(nums) == 1:
        return 1, nums[0], nums[0]
    if len(nums) == 2:
        return 1, nums[0], nums[1]
    if len(nums) == 3:
        return nums[0], nums[1], nums[2]
    raise InputError(f"{option('shapes')} {what} {text!r} is not S, HxW or NxHxW")


def parse_shapes(spec: str) -> ShapeProfile:
    """Parse ``MIN:OPT:MAX``, each ``S`` (square), ``HxW`` or ``NxHxW``.

    Example:
        >>> parse_shapes("512:512x960:1024").opt
        (1, 3, 512, 960)
    """
    fields = spec.split(":")
    if len(fields) != 3:
        raise InputError(f"{option('shapes')} must be MIN:OPT:MAX (e.g. 512:512x960:1024x1024), got {spec!r}")
    shapes = [_parse_one(f.strip(), w) for f, w in zip(fields, ("MIN", "OPT", "MAX"), strict=True)]
    for (n, h, w), what in zip(shapes, ("MIN", "OPT", "MAX"), strict=True):
        if n < 1 or h < SIZE_MULTIPLE or w < SIZE_MULTIPLE:
            raise InputError(f"{option('shapes')} {what} {n}x{h}x{w}: batch must be >= 1 and H, W >= {SIZE_MULTIPLE}")
        if h % SIZE_MULTIPLE or w % SIZE_MULTIPLE:
            raise InputError(
                f"{option('shapes')} {what} {h}x{w}: H and W must be multiples of {SIZE_MULTIPLE} (the preprocessing "
                f"pads to multiples of {SIZE_MULTIPLE}), e.g. {_round_up(h)}x{_round_up(w)}"
            )
    lo, mid, hi = shapes
    if not all(a <= b <= c for a, b, c in zip(lo, mid, hi, strict=True)):
        raise InputError(f"{option('shapes')} needs MIN <= OPT <= MAX in every dimension, got {spec!r}")
    return ShapeProfile(*((n, 3, h, w) for n, h, w in shapes))


def import_tensorrt(onnx_path: Path | None = None) -> Any:
    """Import ``tensorrt`` or raise :class:`TensorRTUnavailableError` saying how to get it."""
    try:
        import tensorrt as trt
    except ImportError as exc:
        ready = f" The ONNX file is ready: {onnx_path}." if onnx_path is not None else ""
        raise TensorRTUnavailableError(
            f"TensorRT is not installed ({exc}).{ready} To build an engine, run on a machine with an NVIDIA "
            f"GPU: {TENSORRT_INSTALL_HINT}; then run `hhrt build-engine` again."
        ) from None
    return trt


def _make_progress_monitor(trt: Any, progress: Any) -> Any:
    """An ``IProgressMonitor`` that mirrors TensorRT's build phases as tasks of a Rich ``Progress``."""

    class RichProgressMonitor(trt.IProgressMonitor):
        def __init__(self) -> None:
            # Trampoline class: the parent __init__ must run or TensorRT crashes calling back into it.
            trt.IProgressMonitor.__init__(self)
            self._tasks: dict[str, Any] = {}

        def phase_start(self, phase_name: str, parent_phase: str | None, num_steps: int) -> None:
            indent = "  " if parent_phase else ""
            self._tasks[phase_name] = progress.add_task(f"{indent}{phase_name}", total=max(num_steps, 1))

        def step_complete(self, phase_name: str, step: int) -> bool:
            task = self._tasks.get(phase_name)
            if task is not None:
                progress.update(task, completed=step + 1)
            return True  # False would cancel the build

        def phase_finish(self, phase_name: str) -> None:
            task = self._tasks.pop(phase_name, None)
            if task is not None:
                progress.remove_task(task)

    return RichProgressMonitor()


def describe_io(trt: Any, engine: Any) -> list[dict[str, Any]]:
    """Name, mode (input/output), dtype and (symbolic) shape of every I/O tensor of an engine."""
    rows = []
    for i in range(engine.num_io_tensors):
        name = engine.get_tensor_name(i)
        mode = engine.get_tensor_mode(name)
        rows.append(
            {
                "name": name,
                "mode": "input" if mode == trt.TensorIOMode.INPUT else "output",
                "dtype": str(engine.get_tensor_dtype(name)).rsplit(".", 1)[-1].lower(),
                "shape": list(engine.get_tensor_shape(name)),
            }
        )
    return rows


def configure_precision(trt: Any, config: Any) -> dict[str, Any]:
    """Clear TF32 on a builder config (see the module docstring); returns the facts for the sidecar."""
    tf32 = getattr(trt.BuilderFlag, "TF32", None)
    if tf32 is not None:
        config.clear_flag(tf32)
        if config.get_flag(tf32):  # a TensorRT that silently ignored the request would break the promise
            raise BackendUnavailableError(
                "TensorRT kept the TF32 builder flag set; fp32 layers would run in TF32"
            )
    return {"tf32": False}


def gpu_facts() -> tuple[str, tuple[int, int]]:
    """Name and compute capability of the current CUDA device (through torch: no pycuda)."""
    import torch

    if not torch.cuda.is_available():
        raise BackendUnavailableError(
            "TensorRT is installed but torch sees no CUDA GPU; engines can only be built and run on an "
            f"NVIDIA GPU. Use the ONNX file with {option('backend', 'onnxruntime')} instead."
        )
    index = torch.cuda.current_device()
    return torch.cuda.get_device_name(index), tuple(torch.cuda.get_device_capability(index))


def build_engine(
    onnx_path: str | Path,
    engine_path: str | Path,
    profile: ShapeProfile,
    *,
    input_name: str = INPUT_NAME,
    workspace_gib: float = DEFAULT_WORKSPACE_GIB,
    timing_cache: str | Path | None = None,
    progress: Any = None,
) -> dict[str, Any]:
    """Parse ``onnx_path`` into a strongly typed network and write the serialized engine.

    Args:
        onnx_path: fp32, fp16-baked or Q/DQ ONNX file (precision is taken from the file).
        engine_path: where to write the serialized engine.
        profile: the single optimisation profile for ``input_name``.
        workspace_gib: builder workspace memory-pool limit.
        timing_cache: kernel timings file (speeds up rebuilds); the GPU and TensorRT version are added to
            its name, e.g. ``engines/timing-NVIDIA_H200-sm90-trt10_12_0.cache``.
        progress: a ``rich.progress.Progress`` to show build phases in, or ``None``.

    Returns:
        The ``tensorrt`` part of the sidecar: version, GPU, I/O tensors.

    Raises:
        TensorRTUnavailableError: ``tensorrt`` is not importable.
        BackendUnavailableError: the parser or the builder failed (every parser error is in the message).
    """
    onnx_path, engine_path = Path(onnx_path), Path(engine_path)
    trt = import_tensorrt(onnx_path)
    gpu_name, capability = gpu_facts()
    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    network = builder.create_network(1 << int(trt.NetworkDefinitionCreationFlag.STRONGLY_TYPED))
    parser = trt.OnnxParser(network, logger)
    # parse_from_file (not parse(bytes)) so ONNX external-data files next to the model are found.
    if not parser.parse_from_file(str(onnx_path)):
        errors = [str(parser.get_error(i)) for i in range(parser.num_errors)]
        raise BackendUnavailableError(
            f"TensorRT's ONNX parser rejected {onnx_path} ({len(errors)} error(s)):\n  " + "\n  ".join(errors)
        )
    for i in range(network.num_inputs):
        t = network.get_input(i)
        log.info("network input  %s %s %s", t.name, tuple(t.shape), t.dtype)
    for i in range(network.num_outputs):
        t = network.get_output(i)
        log.info("network output %s %s %s", t.name, tuple(t.shape), t.dtype)

    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, int(workspace_gib * (1 << 30)))
    precision_facts = configure_precision(trt, config)
    opt_profile = builder.create_optimization_profile()
    opt_profile.set_shape(input_name, profile.min, profile.opt, profile.max)
    config.add_optimization_profile(opt_profile)
    cache_path = None
    if timing_cache is not None:
        # One cache file per GPU model and TensorRT version: NVIDIA warns that timings from another
        # device "may lead to functional/performance bugs", so mismatches are never mixed in.
        tag = re.sub(
            r"[^A-Za-z0-9]+", "_", f"{gpu_name}-sm{capability[0]}{capability[1]}-trt{trt.__version__}"
        )
        timing_cache = Path(timing_cache)
        cache_path = timing_cache.with_name(f"{timing_cache.stem}-{tag}{timing_cache.suffix}")
    cache_bytes = cache_path.read_bytes() if cache_path is not None and cache_path.is_file() else b""
    cache = config.create_timing_cache(cache_bytes)
    config.set_timing_cache(cache, ignore_mismatch=False)
    if progress is not None:
        config.progress_monitor = _make_progress_monitor(trt, progress)

    serialized = builder.build_serialized_network(network, config)
    if serialized is None:
        raise BackendUnavailableError(
            f"TensorRT could not build an engine from {onnx_path}; the TensorRT log above says why "
            "(often: workspace too small for the max shape, or an unsupported layer)."
        )
    engine_path.parent.mkdir(parents=True, exist_ok=True)
    engine_path.write_bytes(bytes(serialized))
    if cache_path is not None:
        cache_path.parent.mkdir(parents=True, exist_ok=True)
        cache_path.write_bytes(bytes(config.get_timing_cache().serialize()))

    from hhrnet_rt.backends.tensorrt_backend import deserialize_engine  # lazy: that module imports this one

    engine = deserialize_engine(trt.Runtime(logger), bytes(serialized), engine_path)
    io = describe_io(trt, engine)
    for row in io:
        log.info("engine %-6s %s %s %s", row["mode"], row["name"], row["dtype"], row["shape"])
    return {
        "version": trt.__version__,
        "gpu_name": gpu_name,
        "compute_capability": list(capability),
        "engine_file": engine_path.name,
        "workspace_gib": workspace_gib,
        **precision_facts,
        "io": io,
    }
