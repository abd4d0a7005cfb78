"""Peak memory of int8 range calibration (what ``hhrt build-engine --precision int8`` runs for the CPU and
TensorRT targets) against the number of calibration images and the images per ORT ``collect_data`` call.

ONNX Runtime's calibrator keeps every intermediate tensor of every image of one ``collect_data`` call, so
the peak follows the images per call (``CALIB_CHUNK``), not ``--calib-count``. Each row runs in a fresh
process (its peak resident memory is its own); the network is W32 with random weights (the same shapes and
activation sizes as the released checkpoints), exported once with the flip test, calibrated with the
default percentile method on photos of mixed sizes whose network input is 960x512 or close to it.

Usage:
    python benchmarks/bench_calib_memory.py                        # rows: (chunk, images) below
    python benchmarks/bench_calib_memory.py --rows 1:2 1:6 2:4 --input-size 512
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def _images(count: int, input_size: int):
    """Photos of a few sizes (16:9, 4:3, 3:2 landscape): network inputs of different shapes."""
    import numpy as np

    from hhrnet_rt.export.build import preprocess_bgr

    sizes = [(540, 960), (480, 640), (512, 768)]
    rng = np.random.default_rng(0)
    for i in range(count):
        h, w = sizes[(i // 2) % len(sizes)]  # in pairs: a call of 2 images gets one shape
        yield preprocess_bgr(rng.integers(0, 256, (h, w, 3), np.uint8), input_size)


def child(onnx: str, chunk: int, count: int, input_size: int) -> None:
    from hhrnet_rt.export import quantize

    quantize.CALIB_CHUNK = chunk
    with tempfile.TemporaryDirectory(prefix="hhrt-bench-calib-") as tmp:
        start = time.perf_counter()
        quantize.calibrate_ranges(Path(onnx), Path(tmp) / "ranges.json", _images(count, input_size),
                                  method="percentile", op_types=quantize.QUANT_OP_TYPES)  # fmt: skip
        seconds = time.perf_counter() - start
    peak_gib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # KiB on Linux
    print(json.dumps({"seconds": seconds, "peak_gib": peak_gib}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", nargs="+", default=["2:4", "1:2", "1:6"], help="CHUNK:IMAGES per row")
    parser.add_argument("--input-size", type=int, default=512)
    parser.add_argument("--child", nargs=4, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        onnx, chunk, count, size = args.child
        child(onnx, int(chunk), int(count), int(size))
        return
    from hhrnet_rt.export.build import export_graph, load_network

    with tempfile.TemporaryDirectory(prefix="hhrt-bench-calib-") as tmp:
        onnx = Path(tmp) / "w32.fp32.onnx"
        export_graph(load_network("random"), onnx, flip=True, input_size=args.input_size)
        print(f"W32 (random weights), flip, input size {args.input_size}, percentile; mixed photo sizes")
        print("| images per collect_data call | calibration images | peak RSS (GiB) | time (s) |")
        print("|---:|---:|---:|---:|")
        for row in args.rows:
            chunk, count = row.split(":")
            done = subprocess.run([sys.executable, __file__, "--child", str(onnx), chunk, count,
                                   str(args.input_size)], capture_output=True, text=True)  # fmt: skip
            if done.returncode != 0:
                print(f"| {chunk} | {count} | failed: {done.stderr.strip().splitlines()[-1]} | |", flush=True)
                continue
            facts = json.loads(done.stdout.strip().splitlines()[-1])
            print(f"| {chunk} | {count} | {facts['peak_gib']:.2f} | {facts['seconds']:.0f} |", flush=True)


if __name__ == "__main__":
    main()
