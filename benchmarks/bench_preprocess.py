"""Cost of PoseEstimator.prepare (validation + official resize-align + normalisation) per frame.

Compares the package's path (warp the BGR frame, then one lookup-table pass that also swaps BGR->RGB)
with the straightforward official-style path (cvtColor, warp, float conversion, /255, (t - mean) / std).
Both give bit-identical arrays (checked before timing).

Usage:
    python benchmarks/bench_preprocess.py                    # 640x480 and 1920x1080 at input size 512
    python benchmarks/bench_preprocess.py --repeats 200 --input-size 640
"""

from __future__ import annotations

import argparse
import datetime
import platform
import subprocess
import time

import cv2
import numpy as np

from hhrnet_rt.runtime.preprocess import MEAN, STD, as_bgr_u8, normalize, resize_align


def official_style(image_bgr: np.ndarray, input_size: int) -> np.ndarray:
    rgb = cv2.cvtColor(image_bgr, cv2.COLOR_BGR2RGB)
    resized, _ = resize_align(rgb, input_size)
    t = resized.transpose(2, 0, 1).astype(np.float32) / np.float32(255)
    return ((t - MEAN[:, None, None]) / STD[:, None, None])[None]


def package(image_bgr: np.ndarray, input_size: int) -> np.ndarray:
    resized, _ = resize_align(as_bgr_u8(image_bgr), input_size)
    return normalize(resized, bgr=True)


def median_ms(fn, *args, repeats: int) -> float:
    fn(*args)
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn(*args)
        times.append(time.perf_counter() - t0)
    return 1000 * float(np.median(times))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--input-size", type=int, default=512)
    parser.add_argument("--repeats", type=int, default=100)
    args = parser.parse_args()
    cpu = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
    model = next((line.split(":", 1)[1].strip() for line in cpu.splitlines() if "Model name" in line), "?")
    print(f"# {datetime.datetime.now(datetime.UTC):%Y-%m-%d %H:%M} UTC, {model}, {platform.python_version()}")
    print("| frame | network input | official-style ms | package ms | speed-up |")
    print("|---|---|---|---|---|")
    rng = np.random.default_rng(0)
    for h, w in ((480, 640), (1080, 1920)):
        frame = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
        a, b = official_style(frame, args.input_size), package(frame, args.input_size)
        assert np.array_equal(a, b), "the two paths disagree"
        t_off = median_ms(official_style, frame, args.input_size, repeats=args.repeats)
        t_pkg = median_ms(package, frame, args.input_size, repeats=args.repeats)
        size = f"{b.shape[3]}x{b.shape[2]}"
        print(f"| {w}x{h} | {size} | {t_off:.2f} | {t_pkg:.2f} | {t_off / t_pkg:.1f}x |")


if __name__ == "__main__":
    main()
