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

``tensorrt`` is imported inside the functions (:func:`~hhrnet_rt.runtime.backends.tensorrt_backend.import_tensorrt`);
the shape profile is plain Python (:mod:`hhrnet_rt.artifacts.shape_profile`), so the CLI can check
``--shapes`` on machines without TensorRT.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from hhrnet_rt.artifacts.shape_profile import ShapeProfile
from hhrnet_rt.artifacts.sidecar import INPUT_NAME
from hhrnet_rt.core.errors import BackendUnavailableError, option
from hhrnet_rt.export.deconv_report import engine_deconvolutions
from hhrnet_rt.runtime.backends.tensorrt_backend import deserialize_engine, import_tensorrt

log = logging.getLogger(__name__)

DEFAULT_WORKSPACE_GIB = 4.0


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
    major, minor = torch.cuda.get_device_capability(index)
    return torch.cuda.get_device_name(index), (major, minor)


def build_engine(
    onnx_path: str | Path,
    engine_path: str | Path,
    profile: ShapeProfile,
    *,
    input_name: str = INPUT_NAME,
    workspace_gib: float = DEFAULT_WORKSPACE_GIB,
    timing_cache: str | Path | None = None,
    progress: Any = None,
    deconv_names: Sequence[str] = (),
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
        deconv_names: ONNX ConvTranspose node names whose engine precision to report (int8 builds).

    Returns:
        The ``tensorrt`` part of the sidecar: version, GPU, I/O tensors and, with ``deconv_names``,
        ``deconvolutions`` (:func:`~hhrnet_rt.export.deconv_report.inspector_deconvolutions`).

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
    # Layer formats in the engine inspector (the per-deconvolution int8 report); names and formats only,
    # no effect on the kernels chosen.
    config.profiling_verbosity = trt.ProfilingVerbosity.DETAILED
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
    # A damaged or foreign cache file is refused (set_timing_cache returns False): build without its
    # timings (slower, same engine; the file is rewritten after) rather than fail or mix timings.
    for data in (cache_bytes, b"") if cache_bytes else (b"",):
        cache = config.create_timing_cache(data)
        if cache is not None and config.set_timing_cache(cache, ignore_mismatch=False):
            break
        if data:
            log.warning("TensorRT refused the timing cache %s; building without it", cache_path)
    else:
        raise BackendUnavailableError(
            "TensorRT could not create an empty timing cache; its log above says why"
        )
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

    engine = deserialize_engine(trt.Runtime(logger), bytes(serialized), engine_path)
    io = describe_io(trt, engine)
    for row in io:
        log.info("engine %-6s %s %s %s", row["mode"], row["name"], row["dtype"], row["shape"])
    deconvs = engine_deconvolutions(trt, engine, deconv_names) if deconv_names else None
    return {
        "version": trt.__version__,
        "gpu_name": gpu_name,
        "compute_capability": list(capability),
        "engine_file": engine_path.name,
        "workspace_gib": workspace_gib,
        **precision_facts,
        "io": io,
        **({"deconvolutions": deconvs} if deconvs is not None else {}),
    }
