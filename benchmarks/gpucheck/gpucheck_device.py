"""GPU-check phases of issue #18: what a shape change costs, whether the GPU warp matches OpenCV, whether
memory stays flat, whether decode overlaps inference, and whether the compute sanitizer sees a stream race.

Each phase writes ``run.summary[<name>]`` and logs a line; on the CPU (``--dry-run``) they run the same
code on tiny sizes (what only a GPU can show is recorded as ``"needs CUDA"``). The tiny golden model is
used throughout: these phases measure the runtime around the network (graphs, streams, transfers), not
the network.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any


def _estimator(weights: Path, device: str, **kw: Any) -> Any:
    from hhrnet_rt.runtime.estimator import PoseEstimator

    return PoseEstimator(weights, backend="torch", device=device, **kw)


def _frames(n: int, hw: tuple[int, int], seed: int = 0) -> list[Any]:
    import numpy as np

    rng = np.random.default_rng(seed)
    h, w = hw
    small = rng.integers(0, 256, (n, h // 8 + 1, w // 8 + 1, 3), np.uint8)
    return [np.ascontiguousarray(f) for f in np.repeat(np.repeat(small, 8, 1), 8, 2)[:, :h, :w]]


def _ms(fn: Any, repeat: int) -> float:
    """Median wall time of ``fn()`` in ms; each call ends with its poses on the host (decode included)."""
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t) * 1e3)
    return round(statistics.median(times), 3)


def phase_shapes(run: Any, golden: Path, device: str) -> None:
    """First call vs steady state per shape: batch 1/4/8, two frame sizes, multi-scale, then revisited."""
    dry = device == "cpu"
    size, repeat = (64, 2) if dry else (256, 10)
    sizes = [(48, 80), (64, 48)] if dry else [(480, 640), (720, 1280)]
    res: dict[str, Any] = {"input_size": size, "cases": {}}
    run.summary["shape_changes"] = res
    est = _estimator(golden / "tiny_model.npz", device, input_size=size)
    ms_est = _estimator(golden / "tiny_model.npz", device, input_size=size, scales=(0.5, 1.0, 2.0))
    cases = [(f"b{n}_{h}x{w}", est, _frames(n, (h, w))) for h, w in sizes for n in (1, 4, 8)]
    cases.append((f"multiscale_{sizes[0][0]}x{sizes[0][1]}", ms_est, _frames(1, sizes[0])))
    for label, e, frames in cases:
        first = _ms(lambda e=e, f=frames: e.predict_batch(f), 1)
        steady = _ms(lambda e=e, f=frames: e.predict_batch(f), repeat)
        res["cases"][label] = {
            "first_ms": first,
            "steady_ms": steady,
            "per_frame_ms": round(steady / len(frames), 3),
        }
        run.log(f"shapes {label}: {res['cases'][label]}")
    # Back to the first shapes after all the others: kept graphs replay at steady-state speed.
    label, e, frames = cases[0]
    res["revisit_" + label + "_ms"] = _ms(lambda: e.predict_batch(frames), repeat)
    res["graphs_kept"] = est.describe().get("backend_details", {}).get("cuda_graph_shapes")
    run.log(f"shapes revisit {label}: {res['revisit_' + label + '_ms']} ms, graphs kept {res['graphs_kept']}")


def phase_warp(run: Any, device: str) -> None:
    """The GPU preprocessing warp against cv2.warpAffine (the CPU path): levels apart, share differing."""
    import cv2
    import numpy as np

    from hhrnet_rt.decode.device_io import to_host
    from hhrnet_rt.runtime.preprocess import resize_align
    from hhrnet_rt.runtime.warp_torch import sampling_grid, warp_affine_torch

    res: dict[str, Any] = {}
    run.summary["warp_vs_opencv"] = res
    rng = np.random.default_rng(0)
    small = rng.integers(0, 256, (60, 80, 3), np.uint8)
    images = {
        "blocky_480x640": cv2.resize(small, (640, 480), interpolation=cv2.INTER_NEAREST),
        "smooth_480x640": cv2.resize(small, (640, 480), interpolation=cv2.INTER_CUBIC),
        "noise_720x1280": rng.integers(0, 256, (720, 1280, 3), np.uint8),
    }
    import torch

    for label, image in images.items():
        for size in (256, 512):
            resized, affine = resize_align(image, size)
            grid = sampling_grid(affine.forward, image.shape[:2], affine.size, device)
            frame = torch.from_numpy(image).to(device)
            warped = warp_affine_torch(frame, affine.forward, affine.size, grid=grid)[0].permute(1, 2, 0)
            diff = np.abs(to_host(warped.contiguous()) - resized.astype(np.float32))
            row = {"max_levels": float(diff.max()), "share_differing": round(float((diff > 0).mean()), 5)}
            res[f"{label}@{size}"] = row
            run.log(f"warp {label}@{size}: {row}")
    res["bound"] = "max 1 level, < 5% differing (tests/test_torch_cuda.py on the CPU)"


def phase_memory(run: Any, golden: Path, device: str, frames: int) -> None:
    """Allocated device memory over ``frames`` frames of one size: it must stop growing after warm-up."""
    import torch

    res: dict[str, Any] = {"frames": frames}
    run.summary["memory_over_frames"] = res
    if not device.startswith("cuda"):
        res["note"] = "needs CUDA (torch.cuda memory statistics)"
        return
    est = _estimator(golden / "tiny_model.npz", device, input_size=512)
    pictures = _frames(8, (480, 640))
    est.warmup((480, 640))
    torch.cuda.synchronize()
    torch.cuda.reset_peak_memory_stats()
    samples = []
    for i in range(frames):
        est.predict(pictures[i % len(pictures)])
        if i % max(1, frames // 10) == 0:
            torch.cuda.synchronize()
            samples.append(torch.cuda.memory_allocated() // (1 << 20))
    res.update(allocated_mib=samples, peak_mib=torch.cuda.max_memory_allocated() // (1 << 20))
    res["growth_mib"] = samples[-1] - samples[1] if len(samples) > 1 else None
    run.log(f"memory: {res}")


def phase_overlap(run: Any, golden: Path, device: str, out: Path) -> None:
    """A profiler trace of the threaded pipeline: per CUDA stream, its kernels' busy time, and how much of
    the decode streams' kernel time falls inside inference kernels' (> 0: decode overlaps inference)."""
    from torch.profiler import ProfilerActivity, profile

    from hhrnet_rt.video.pipeline import run_pipeline
    from hhrnet_rt.video.sources import ArraySource

    res: dict[str, Any] = {}
    run.summary["decode_overlap"] = res
    cuda = device.startswith("cuda")
    est = _estimator(golden / "tiny_model.npz", device, input_size=64 if not cuda else 512)
    hw = (48, 80) if not cuda else (480, 640)
    est.warmup(hw)
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if cuda else [])
    with profile(activities=activities) as prof:
        run_pipeline(ArraySource(_frames(8 if not cuda else 60, hw)), est, draw=False)
    trace = out / "pipeline_trace.json"
    prof.export_chrome_trace(str(trace))
    if not cuda:
        res["note"] = f"needs CUDA (kernel streams); CPU trace written to {trace.name}"
        return
    res.update(kernel_overlap(trace), trace=trace.name)
    run.log(f"overlap: {res}")


def kernel_overlap(trace: Path) -> dict[str, Any]:
    """From a chrome trace (torch.profiler's export): kernels and busy ms per CUDA stream, and the ms of
    the other streams' kernels that run while the busiest stream (the network's) has a kernel running."""
    import json

    events = json.loads(trace.read_text()).get("traceEvents", [])
    by_stream: dict[int, list[tuple[float, float]]] = {}
    for e in events:
        if e.get("cat") == "kernel" and "dur" in e:
            stream = int(e.get("args", {}).get("stream", -1))
            by_stream.setdefault(stream, []).append((float(e["ts"]), float(e["ts"]) + float(e["dur"])))
    if not by_stream:
        return {"note": "no CUDA kernels in the trace"}
    busy = {s: sum(b - a for a, b in v) for s, v in by_stream.items()}
    main = max(busy, key=lambda s: busy[s])
    spans = sorted(by_stream[main])
    overlap = 0.0
    for s, kernels in by_stream.items():
        if s != main:
            for a, b in kernels:
                overlap += sum(max(0.0, min(b, d) - max(a, c)) for c, d in spans if c < b and d > a)
    return {
        "streams": {s: {"kernels": len(v), "busy_ms": round(busy[s] / 1e3, 3)} for s, v in by_stream.items()},
        "inference_stream": main,
        "other_streams_overlap_ms": round(overlap / 1e3, 3),
    }


def phase_sanitizer(run: Any, golden: Path, device: str, timeout_s: float) -> None:
    """The threaded pipeline under TORCH_CUDA_SANITIZER=1 (CSAN): any stream race it reports."""
    res: dict[str, Any] = {}
    run.summary["stream_sanitizer"] = res
    if not device.startswith("cuda"):
        res["note"] = "needs CUDA (the CUDA sanitizer hooks CUDA calls)"
        return
    code = (
        "import sys, numpy as np; sys.path.insert(0, sys.argv[2]);"
        "from gpucheck_device import _estimator, _frames;"
        "from hhrnet_rt.video.pipeline import run_pipeline; from hhrnet_rt.video.sources import ArraySource;"
        "est = _estimator(__import__('pathlib').Path(sys.argv[1]), 'cuda:0', input_size=256);"
        "r = run_pipeline(ArraySource(_frames(12, (240, 320))), est, draw=False, batch=2, decode_threads=2);"
        "print('frames', r.frames_processed)"
    )
    env = dict(os.environ, TORCH_CUDA_SANITIZER="1")
    here = str(Path(__file__).resolve().parent)
    try:
        p = subprocess.run([sys.executable, "-c", code, str(golden / "tiny_model.npz"), here], env=env,
                           capture_output=True, text=True, timeout=timeout_s)  # fmt: skip
        text, rc = p.stdout + p.stderr, p.returncode
    except subprocess.TimeoutExpired:
        text, rc = "", 124
    res.update(rc=rc, race_reported="CSAN detected a possible data race" in text, tail=text[-1500:])
    run.log(f"sanitizer: rc={rc} race_reported={res['race_reported']}")
