"""INT8 (Q/DQ) vs fp32 in ONNX Runtime on the CPU: latency and agreement, W32 pose graph.

For each input size: export the PoseGraph (W32-512 network, flip test) to fp32 ONNX, quantize it with
hhrnet_rt.export.quantize (percentile calibration on generated frames, preprocessed like inference),
then time both graphs on the 16:9 frame shape (e.g. 512x960) and compare their outputs on held-out
generated frames (hhrnet_rt.export.agreement, decode included).

Weights are random-init unless --weights is given: the speed is representative, the agreement is NOT
(random weights give flat, noisy heatmaps with many near-tie peaks; trained weights give few sharp peaks).

Run from the repository root:
    python benchmarks/bench_int8_cpu.py --sizes 256 512 --repeats 5
"""

from __future__ import annotations

import argparse
import datetime as dt
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np


def lscpu_model() -> str:
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, check=True).stdout
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    for line in out.splitlines():
        if line.startswith("Model name"):
            return line.split(":", 1)[1].strip()
    return "unknown"


def time_session(path: Path, x: np.ndarray, warmup: int, repeats: int, threads: int | None) -> list[float]:
    import onnxruntime as ort

    opts = ort.SessionOptions()
    if threads:
        opts.intra_op_num_threads = threads
    sess = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
    for _ in range(warmup):
        sess.run(None, {"image": x})
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        sess.run(None, {"image": x})
        times.append(time.perf_counter() - t0)
    return times


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[512])
    parser.add_argument("--weights", default="random")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--calib-images", type=int, default=8)
    parser.add_argument("--holdout", type=int, default=2)
    parser.add_argument("--method", default="percentile", choices=["percentile", "minmax", "entropy"])
    parser.add_argument("--no-flip", action="store_true")
    parser.add_argument("--threads", type=int, default=None)
    args = parser.parse_args()

    import onnxruntime
    import torch

    from hhrnet_rt.bench.run import frame_shape, synthetic_frames
    from hhrnet_rt.export.agreement import onnx_agreement
    from hhrnet_rt.export.build import export_graph, load_network, preprocess_bgr
    from hhrnet_rt.export.quantize import quantize_int8

    flip = not args.no_flip
    network = load_network(args.weights)
    frames = synthetic_frames(args.calib_images + args.holdout, seed=1)
    rows = []
    with tempfile.TemporaryDirectory(prefix="hhrt-int8-bench-") as tmp:
        for size in args.sizes:
            fp32 = export_graph(network, Path(tmp) / f"s{size}.fp32.onnx", flip=flip, input_size=size)
            inputs = [preprocess_bgr(f, size) for f in frames]
            int8 = Path(tmp) / f"s{size}.int8.onnx"
            t0 = time.perf_counter()
            quantize_int8(
                fp32,
                int8,
                calibration_inputs=lambda inputs=inputs: inputs[: args.calib_images],
                method=args.method,
            )
            quant_s = time.perf_counter() - t0
            h, w = frame_shape(size)
            x = np.random.default_rng(0).standard_normal((1, 3, h, w)).astype(np.float32)
            t_fp32 = statistics.median(time_session(fp32, x, args.warmup, args.repeats, args.threads))
            t_int8 = statistics.median(time_session(int8, x, args.warmup, args.repeats, args.threads))
            agree = onnx_agreement(fp32, int8, inputs[args.calib_images :], threads=args.threads)
            rows.append((size, f"{h}x{w}", t_fp32, t_int8, quant_s, agree))

    print(f"# int8 vs fp32, ONNX Runtime {onnxruntime.__version__} CPU, torch {torch.__version__}")
    print(
        f"# {dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC, {lscpu_model()}, {torch.get_num_threads()} threads"
    )
    print(f"# weights: {args.weights}, flip={flip}, calibration: {args.calib_images} generated frames "
          f"({args.method}), agreement on {args.holdout} held-out generated frames")  # fmt: skip
    print("| size | input | fp32 ms | int8 ms | speed-up | quantise s | hm max err | hm mean err "
          "| peak agr. | people agr. | keypoint agr. |")  # fmt: skip
    print("|---|---|---|---|---|---|---|---|---|---|---|")

    def pct(v: float | None) -> str:
        return "n/a" if v is None else f"{100 * v:.1f}%"

    for size, shape, t32, t8, qs, a in rows:
        print(
            f"| {size} | {shape} | {1000 * t32:.0f} | {1000 * t8:.0f} | {t32 / t8:.2f}x | {qs:.0f} "
            f"| {a['heatmap_max_abs']:.3f} | {a['heatmap_mean_abs']:.4f} | {pct(a['peak_agreement'])} "
            f"| {pct(a.get('people_agreement'))} ({a.get('people_fp32')}/{a.get('people_other')}) "
            f"| {pct(a.get('keypoint_agreement'))} |"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
