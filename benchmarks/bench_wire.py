"""What one frame costs beyond one machine: bytes on the wire each way, and network work per frame.

For the README's "Scale" section (how many streams an H200 could carry, what crosses the network):

- JPEG bytes of a 640x480 frame (what a client sends to ``POST /v1/poses``) at several qualities, for a
  synthetic scene (smooth shading, edges and 1/f texture, made here so the script needs no data) and for
  any photos given with ``--images`` (centre-cropped and resized to 640x480), plus the CPU time of
  ``cv2.imdecode`` on this machine (what a server spends before inference).
- JSON bytes of a result with N people: the record ``hhrt image --json`` writes (``Poses.to_records``,
  x/y rounded to 0.01 px), raw and gzip-compressed.
- Network work per 640x480 frame: floating-point operations of the HigherHRNet forward at the input the
  preprocessing gives that frame (flip test: batch of 2), counted by ``torch.utils.flop_counter`` (exact
  by construction; a count, not a timing).

Sizes and counts do not depend on the machine; the imdecode time does (take it on a quiet machine).

    python benchmarks/bench_wire.py [--images a.jpg ...] [--models w32_512 w48_640] [--out results/x.md]
"""

from __future__ import annotations

import argparse
import datetime
import gzip
import json
import os
import platform
import sys
import time
from pathlib import Path

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # measure this checkout

WIDTH, HEIGHT = 640, 480
QUALITIES = (75, 90, 95)
PEOPLE = (0, 1, 5, 10, 20, 50)


def synthetic_scene(seed: int = 0) -> np.ndarray:
    """A 640x480 BGR picture with photo-like statistics: shading, a few objects, 1/f texture, sensor noise."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:HEIGHT, 0:WIDTH].astype(np.float32)
    image = np.stack([60 + 0.2 * x, 80 + 0.25 * y, 120 + 0.1 * (x + y)], axis=-1)
    for _ in range(12):  # objects with hard edges
        cx, cy, r = rng.integers(0, WIDTH), rng.integers(0, HEIGHT), rng.integers(20, 120)
        cv2.circle(image, (int(cx), int(cy)), int(r), [float(c) for c in rng.integers(0, 255, 3)], -1)
    spectrum = np.fft.fft2(rng.normal(size=(HEIGHT, WIDTH)))
    fy, fx = np.fft.fftfreq(HEIGHT)[:, None], np.fft.fftfreq(WIDTH)[None, :]
    texture = np.real(np.fft.ifft2(spectrum / np.maximum(np.hypot(fx, fy), 1.0 / WIDTH)))
    image += (25 * texture / texture.std())[..., None]
    image += rng.normal(0, 2.0, image.shape)  # sensor noise
    return np.clip(image, 0, 255).astype(np.uint8)


def to_640x480(image: np.ndarray) -> np.ndarray:
    h, w = image.shape[:2]
    scale = max(WIDTH / w, HEIGHT / h)
    resized = cv2.resize(image, (round(w * scale), round(h * scale)), interpolation=cv2.INTER_AREA)
    top, left = (resized.shape[0] - HEIGHT) // 2, (resized.shape[1] - WIDTH) // 2
    return resized[top : top + HEIGHT, left : left + WIDTH]


def jpeg_rows(frames: dict[str, np.ndarray], repeats: int) -> list[str]:
    rows = []
    for name, frame in frames.items():
        sizes = []
        for q in QUALITIES:
            data = cv2.imencode(".jpg", frame, [cv2.IMWRITE_JPEG_QUALITY, q])[1]
            sizes.append(len(data))
        data = cv2.imencode(".jpg", frame, [cv2.IMWRITE_JPEG_QUALITY, 90])[1]
        times = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            cv2.imdecode(data, cv2.IMREAD_COLOR)
            times.append(time.perf_counter() - t0)
        cells = " | ".join(f"{s:,}" for s in sizes)
        rows.append(f"| {name} | {cells} | {1e3 * float(np.median(times)):.2f} |")
    return rows


def json_rows(seed: int = 0) -> list[str]:
    from hhrnet_rt.poses import KEYPOINTS_SCHEMA, Poses

    rng = np.random.default_rng(seed)
    rows = []
    for n in PEOPLE:
        kp = np.empty((n, 17, 3), np.float32)
        kp[..., 0] = rng.uniform(0, WIDTH, (n, 17))
        kp[..., 1] = rng.uniform(0, HEIGHT, (n, 17))
        kp[..., 2] = rng.uniform(0, 1, (n, 17))
        poses = Poses(kp, rng.uniform(0, 1, n).astype(np.float32)) if n else Poses.empty(17)
        record = {"schema": KEYPOINTS_SCHEMA, "image": "frame.jpg", "width": WIDTH, "height": HEIGHT,
                  "people": poses.to_records()}  # fmt: skip
        raw = json.dumps(record).encode()
        rows.append(f"| {n} | {len(raw):,} | {len(gzip.compress(raw)):,} |")
    return rows


def flop_rows(models: list[str]) -> list[str]:
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    from hhrnet_rt.model.higherhrnet import HigherHRNet
    from hhrnet_rt.model.spec import ModelSpec
    from hhrnet_rt.runtime.preprocess import multi_scale_size

    torch.set_num_threads(max(1, os.cpu_count() or 1))
    rows = []
    for name in models:
        spec = ModelSpec.preset(name)
        (w, h), _, _ = multi_scale_size((HEIGHT, WIDTH), spec.input_size)
        net = HigherHRNet(spec).eval()
        with torch.inference_mode(), FlopCounterMode(display=False) as counter:
            net(torch.zeros(2, 3, h, w))  # the flip test: the frame and its mirror in one batch
        flops = counter.get_total_flops()
        rows.append(f"| {name} | {w}x{h} | 2 | {flops / 1e9:.1f} | {flops / 2e9:.1f} |")
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--images", nargs="*", default=[], help="photos to measure besides the synthetic scene"
    )
    parser.add_argument("--models", nargs="*", default=["w32_512", "w48_640"])
    parser.add_argument("--repeats", type=int, default=50, help="imdecode timings per picture")
    parser.add_argument("--out", type=Path, help="also write the report here (Markdown)")
    args = parser.parse_args()

    frames = {"synthetic scene": synthetic_scene()}
    for path in args.images:
        image = cv2.imread(path, cv2.IMREAD_COLOR)
        if image is None:
            sys.exit(f"cannot read {path}")
        frames[Path(path).name] = to_640x480(image)
    load = os.getloadavg() if hasattr(os, "getloadavg") else ("?",)
    lines = [
        "# bench_wire: bytes per frame each way, network work per frame",
        "",
        f"Command: `python benchmarks/bench_wire.py {' '.join(sys.argv[1:])}`",
        f"Machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}, "
        f"OpenCV {cv2.__version__}; load average {load[0]}; "
        f"{datetime.datetime.now(datetime.UTC):%Y-%m-%d %H:%M} UTC.",
        "",
        "## In: a 640x480 frame as JPEG (OpenCV / libjpeg-turbo)",
        "",
        "| picture | " + " | ".join(f"q{q} bytes" for q in QUALITIES) + " | imdecode ms (q90, median) |",
        "|---|" + "---:|" * (len(QUALITIES) + 1),
        *jpeg_rows(frames, args.repeats),
        "",
        "## Out: the JSON result of one frame (the `hhrt image --json` record)",
        "",
        "| people | bytes | gzip bytes |",
        "|---:|---:|---:|",
        *json_rows(),
        "",
        "## Network work per 640x480 frame (flip test: batch of 2)",
        "",
        "| model | network input (w x h) | batch | GFLOP per frame | GFLOP per image |",
        "|---|---|---:|---:|---:|",
        *flop_rows(args.models),
        "",
        "FLOP = 2 x multiply-accumulates (torch.utils.flop_counter's convention: convolutions, transposed",
        "convolutions and matrix products; batch norm and activations are not counted).",
    ]
    report = "\n".join(lines) + "\n"
    print(report)
    if args.out is not None:
        args.out.write_text(report)


if __name__ == "__main__":
    main()
