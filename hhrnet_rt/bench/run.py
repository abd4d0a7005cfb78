"""``hhrt bench``: model-only and end-to-end speed of a backend, with the machine described.

* model-only: ``backend.run`` on one fixed random input of the 16:9 frame shape at the input size
  (e.g. 512x960), batch N, after warm-up; FPS = N / mean latency. On CUDA the zero-copy ``run_torch``
  is timed with explicit synchronisation, so host copies are not counted.
* end-to-end: the threaded video pipeline (:func:`hhrnet_rt.video.run_pipeline`) over generated 640x360
  frames with drawing on: capture -> preprocess -> inference -> decode -> draw, per-stage p50/p95.
* transfer: bytes copied device -> host per frame (``Maps.d2h_bytes``): the maps with the host decode
  on a CUDA backend, the candidates with the device decode, 0 with the host decode on a CPU backend;
  measured on one frame, and averaged over the end-to-end run.
* memory: peak host RSS (``getrusage``) and, on CUDA, ``torch.cuda.max_memory_allocated``.

Random weights (the default) are fine for speed -- the decode does a comparable amount of work -- and
the report says so.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import os
import platform
import resource
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from hhrnet_rt.core.errors import InputError, option
from hhrnet_rt.core.names import check_precision
from hhrnet_rt.export.build import export_graph, load_network, preprocess_bgr, synthetic_images
from hhrnet_rt.export.quantize_cpu import quantize_int8_cpu
from hhrnet_rt.runtime.backends import choose_backend


@dataclass(frozen=True)
class BenchConfig:
    """What to measure (see ``hhrt bench --help``)."""

    backend: str = "auto"
    precision: str | None = None  # None: fp32, or the precision of the given engine / .onnx file
    weights: str = "random"
    input_size: int = 512
    batch: int = 1
    frames: int = 100
    warmup: int = 10
    engine: str | None = None
    device: str | None = None
    flip: bool | None = None  # None: the engine file's, else on (official)
    decode_on: str = "auto"  # see PoseEstimator(decode_on=...)
    end_to_end: bool = True
    threads: int | None = None


def _version(dist: str) -> str | None:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return None


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _nvidia_driver() -> str | None:
    try:
        out = subprocess.run(
            ["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"],
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip().splitlines()[0] if out.stdout.strip() else None


def describe_machine() -> dict[str, Any]:
    """CPU model and cores, GPU and driver, and the versions that decide the speed."""
    import torch

    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
    return {
        "cpu": _cpu_model(),
        "cores": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "gpu": gpu,
        "gpu_capability": ".".join(map(str, torch.cuda.get_device_capability(0))) if gpu else None,
        "driver": _nvidia_driver() if gpu else None,
        "cuda": torch.version.cuda,
        "python": platform.python_version(),
        "torch": torch.__version__,
        "onnxruntime": _version("onnxruntime") or _version("onnxruntime-gpu"),
        "tensorrt": _version("tensorrt") if importlib.util.find_spec("tensorrt") else None,
        "numpy": np.__version__,
        "opencv": _version("opencv-python") or _version("opencv-python-headless"),
    }


def _percentiles(seconds: list[float]) -> dict[str, float]:
    a = np.asarray(seconds) * 1000.0
    return {
        "p50_ms": float(np.percentile(a, 50)),
        "p95_ms": float(np.percentile(a, 95)),
        "mean_ms": float(a.mean()),
    }


def frame_shape(input_size: int, frame_hw: tuple[int, int] = (360, 640)) -> tuple[int, int]:
    """(h, w) network input for a frame of ``frame_hw`` (default 16:9) at ``input_size``, as resize_align."""
    from hhrnet_rt.runtime.preprocess import multi_scale_size

    (w, h), _center, _scale = multi_scale_size(frame_hw, input_size)
    return h, w


def _onnx_for(graph: Any, precision: str, input_size: int, folder: Path) -> Path | None:
    """An ONNX file of the requested precision for the ONNX Runtime backend; None for fp32.

    fp32: None, so the backend opens the cached export (:func:`export_cached`, keyed by the weights) as
    it does in ``hhrt video`` -- the bench no longer re-exports on every run. int8: the cached fp32 file
    quantized in the ONNX Runtime CPU layout (:mod:`hhrnet_rt.export.quantize_cpu`; the TensorRT-shaped
    file is slower than fp32 on the CPU) on generated frames, minmax.
    """
    from hhrnet_rt.runtime.backends.onnx_cache import export_cached

    if precision == "fp32":
        return None
    if precision == "fp16":
        return export_graph(
            graph.network, folder / "bench.fp16.onnx", flip=graph.flip, input_size=input_size, fp16=True
        )
    fp32 = export_cached(graph, example_hw=(input_size, input_size))
    images = [preprocess_bgr(img, input_size) for img in synthetic_images(4, (360, 640))]
    out = folder / "bench.int8-cpu.onnx"
    quantize_int8_cpu(fp32, out, calibration_inputs=lambda: images, method="minmax")
    return out


def in_worker_thread(fn: Callable[[], Any]) -> Any:
    """Run ``fn`` in a new thread and return its result (re-raising its exception).

    Inference runs in a worker thread in the pipeline, and torch's CPU speed differs between the main
    thread and others (its intra-op pool is per thread: 8.3 s vs 1.3 s measured for W32 model-only in
    the main thread against the pipeline), so model-only is timed the way the pipeline runs it.
    """
    box: dict[str, Any] = {}

    def target() -> None:
        try:
            box["result"] = fn()
        except BaseException as exc:  # noqa: BLE001 - handed to the caller's thread
            box["error"] = exc

    worker = threading.Thread(target=target, name="hhrt-bench-model", daemon=True)
    worker.start()
    worker.join()
    if "error" in box:
        raise box["error"]
    return box["result"]


def _time_model(backend: Any, x: np.ndarray, warmup: int, frames: int) -> list[float]:
    """Latencies of ``frames`` calls after ``warmup``; zero-copy + synchronised on CUDA."""
    run: Callable[[], Any]
    sync: Callable[[], None] = lambda: None  # noqa: E731
    if backend.tensor_native and str(backend.device).startswith("cuda"):
        import torch

        xt = torch.from_numpy(x).to(backend.device)
        run, sync = (lambda: backend.run_torch(xt)), torch.cuda.synchronize
    else:
        run = lambda: backend.run(x)  # noqa: E731
    for _ in range(warmup):
        run()
    sync()
    times = []
    for _ in range(frames):
        t0 = time.perf_counter()
        run()
        sync()
        times.append(time.perf_counter() - t0)
    return times


def _transfer_per_frame(estimator: Any, frame: np.ndarray) -> int:
    """Bytes one frame copies device -> host through prepare -> infer -> decode."""
    prepared = estimator.prepare(frame)
    maps = estimator.infer(prepared)
    estimator.decode(maps, prepared)
    return int(maps.d2h_bytes)


def synthetic_frames(n: int, size: tuple[int, int] = (360, 640), seed: int = 0) -> list[np.ndarray]:
    """A generated 'video': a smooth background with moving bright blobs, BGR uint8."""
    import cv2

    background = synthetic_images(1, size, seed)[0]
    frames = []
    for i in range(n):
        frame = background.copy()
        for k in range(3):
            x = int((0.2 + 0.3 * k) * size[1] + 40 * np.sin(i / 7 + k))
            cv2.ellipse(frame, (x, size[0] // 2), (25, 70), 0, 0, 360, (200, 180, 160), -1)
        frames.append(frame)
    return frames


def run_bench(
    cfg: BenchConfig,
    on_step: Callable[[str], None] = lambda msg: None,
    *,
    on_estimator: Callable[[Any], None] | None = None,
) -> dict[str, Any]:
    """Measure; returns the JSON-ready report (config, machine, backend, model_only, end_to_end, memory).

    ``on_estimator`` is called with the built PoseEstimator before anything is timed (the backend
    comparison takes its outputs there for the agreement figures).
    """
    import torch

    from hhrnet_rt.runtime.estimator import PoseEstimator

    check_precision(cfg.precision)
    if cfg.batch < 1 or cfg.frames < 1 or cfg.warmup < 0:
        raise InputError(f"{option('batch')} and {option('frames')} must be >= 1 and {option('warmup')} >= 0")
    name, device, reason = choose_backend(cfg.backend, engine=cfg.engine, device=cfg.device)
    on_step(f"backend: {name} on {device} ({reason})")
    # Checked here too (the estimator would refuse it as well) so the error comes before the model load.
    if name == "torch" and device == "cpu" and cfg.precision not in (None, "fp32"):
        raise InputError(
            f"torch on the CPU runs fp32 only; for {cfg.precision} on the CPU use {option('backend', 'onnxruntime')}"
        )
    if name == "tensorrt" and cfg.engine is None:
        raise InputError(
            f"{option('backend', 'tensorrt')} needs {option('engine', 'NAME.engine')} (build it with `hhrt build-engine`)"
        )

    on_step(f"weights: {cfg.weights}")
    network = load_network(cfg.weights)
    with tempfile.TemporaryDirectory(prefix="hhrt-bench-") as tmp:
        engine = cfg.engine
        if name == "onnxruntime" and engine is None:
            from hhrnet_rt.model.graph import PoseGraph

            precision = cfg.precision or "fp32"
            on_step(f"exporting a {precision} ONNX graph for ONNX Runtime")
            graph = PoseGraph(network, flip=cfg.flip is not False)
            made = _onnx_for(graph, precision, cfg.input_size, Path(tmp))
            engine = str(made) if made is not None else None
        estimator = PoseEstimator(
            network
            if engine is None
            else None,  # a file carries its own weights (hhrnet_rt.artifacts.engine_settings)
            input_size=cfg.input_size,
            flip=cfg.flip,
            backend=name,
            device=device,
            engine=engine,
            precision=cfg.precision,
            decode_on=cfg.decode_on,
            onnx_threads=cfg.threads,
        )
        backend = estimator.backend
        if on_estimator is not None:
            on_estimator(estimator)
        if torch.cuda.is_available():
            torch.cuda.reset_peak_memory_stats()

        h, w = frame_shape(cfg.input_size)
        x = np.random.default_rng(0).standard_normal((cfg.batch, 3, h, w)).astype(np.float32)
        on_step(f"model-only: {cfg.warmup} warm-up + {cfg.frames} timed runs of {tuple(x.shape)}")
        times = in_worker_thread(lambda: _time_model(backend, x, cfg.warmup, cfg.frames))
        stats = _percentiles(times)
        model_only = {"input_shape": list(x.shape), **stats, "fps": cfg.batch / (stats["mean_ms"] / 1000.0)}

        frames = synthetic_frames(cfg.frames + cfg.warmup if cfg.end_to_end else 1)
        transfer = {
            "decode_on": estimator.decode_on,
            "d2h_bytes_per_frame": _transfer_per_frame(estimator, frames[0]),
            "frame_hw": list(frames[0].shape[:2]),
        }
        end_to_end = None
        if cfg.end_to_end:
            from hhrnet_rt.video import ArraySource, run_pipeline

            for frame in frames[: cfg.warmup]:
                estimator.predict(frame)
            on_step(f"end-to-end: threaded pipeline over {cfg.frames} generated 640x360 frames")
            result = run_pipeline(ArraySource(frames[cfg.warmup :]), estimator, (), draw=True)
            end_to_end = {
                "fps": result.fps,
                "frames": result.frames_written,
                "wall_s": result.wall_s,
                "latency": {"p50_ms": result.latency.p50_ms, "p95_ms": result.latency.p95_ms},
                "stages": {k: {"p50_ms": v.p50_ms, "p95_ms": v.p95_ms} for k, v in result.stages.items()},
                "d2h_bytes_per_frame": {"mean": result.d2h.mean_bytes, "max": result.d2h.max_bytes},
            }
    memory = {"peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0}  # Linux: KiB
    if torch.cuda.is_available():
        memory["gpu_max_allocated_mib"] = torch.cuda.max_memory_allocated() / 2**20
    describe = backend.describe()
    return {
        "config": asdict(cfg),
        "weights_note": "random weights (speed only; outputs are meaningless)"
        if cfg.weights == "random"
        else "",
        "backend": {
            "name": name,
            "device": device,
            "reason": reason,
            "precision": backend.precision,
            **describe,
        },
        "machine": describe_machine(),
        "model_only": model_only,
        "transfer": transfer,
        "end_to_end": end_to_end,
        "memory": memory,
        "date_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
