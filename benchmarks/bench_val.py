"""How much of an `hhrt val` run is not inference: image reading, the NaN/inf check, the official records
and pycocotools' scoring, against the estimator's own stages (prepare + infer + decode).

Runs ``hhrnet_rt.val.evaluate`` on the four COCO val2017 photos of tests/data/val (each pass over them is
one evaluation; ``--passes`` repeats it) with random-init W32 weights (speed only: the AP is meaningless),
one row per backend / input size, and prints a Markdown table. Target (issue 21): overhead <= 5% of the
run time.

    python benchmarks/bench_val.py [--backends torch onnxruntime] [--sizes 256 512] [--passes 3]
"""

from __future__ import annotations

import argparse
import datetime
import platform
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # measure this checkout

from hhrnet_rt import PoseEstimator  # noqa: E402
from hhrnet_rt.val import evaluate  # noqa: E402

DATA = Path(__file__).resolve().parents[1] / "tests" / "data" / "val" / "coco"


def cpu_model() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--backends", nargs="+", default=["torch", "onnxruntime"])
    ap.add_argument("--sizes", nargs="+", type=int, default=[256, 512])
    ap.add_argument("--passes", type=int, default=3)
    args = ap.parse_args()
    import os

    print(
        f"# bench_val -- {datetime.date.today()}, {cpu_model()}, {os.cpu_count()} cores, python {platform.python_version()}"
    )
    print(f"command: python benchmarks/bench_val.py --backends {' '.join(args.backends)} "
          f"--sizes {' '.join(map(str, args.sizes))} --passes {args.passes}\n")  # fmt: skip
    print(
        "| backend | input | images | run s | estimator s | reading+checks+records s | scoring s | overhead |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for backend in args.backends:
        for size in args.sizes:
            est = PoseEstimator("random", input_size=size, backend=backend, device="cpu")
            evaluate(est, DATA, DATA / "test_coco.json", max_images=1)  # warm-up: exports, kernels, caches
            total = model = scoring = 0.0
            images = 0
            for _ in range(args.passes):
                t0 = time.perf_counter()
                report = evaluate(est, DATA, DATA / "test_coco.json")
                total += time.perf_counter() - t0
                model += report.seconds["model"]
                scoring += report.seconds["evaluation"]
                images += report.images
            other = total - model - scoring
            print(f"| {backend} | {size} | {images} | {total:.2f} | {model:.2f} | {other:.3f} | {scoring:.3f} | "
                  f"{100 * (total - model) / total:.1f}% |")  # fmt: skip


if __name__ == "__main__":
    main()
