#!/usr/bin/env python3
"""One-shot GPU measurement of hhrnet-rt on a GPU machine (H200, torch+CUDA, no TensorRT).

Run from the repository root (the project need not be installed: PYTHONPATH=$PWD is enough):

    python3 .gpucheck/gpu_check.py --out "$OUT" --budget 450
    (or benchmarks/gpucheck/gpu_check.py; gpucheck_targets.py and gpucheck_device.py must sit beside it)

Phases (each guarded: a failure is recorded and the next phase runs; every phase rewrites
summary.json / summary.md under --out, so a run cut short still leaves its numbers):

  env     GPU, driver, torch/cuDNN and package versions, nvidia-smi clocks.
  tests   the project's GPU-marked tests (`pytest -m gpu` on the files that carry the mark), among
          them the 4-thread backend test (tests/test_backend_threads.py).
  decode_equal  golden pipeline image through the tiny model on torch CUDA fp32: the maps of ONE
          network run decoded on the device and on the host must give exactly equal poses.
  target_model  model-only batch 1 fp16 (flip) at the 640x480 frame's input 512x704 (target <= 2 ms).
  e2e     one 640x480 stream, W32-512 random, torch CUDA fp16, flip: sequential prepare/infer/decode
          loop and the threaded pipeline, decode on the device and on the host (target >= 300 FPS).
  d2h_bytes  Maps.d2h_bytes per 640x480 frame after decode, device vs host decode.
  model   W32-512 random-init PoseGraph (flip) model-only latency at 512x960: fp32 (IEEE, no TF32)
          vs fp16, CUDA graphs on/off, channels_last on (and off for two configs), batch 1 and 8;
          plus correctness checks (graph replay == eager, fp16 vs fp32 error, non-finite values,
          activation ranges, replay from another thread on a non-default stream, inference-tensor input).
  d2h     device->host copy of the projected maps (pageable vs pinned) and
          the Numba decode on synthetic people maps and on the random network's real output.
  bench   `hhrt bench --backend torch --device cuda --precision fp16 [--decode-on device]`
          (model-only + threaded e2e, bytes device->host per frame), then fp32 if time is left.
  video   `hhrt video` on a generated 640x480 clip, torch CUDA fp16; FPS and per-stage p50 parsed
          from its summary table.

  shapes, warp, memory, overlap, sanitizer  issue #18 (gpucheck_device.py): shape-change timings,
          the GPU warp against OpenCV, memory over 300 frames, decode/inference overlap from a
          profiler trace, a TORCH_CUDA_SANITIZER=1 pipeline run.

--dry-run runs the same plumbing on the CPU with tiny sizes (no CUDA needed), to check the script;
tests/test_gpucheck_dry_run.py runs a fast variant in the suite. summary["targets"] says which issue-8
targets were measured and met.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import time
import traceback
from pathlib import Path

REPO = Path.cwd()
HERE = Path(__file__).resolve().parent
T0 = time.monotonic()
sys.path.insert(0, str(HERE))  # gpucheck_targets.py sits beside this file

import gpucheck_device as device_phases  # noqa: E402
import gpucheck_targets as targets  # noqa: E402


# --------------------------------------------------------------------------------------------- utils
class Run:
    def __init__(self, out: Path, budget: float, dry: bool) -> None:
        self.out, self.budget, self.dry = out, budget, dry
        self.summary: dict = {
            "meta": {
                "started_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                "dry_run": dry,
                "budget_s": budget,
                "repo": str(REPO),
            },
            "phases": {},
            "errors": [],
        }

    def left(self) -> float:
        return self.budget - (time.monotonic() - T0)

    def log(self, msg: str) -> None:
        print(f"[{time.monotonic() - T0:6.1f}s] {msg}", flush=True)

    def save(self) -> None:
        self.summary["meta"]["elapsed_s"] = round(time.monotonic() - T0, 1)
        (self.out / "summary.json").write_text(json.dumps(self.summary, indent=2, default=str) + "\n")
        (self.out / "summary.md").write_text(markdown(self.summary))

    def phase(self, name: str, fn, min_left: float) -> None:
        if self.left() < min_left:
            self.log(f"SKIP {name}: {self.left():.0f}s left < {min_left:.0f}s")
            self.summary["phases"][name] = {"skipped": f"{self.left():.0f}s left"}
            self.save()
            return
        self.log(f"=== {name} ({self.left():.0f}s left)")
        t = time.monotonic()
        try:
            fn(self)
            status = "ok"
        except Exception as exc:  # noqa: BLE001 - record and go on
            status = f"error: {type(exc).__name__}: {exc}"
            self.summary["errors"].append(
                {"phase": name, "error": status, "trace": traceback.format_exc()[-3000:]}
            )
            self.log(status)
        self.summary["phases"][name] = {"status": status, "seconds": round(time.monotonic() - t, 1)}
        self.save()


def sh(cmd: list[str], timeout: float, log: Path | None = None, env: dict | None = None) -> tuple[int, str]:
    """Run a command; returns (rc, combined output). rc 124 on timeout."""
    e = dict(os.environ, **(env or {}))
    paths = e.get("PYTHONPATH", "").split(os.pathsep)
    if str(REPO) not in paths:  # the project is run from the checkout, not installed
        e["PYTHONPATH"] = os.pathsep.join([str(REPO), *[p for p in paths if p]])
    try:
        p = subprocess.run(cmd, cwd=REPO, env=e, capture_output=True, text=True, timeout=max(5, timeout))
        rc, text = p.returncode, p.stdout + p.stderr
    except subprocess.TimeoutExpired as exc:
        rc = 124
        text = (
            (exc.stdout or b"").decode(errors="replace")
            if isinstance(exc.stdout, bytes)
            else (exc.stdout or "")
        )
        text += (
            (exc.stderr or b"").decode(errors="replace")
            if isinstance(exc.stderr, bytes)
            else (exc.stderr or "")
        )
        text += f"\n[timed out after {timeout:.0f}s]\n"
    if log is not None:
        with open(log, "a") as f:
            f.write(f"$ {' '.join(cmd)}\n{text}\n[rc={rc}]\n\n")
    return rc, text


def stats_ms(seconds: list[float]) -> dict:
    import numpy as np

    a = np.asarray(seconds) * 1e3
    return {
        "p50_ms": round(float(np.percentile(a, 50)), 3),
        "p95_ms": round(float(np.percentile(a, 95)), 3),
        "min_ms": round(float(a.min()), 3),
        "n": int(a.size),
    }


def cuda(run: Run) -> bool:
    import torch

    return (not run.dry) and torch.cuda.is_available()


def sync() -> None:
    import torch

    if torch.cuda.is_available():
        torch.cuda.synchronize()


# ------------------------------------------------------------------------------------------- phases
def phase_env(run: Run) -> None:
    import numpy as np
    import torch

    env = {
        "python": platform.python_version(),
        "executable": sys.executable,
        "cpus": os.cpu_count(),
        "torch": torch.__version__,
        "torch_cuda": torch.version.cuda,
        "cuda_available": torch.cuda.is_available(),
        "numpy": np.__version__,
    }
    for mod in ("numba", "cv2", "av", "onnx", "onnxruntime", "typer", "rich", "tensorrt", "hypothesis"):
        try:
            m = __import__(mod)
            env[mod] = getattr(m, "__version__", "?")
        except Exception as exc:  # noqa: BLE001
            env[mod] = f"missing ({type(exc).__name__})"
    if torch.cuda.is_available():
        p = torch.cuda.get_device_properties(0)
        env.update(
            gpu=p.name,
            capability=f"{p.major}.{p.minor}",
            sms=p.multi_processor_count,
            gpu_mem_gib=round(p.total_memory / 2**30, 1),
            cudnn=torch.backends.cudnn.version(),
        )
        rc, text = sh(
            [
                "nvidia-smi",
                "--query-gpu=name,driver_version,clocks.sm,clocks.mem,temperature.gpu,"
                "power.draw,utilization.gpu,memory.used",
                "--format=csv",
            ],
            20,
        )
        env["nvidia_smi"] = text.strip().splitlines()[-2:] if rc == 0 else f"rc={rc}"
    run.summary["env"] = env
    run.log(json.dumps(env))


def ensure_golden(run: Run) -> str:
    """The tests read ../shared/golden; on the device it does not travel, so link the carried subset."""
    target = (REPO / ".." / "shared" / "golden").resolve()
    if (target / "README.md").is_file():
        return f"present at {target}"
    carried = HERE / "golden"
    if not (carried / "README.md").is_file():
        return f"MISSING: neither {target} nor {carried}"
    target.parent.mkdir(parents=True, exist_ok=True)
    if target.is_symlink() or target.exists():
        return f"{target} exists without README.md; left alone"
    target.symlink_to(carried, target_is_directory=True)
    return f"linked {target} -> {carried}"


def golden_dir() -> Path:
    """../shared/golden when present, else the copy carried in the .gpucheck folder."""
    shared = (REPO / ".." / "shared" / "golden").resolve()
    return shared if (shared / "README.md").is_file() else HERE / "golden"


def device_of(run: Run) -> str:
    return "cuda:0" if cuda(run) else "cpu"


def phase_tests(run: Run) -> None:
    golden = ensure_golden(run)
    files = sorted(
        str(p.relative_to(REPO))
        for p in (REPO / "tests").glob("test_*.py")
        if re.search(r"mark\.gpu\b", p.read_text())
    )
    log = run.out / "pytest.log"
    timeout = min(130.0, run.left() - 250) if not run.dry else 300
    cmd = [
        sys.executable,
        "-m",
        "pytest",
        "-m",
        "gpu",
        "-q",
        "-rA",
        "-p",
        "no:cacheprovider",
        "--continue-on-collection-errors",
        *files,
    ]
    rc, text = sh(cmd, timeout, log)
    tail = [ln for ln in text.strip().splitlines() if ln.strip()][-1:] or [""]
    outcomes = {
        k: int(v) for v, k in re.findall(r"(\d+) (passed|failed|skipped|error|errors|deselected)", tail[0])
    }
    failed = re.findall(r"^(?:FAILED|ERROR) (\S+)", text, flags=re.M)
    run.summary["tests"] = {
        "golden": golden,
        "files": files,
        "rc": rc,
        "last_line": tail[0],
        "counts": outcomes,
        "failed": failed[:20],
    }
    run.log(f"pytest rc={rc}: {tail[0]}")


def _make_backend(run: Run, graph, precision: str, graphs: bool, channels_last: bool):
    if cuda(run):
        from hhrnet_rt.runtime.backends.torch_cuda import TorchCudaBackend

        return TorchCudaBackend(
            graph, device="cuda:0", precision=precision, cuda_graphs=graphs, channels_last=channels_last
        )
    from hhrnet_rt.runtime.backends.torch_backend import TorchBackend

    return TorchBackend(graph, device="cpu")


def _time_run_torch(backend, x, max_s: float) -> dict:
    """Per-call latency (synchronised each call, like hhrt bench) and back-to-back GPU time per call."""
    import torch

    for _ in range(3):  # first call: cuDNN autotune and graph capture
        backend.run_torch(x)
    sync()
    t = time.perf_counter()
    backend.run_torch(x)
    sync()
    one = time.perf_counter() - t
    n = int(max(5, min(60, max_s / 2 / max(one, 1e-4))))
    lat = []
    for _ in range(n):
        t = time.perf_counter()
        backend.run_torch(x)
        sync()
        lat.append(time.perf_counter() - t)
    res = {"latency": stats_ms(lat)}
    if x.is_cuda:
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        for _ in range(n):
            backend.run_torch(x)
        end.record()
        end.synchronize()
        res["pipelined_ms_per_call"] = round(start.elapsed_time(end) / n, 3)
    return res


def _rel(a, b) -> float:
    a, b = a.double(), b.double()
    return float((a - b).norm() / max(float(b.norm()), 1e-30))


def _act_ranges(module, x) -> dict:
    """Largest |activation| per leaf module for one input (fp16 headroom: 65504), non-finite modules."""
    import torch

    peaks: dict[str, float] = {}
    nonfinite: list[str] = []
    hooks = []
    for name, m in module.named_modules():
        if len(list(m.children())) == 0:

            def hook(_m, _i, out, name=name):
                if isinstance(out, torch.Tensor) and out.is_floating_point():
                    peaks[name] = float(out.detach().abs().max())
                    if not bool(torch.isfinite(out).all()):
                        nonfinite.append(name)

            hooks.append(m.register_forward_hook(hook))
    try:
        with torch.inference_mode():
            module(x)
    finally:
        for h in hooks:
            h.remove()
    top = sorted(peaks.items(), key=lambda kv: -kv[1])[:5]
    return {
        "max_abs": max(peaks.values(), default=0.0),
        "top": top,
        "nonfinite_first": nonfinite[:5],
        "nonfinite_count": len(nonfinite),
    }


def phase_model(run: Run) -> None:
    import numpy as np
    import torch

    from hhrnet_rt.bench.run import frame_shape
    from hhrnet_rt.model.graph import PoseGraph
    from hhrnet_rt.model.weights import random_network

    dev = "cuda:0" if cuda(run) else "cpu"
    size = 64 if run.dry else 512
    h, w = frame_shape(size)  # 16:9 frame -> (512, 960), what hhrt bench times
    net = random_network()
    graph = PoseGraph(net, flip=True).eval()
    graph_noflip = PoseGraph(net, flip=False).eval()
    g = torch.Generator().manual_seed(0)
    x_ref = torch.randn(1, 3, h, w, generator=g).to(dev)
    results, checks = [], {}
    run.summary["model_only"] = {"input_hw": [h, w], "configs": results, "checks": checks}

    # Reference: fp32 IEEE eager, outputs kept on the device.
    ref_backend = _make_backend(run, graph, "fp32", False, True)
    with torch.inference_mode():
        ref_h, ref_t = ref_backend.run_torch(x_ref)
    ref_h, ref_t = ref_h.clone(), ref_t.clone()
    checks["ref_fp32"] = {
        "heatmap_max_abs": float(ref_h.abs().max()),
        "tags_max_abs": float(ref_t.abs().max()),
        "heatmap_frac_gt_0.1": float((ref_h > 0.1).float().mean()),
    }
    if cuda(run):
        checks["activations_fp32"] = _act_ranges(ref_backend._graph, x_ref)
    del ref_backend

    configs = [  # (precision, cuda graphs, channels_last, batch, flip) in order of importance
        ("fp16", True, True, 1, True),
        ("fp16", True, True, 8, True),
        ("fp32", True, True, 1, True),
        ("fp32", True, True, 8, True),
        ("fp16", False, True, 1, True),
        ("fp32", False, True, 1, True),
        ("fp16", False, True, 8, True),
        ("fp32", False, True, 8, True),
        ("fp16", True, False, 1, True),
        ("fp32", True, False, 1, True),
        ("fp16", True, True, 1, False),
        ("tf32", True, True, 1, True),
    ]
    if run.dry:
        configs = [("fp32", False, True, 1, True), ("fp32", False, True, 2, False)]
    phase_end = time.monotonic() + min(150.0, run.left() - 150) if not run.dry else time.monotonic() + 600
    for precision, graphs, cl, batch, flip in configs:
        left = phase_end - time.monotonic()
        if left < 8:
            results.append({"config": [precision, graphs, cl, batch, flip], "skipped": "phase time"})
            continue
        row = {
            "precision": precision,
            "cuda_graphs": graphs,
            "channels_last": cl,
            "batch": batch,
            "flip": flip,
        }
        try:
            backend = _make_backend(
                run, graph if flip else graph_noflip, "fp32" if precision == "tf32" else precision, graphs, cl
            )
            if precision == "tf32":
                torch.backends.cudnn.allow_tf32 = True  # what a TensorRT "fp32" engine does by default
            x = torch.randn(batch, 3, h, w, generator=g).to(dev)
            t = time.monotonic()
            row.update(_time_run_torch(backend, x, max_s=min(6.0, left / 3)))
            row["setup_and_timing_s"] = round(time.monotonic() - t, 1)
            row["ms_per_image"] = round(row.get("pipelined_ms_per_call", row["latency"]["p50_ms"]) / batch, 3)
            row["images_per_s"] = round(1000.0 / row["ms_per_image"], 1)
            if batch == 1 and flip:
                out_h, out_t = backend.run_torch(x_ref)
                row["finite"] = bool(torch.isfinite(out_h).all() and torch.isfinite(out_t).all())
                row["rel_err_vs_fp32_heatmaps"] = _rel(out_h.float(), ref_h)
                row["rel_err_vs_fp32_tags"] = _rel(out_t.float(), ref_t)
                row["max_abs_err_heatmaps"] = float((out_h.float() - ref_h).abs().max())
                # channels_last graphs return channels_last heatmaps: run_on_device's .cpu().numpy() is then
                # not C-contiguous and decode's np.ascontiguousarray transposes the whole map on the CPU.
                row["heatmaps_stride"] = list(out_h.stride())
                row["heatmaps_contiguous"] = bool(out_h.is_contiguous())
            if graphs and cuda(run):
                # Replay must equal eager on a fresh input (static_in really refreshed, outputs not stale).
                x2 = torch.randn(batch, 3, h, w, generator=g).to(dev)
                got = backend.run_torch(x2)[0]
                with torch.inference_mode():
                    eager = backend._forward(x2)[0]
                row["graph_vs_eager_max_abs"] = float((got - eager).abs().max())
                row["graph_output_changed"] = bool((got - backend.run_torch(x)[0]).abs().max() > 0)
            results.append(row)
            run.log(json.dumps(row))
            del backend
        except Exception as exc:  # noqa: BLE001
            row["error"] = f"{type(exc).__name__}: {exc}"
            results.append(row)
            run.log(f"config {row} failed: {exc}")
        finally:
            torch.backends.cudnn.allow_tf32 = False if cuda(run) else torch.backends.cudnn.allow_tf32
            if torch.cuda.is_available():
                torch.cuda.empty_cache()
        run.save()

    if cuda(run):
        _thread_and_inference_tensor_checks(run, graph, x_ref, checks)
        checks["fp16_activations"] = _fp16_activation_check(graph, x_ref)
        checks["max_memory_allocated_gib"] = round(torch.cuda.max_memory_allocated() / 2**30, 2)
    # Keep the fp16 (or CPU) output of the random network for the decode phase.
    # Backends return planar tags (N, K, L, H, W); the decoder takes their per-pixel view.
    run._random_maps = (ref_h[0].float().cpu().numpy(), np.moveaxis(ref_t[0].float().cpu().numpy(), -3, -1))
    _ = np


def _thread_and_inference_tensor_checks(run: Run, graph, x_ref, checks: dict) -> None:
    """Capture on one thread, replay on another thread on a non-default stream, with an inference-mode
    input (what DevicePreprocessor hands over); compare with eager."""
    import threading

    import torch

    from hhrnet_rt.runtime.backends.torch_cuda import TorchCudaBackend

    backend = TorchCudaBackend(graph, device="cuda:0", precision="fp16", cuda_graphs=True)
    with torch.inference_mode():
        x_inf = x_ref.clone()  # an inference tensor
    first = backend.run_torch(x_inf)[0].clone()  # capture here (main thread)
    torch.cuda.synchronize()  # the worker's stream does not wait for this thread's default stream
    out: dict = {}

    def worker() -> None:
        try:
            s = torch.cuda.Stream()
            with torch.cuda.stream(s):
                y = torch.randn_like(x_ref)
                got = backend.run_torch(y)[0]
                with torch.inference_mode():
                    eager = backend._forward(y)[0]
                again = backend.run_torch(x_inf)[0]
                s.synchronize()
                out["replay_vs_eager_other_thread_stream"] = float((got - eager).abs().max())
                out["same_input_same_output"] = float((again - first).abs().max())
        except Exception as exc:  # noqa: BLE001
            out["error"] = f"{type(exc).__name__}: {exc}"

    th = threading.Thread(target=worker)
    th.start()
    th.join(60)
    checks["thread_stream_replay"] = out


def _fp16_activation_check(graph, x_ref) -> dict:
    import copy

    import torch

    m = copy.deepcopy(graph).to("cuda:0", dtype=torch.float16, memory_format=torch.channels_last)
    return _act_ranges(m, x_ref.half().contiguous(memory_format=torch.channels_last))


def phase_d2h(run: Run) -> None:
    import numpy as np
    import torch

    from hhrnet_rt import decode
    from hhrnet_rt.decode.synthetic import synthesize

    res: dict = {}
    run.summary["d2h_decode"] = res
    dev = "cuda:0" if cuda(run) else "cpu"
    shapes = [(512, 704), (512, 960)] if not run.dry else [(128, 192)]
    for hh, ww in shapes:
        hm = torch.rand(1, 17, hh, ww, device=dev)
        tg = torch.randn(1, 17, hh, ww, 2, device=dev)
        mb = (hm.numel() + tg.numel()) * 4 / 1e6
        row = {"maps_mb": round(mb, 1)}
        times = []
        for _ in range(12):  # what run_on_device does: .float().cpu().numpy() into pageable memory
            sync()
            t = time.perf_counter()
            hm[0].float().cpu().numpy(), tg[0].float().cpu().numpy()
            times.append(time.perf_counter() - t)
        row["pageable"] = stats_ms(times[2:])
        if dev != "cpu":
            ph = torch.empty(hm[0].shape, pin_memory=True)
            pt = torch.empty(tg[0].shape, pin_memory=True)
            times = []
            for _ in range(12):
                sync()
                t = time.perf_counter()
                ph.copy_(hm[0], non_blocking=True)
                pt.copy_(tg[0], non_blocking=True)
                torch.cuda.synchronize()
                times.append(time.perf_counter() - t)
            row["pinned"] = stats_ms(times[2:])
            row["pinned_gb_s"] = round(mb / 1e3 / (row["pinned"]["p50_ms"] / 1e3), 1)
        row["pageable_gb_s"] = round(mb / 1e3 / (row["pageable"]["p50_ms"] / 1e3), 1)
        res[f"{hh}x{ww}"] = row
        run.log(f"d2h {hh}x{ww}: {row}")

    t = time.perf_counter()
    decode.warmup()
    res["numba_warmup_s"] = round(time.perf_counter() - t, 1)
    hh, ww = shapes[0]
    for people in (0, 6, 20):
        sm = synthesize(people, 17, hh, ww, 2, seed=1)
        times = []
        for _ in range(8):
            t = time.perf_counter()
            grouped, _scores = decode.parse(sm.heatmaps, sm.tags)
            times.append(time.perf_counter() - t)
        res[f"decode_synthetic_{people}p_{hh}x{ww}"] = {**stats_ms(times[1:]), "found": int(len(grouped))}
    # What the default torch CUDA path hands the decoder: heatmaps in channels_last order (HWC strides).
    sm = synthesize(6, 17, hh, ww, 2, seed=1)
    hwc = np.ascontiguousarray(sm.heatmaps.transpose(1, 2, 0)).transpose(2, 0, 1)  # (K,H,W) view, HWC strides
    times, copies = [], []
    for _ in range(6):
        t = time.perf_counter()
        decode.parse(hwc, sm.tags)
        times.append(time.perf_counter() - t)
        t = time.perf_counter()
        np.ascontiguousarray(hwc)
        copies.append(time.perf_counter() - t)
    res[f"decode_synthetic_6p_{hh}x{ww}_channels_last_layout"] = stats_ms(times[1:])
    res["ascontiguousarray_channels_last_heatmaps"] = stats_ms(copies[1:])
    if dev != "cpu":
        t_cl = torch.from_numpy(sm.heatmaps)[None].to(dev).contiguous(memory_format=torch.channels_last)
        times = []
        for _ in range(8):
            sync()
            t = time.perf_counter()
            a = t_cl[0].float().cpu().numpy()  # exactly run_on_device's expression
            decode.parse(a, sm.tags)
            times.append(time.perf_counter() - t)
        res["run_on_device_copy_plus_decode_channels_last"] = {
            **stats_ms(times[2:]),
            "numpy_c_contiguous": bool(a.flags["C_CONTIGUOUS"]),
        }
    maps = getattr(run, "_random_maps", None)
    if maps is not None:
        times = []
        for _ in range(5):
            t = time.perf_counter()
            grouped, _scores = decode.parse(*maps)
            times.append(time.perf_counter() - t)
        res["decode_random_network_maps"] = {
            **stats_ms(times[1:]),
            "found": int(len(grouped)),
            "shape": list(maps[0].shape),
        }
    run.log(json.dumps(res))
    _ = np


def _bench_has(option: str) -> bool:
    rc, text = sh([sys.executable, "-m", "hhrnet_rt", "bench", "--help"], 60, env={"COLUMNS": "200"})
    return rc == 0 and option in text


def _find_d2h(report: dict) -> dict:
    """Every number in the bench JSON whose key speaks of device->host bytes (the key is the CLI's)."""
    found: dict = {}

    def walk(node, path: str) -> None:
        if isinstance(node, dict):
            for k, v in node.items():
                walk(v, f"{path}.{k}" if path else str(k))
        elif isinstance(node, (int, float)) and re.search(r"d2h|device_to_host|bytes", path, re.I):
            found[path] = node

    walk(report, "")
    return found


def phase_bench(run: Run, precision: str, frames: int) -> None:
    name = f"bench_torch_{precision}.json"
    out = run.out / name
    decode_on = ["--decode-on", "device"] if _bench_has("--decode-on") else []
    if run.dry:
        cmd = [
            sys.executable,
            "-m",
            "hhrnet_rt",
            "bench",
            "--backend",
            "torch",
            "--device",
            "cpu",
            "--input-size",
            "128",
            "--frames",
            "3",
            "--warmup",
            "1",
            "--no-flip",
            "--json",
            str(out),
            *decode_on,
        ]
    else:
        cmd = [
            sys.executable,
            "-m",
            "hhrnet_rt",
            "bench",
            "--backend",
            "torch",
            "--device",
            "cuda",
            "--precision",
            precision,
            "--frames",
            str(frames),
            "--warmup",
            "20",
            "--json",
            str(out),
            *decode_on,
        ]
    rc, text = sh(
        cmd, min(110.0, run.left() - 20) if not run.dry else 600, run.out / "cli.log", env={"COLUMNS": "160"}
    )
    entry: dict = {
        "cmd": " ".join(cmd[1:]),
        "rc": rc,
        "decode_on": decode_on[1] if decode_on else "api_missing: no --decode-on in hhrt bench",
    }
    if out.is_file():
        rep = json.loads(out.read_text())
        mo, e2e = rep.get("model_only") or {}, rep.get("end_to_end") or {}
        entry.update(
            model_only_fps=mo.get("fps"),
            model_only_p50_ms=mo.get("p50_ms"),
            e2e_fps=e2e.get("fps"),
            e2e_latency=e2e.get("latency"),
            stages_p50_ms={k: v.get("p50_ms") for k, v in (e2e.get("stages") or {}).items()},
            memory=rep.get("memory"),
            backend=rep.get("backend"),
            d2h=_find_d2h(rep),
        )
    else:
        entry["output_tail"] = text[-1500:]
    run.summary.setdefault("bench", {})[precision] = entry
    run.log(json.dumps(entry, default=str))


def _make_clip(path: Path, n: int, size=(480, 640), fps: int = 30) -> str:
    from hhrnet_rt.bench.run import synthetic_frames

    frames = synthetic_frames(n, size)
    try:
        import av

        with av.open(str(path), "w") as c:
            codec = "libx264"
            try:
                av.codec.Codec(codec, "w")
            except Exception:  # noqa: BLE001
                codec = "mpeg4"
            s = c.add_stream(codec, rate=fps)
            s.width, s.height, s.pix_fmt = size[1], size[0], "yuv420p"
            for f in frames:
                for pkt in s.encode(av.VideoFrame.from_ndarray(f, format="bgr24")):
                    c.mux(pkt)
            for pkt in s.encode():
                c.mux(pkt)
        return f"PyAV {codec}"
    except ImportError:
        import cv2

        vw = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, (size[1], size[0]))
        for f in frames:
            vw.write(f)
        vw.release()
        return "OpenCV mp4v (PyAV missing: hhrt video will fail to read it)"


def parse_summary_table(text: str) -> dict:
    """FPS and per-stage p50/p95 from the Rich table `hhrt video` prints (box chars or ASCII)."""
    res: dict = {"stages_p50_ms": {}, "stages_p95_ms": {}}
    for line in text.splitlines():
        cells = [c.strip() for c in re.split(r"[│┃|]", line)]
        cells = [c for c in cells if c != ""]
        if len(cells) >= 2 and cells[0] == "end-to-end FPS":
            res["fps"] = float(cells[1])
        elif len(cells) >= 2 and cells[0] == "frames":
            res["frames"] = cells[1]
        elif len(cells) >= 2 and cells[0] == "wall time":
            res["wall"] = cells[1]
        elif len(cells) >= 4 and cells[1].endswith("calls"):
            res["stages_p50_ms"][cells[0]] = float(cells[2])
            res["stages_p95_ms"][cells[0]] = float(cells[3])
        elif len(cells) >= 3 and cells[0].startswith("latency"):
            res["latency_p50_ms"], res["latency_p95_ms"] = float(cells[1]), float(cells[2])
        elif len(cells) >= 2 and cells[0].startswith("queue"):
            res.setdefault("queues", {})[cells[0]] = cells[1]
    return res


def phase_video(run: Run, precision: str) -> None:
    tmp = Path(tempfile.mkdtemp(prefix="gpucheck-video-"))
    n = 12 if run.dry else 900
    clip = tmp / "clip_640x480.mp4"
    how = _make_clip(clip, n)
    cmd = [
        sys.executable,
        "-m",
        "hhrnet_rt",
        "video",
        str(clip),
        "--out",
        str(tmp / "out.mp4"),
        "--json",
        str(tmp / "out.jsonl"),
        "--weights",
        "random",
    ]
    if run.dry:
        cmd += [
            "--backend",
            "torch",
            "--device",
            "cpu",
            "--input-size",
            "128",
            "--max-frames",
            "4",
            "--no-flip",
        ]
    else:
        cmd += ["--backend", "torch", "--device", "cuda", "--precision", precision]
    rc, text = sh(
        cmd,
        min(120.0, run.left() - 10) if not run.dry else 600,
        run.out / "video.log",
        env={"COLUMNS": "160"},
    )
    entry = {
        "clip": f"{n} frames 640x480 ({how})",
        "cmd": " ".join(cmd[1:]),
        "rc": rc,
        **parse_summary_table(text),
    }
    jl = tmp / "out.jsonl"
    entry["jsonl_records"] = sum(1 for _ in open(jl)) if jl.is_file() else None
    entry["out_mp4_bytes"] = (tmp / "out.mp4").stat().st_size if (tmp / "out.mp4").is_file() else None
    if rc != 0 or "fps" not in entry:
        entry["output_tail"] = text[-1500:]
    run.summary.setdefault("video", {})[precision] = entry
    run.log(json.dumps(entry, default=str))
    shutil.rmtree(tmp, ignore_errors=True)


def worker_concurrency() -> dict:
    """The backend protocol promises thread-safe calls (issue 8): four threads call run_torch of one
    fp16 CUDA-graph backend at once (the first call races for the capture), then replay concurrently;
    each result is compared with the same backend's single-thread answer for that input."""
    import threading

    import torch

    if not torch.cuda.is_available():
        return {"skipped": "no CUDA"}
    from hhrnet_rt.model.graph import PoseGraph
    from hhrnet_rt.model.weights import random_network
    from hhrnet_rt.runtime.backends.torch_cuda import TorchCudaBackend

    graph = PoseGraph(random_network(), flip=True).eval()
    xs = [torch.randn(1, 3, 256, 448, device="cuda:0") for _ in range(4)]
    reference = TorchCudaBackend(graph, device="cuda:0", precision="fp16", cuda_graphs=True)
    refs = [reference.run_torch(x)[0].clone() for x in xs]
    torch.cuda.synchronize()
    del reference
    backend = TorchCudaBackend(graph, device="cuda:0", precision="fp16", cuda_graphs=True)
    res: dict = {"errors": [], "calls": 0, "mismatches": 0, "max_err": 0.0}
    lock = threading.Lock()

    def work(i: int, barrier: threading.Barrier, n: int) -> None:
        try:
            barrier.wait()
            for _ in range(n):
                out = backend.run_torch(xs[i])[0]
                err = float((out - refs[i]).abs().max())  # .item() syncs this thread's stream only
                with lock:
                    res["calls"] += 1
                    res["max_err"] = max(res["max_err"], err)
                    res["mismatches"] += int(err > 1e-3)
        except Exception as exc:  # noqa: BLE001
            with lock:
                res["errors"].append(f"{type(exc).__name__}: {str(exc)[:300]}")

    for stage, n in (("concurrent_first_call", 1), ("concurrent_replay", 20)):
        before = dict(calls=res["calls"], mismatches=res["mismatches"], errors=len(res["errors"]))
        barrier = threading.Barrier(4)
        threads = [threading.Thread(target=work, args=(i, barrier, n)) for i in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        res[stage] = {
            "calls": res["calls"] - before["calls"],
            "mismatches": res["mismatches"] - before["mismatches"],
            "errors": len(res["errors"]) - before["errors"],
            "hung": sum(t.is_alive() for t in threads),
        }
    res["errors"] = res["errors"][:6]
    res["thread_safe"] = not res["errors"] and res["mismatches"] == 0 and res["calls"] == 84
    return res


def phase_concurrency(run: Run) -> None:
    rc, text = sh(
        [sys.executable, str(Path(__file__).resolve()), "--worker", "concurrency"],
        min(90.0, run.left() - 10) if not run.dry else 300,
        run.out / "cli.log",
    )
    line = [ln for ln in text.splitlines() if ln.startswith("RESULT ")]
    run.summary["concurrency"] = json.loads(line[-1][7:]) if line else {"rc": rc, "output_tail": text[-1500:]}
    run.summary["concurrency"]["rc"] = rc
    safe = run.summary["concurrency"].get("thread_safe")
    targets._record(run.summary, "four_threads_one_backend", safe, "all 84 calls correct", safe)
    run.log(json.dumps(run.summary["concurrency"]))


# -------------------------------------------------------------------------------------------- report
def markdown(s: dict) -> str:
    L = [
        "# hhrnet-rt GPU check",
        "",
        f"started {s['meta'].get('started_utc')}, elapsed {s['meta'].get('elapsed_s')} s,"
        f" dry_run={s['meta'].get('dry_run')}",
        "",
    ]
    env = s.get("env", {})
    if env:
        L += [
            f"GPU {env.get('gpu')} (cc {env.get('capability')}), torch {env.get('torch')} CUDA {env.get('torch_cuda')}"
            f" cuDNN {env.get('cudnn')}, numpy {env.get('numpy')}, numba {env.get('numba')}, av {env.get('av')},"
            f" tensorrt {env.get('tensorrt')}",
            "",
        ]
    L += targets.targets_markdown(s)
    L += ["## phases", ""] + [f"- {k}: {v}" for k, v in s.get("phases", {}).items()] + [""]
    if "tests" in s:
        t = s["tests"]
        L += ["## pytest -m gpu", "", f"rc {t['rc']}: {t['last_line']}", f"golden: {t['golden']}"]
        L += [f"- FAILED {f}" for f in t.get("failed", [])] + [""]
    mo = s.get("model_only")
    if mo:
        L += [
            f"## model-only (PoseGraph W32 random, input {mo['input_hw']})",
            "",
            "| prec | graphs | ch_last | batch | flip | p50 ms/call | pipelined ms/call | img/s | rel err hm | graph==eager |",
            "|---|---|---|---|---|---|---|---|---|---|",
        ]
        for r in mo["configs"]:
            if "latency" not in r:
                L.append(
                    f"| {r.get('precision', r.get('config'))} | | | | | {r.get('error', r.get('skipped'))} | | | | |"
                )
                continue
            L.append(
                f"| {r['precision']} | {r['cuda_graphs']} | {r['channels_last']} | {r['batch']} | {r['flip']} | "
                f"{r['latency']['p50_ms']} | {r.get('pipelined_ms_per_call', '')} | {r['images_per_s']} | "
                f"{r.get('rel_err_vs_fp32_heatmaps', '')} | {r.get('graph_vs_eager_max_abs', '')} |"
            )
        L += ["", "checks: `" + json.dumps(mo.get("checks"), default=str)[:1500] + "`", ""]
    if "d2h_decode" in s:
        L += ["## D2H and decode", "", "`" + json.dumps(s["d2h_decode"], default=str) + "`", ""]
    for key in (
        "decode_device_vs_host", "model_only_target", "e2e_single_stream", "d2h_bytes_per_frame",
        "shape_changes", "warp_vs_opencv", "memory_over_frames", "decode_overlap", "stream_sanitizer",
    ):  # fmt: skip
        if key in s:
            L += [f"## {key}", "", "`" + json.dumps(s[key], default=str)[:2500] + "`", ""]
    if "concurrency" in s:
        L += [
            "## concurrent run_torch (CUDA graphs, 4 threads)",
            "",
            "`" + json.dumps(s["concurrency"], default=str)[:1500] + "`",
            "",
        ]
    for key in ("bench", "video"):
        for prec, e in (s.get(key) or {}).items():
            L += [
                f"## {key} {prec}",
                "",
                "`" + json.dumps({k: v for k, v in e.items() if k != "output_tail"}, default=str) + "`",
            ]
            if e.get("output_tail"):
                L += ["", "```", e["output_tail"][-800:], "```"]
            L.append("")
    for e in s.get("errors", []):
        L += [f"## error in {e['phase']}", "", "```", e["trace"][-1200:], "```", ""]
    return "\n".join(L) + "\n"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=os.environ.get("OUT") or "/tmp/gpucheck-out")
    ap.add_argument("--budget", type=float, default=450.0, help="seconds for all phases together")
    ap.add_argument("--dry-run", action="store_true", help="CPU, tiny sizes: checks the plumbing only")
    ap.add_argument(
        "--phases",
        default="env,tests,decode_equal,target_model,e2e,d2h_bytes,model,d2h,bench,video,concurrency,bench32,"
        "shapes,warp,memory,overlap,sanitizer",
    )
    ap.add_argument("--worker", choices=["concurrency"], help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker == "concurrency":
        if str(REPO) not in sys.path:
            sys.path.insert(0, str(REPO))
        print("RESULT " + json.dumps(worker_concurrency()), flush=True)
        return 0
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    os.environ.setdefault("NUMBA_CACHE_DIR", str(Path(tempfile.gettempdir()) / "gpucheck-numba"))
    os.environ.setdefault("HHRT_CACHE_DIR", str(Path(tempfile.gettempdir()) / "gpucheck-hhrt-cache"))
    if str(REPO) not in sys.path:
        sys.path.insert(0, str(REPO))
    run = Run(out, args.budget, args.dry_run)
    if args.dry_run:  # a shared CPU: torch's thread pool spinning against other work is 10x slower
        import torch

        torch.set_num_threads(1)
    wanted = args.phases.split(",")
    plan = [  # (name, fn, seconds that must be left to start it)
        ("env", phase_env, 0),
        ("tests", phase_tests, 240),
        ("decode_equal", lambda r: targets.phase_decode_equal(r, golden_dir(), device_of(r)), 200),
        (
            "target_model",
            lambda r: targets.phase_model_target(
                r, golden_dir(), _make_backend, _time_run_torch, device_of(r)
            ),
            190,
        ),
        (
            "e2e",
            lambda r: targets.phase_e2e(
                r, golden_dir(), device_of(r), "fp16" if cuda(r) else "fp32", max_s=60.0
            ),
            180,
        ),
        (
            "d2h_bytes",
            lambda r: targets.phase_d2h_bytes(r, golden_dir(), device_of(r), "fp16" if cuda(r) else "fp32"),
            120,
        ),
        ("model", phase_model, 150),
        ("d2h", phase_d2h, 110),
        ("bench", lambda r: phase_bench(r, "fp16", 300), 80),
        ("video", lambda r: phase_video(r, "fp16"), 45),
        ("concurrency", phase_concurrency, 40),
        ("bench32", lambda r: phase_bench(r, "fp32", 150), 45),
        # Issue #18: shape changes, the warp against OpenCV, memory, decode/inference overlap, stream races.
        ("shapes", lambda r: device_phases.phase_shapes(r, golden_dir(), device_of(r)), 40),
        ("warp", lambda r: device_phases.phase_warp(r, device_of(r)), 10),
        (
            "memory",
            lambda r: device_phases.phase_memory(r, golden_dir(), device_of(r), 10 if r.dry else 300),
            30,
        ),
        ("overlap", lambda r: device_phases.phase_overlap(r, golden_dir(), device_of(r), r.out), 30),
        (
            "sanitizer",
            lambda r: device_phases.phase_sanitizer(r, golden_dir(), device_of(r), min(90, r.left() - 10)),
            45,
        ),
    ]
    if args.dry_run:
        plan = [(n, f, 0) for n, f, _ in plan]
    for name, fn, min_left in plan:
        if name in wanted:
            run.phase(name, fn, min_left)
    run.save()
    print((out / "summary.md").read_text())
    return 0


if __name__ == "__main__":
    sys.exit(main())
