"""Throughput of the threaded video pipeline vs a sequential loop of the same stages vs its slowest stage.

For each model, on a generated 640x480 video, with the same sinks as ``hhrt video`` (mp4 + JSON lines):

1. sequential: ``run_pipeline(..., threaded=False)``: capture, preprocess, inference, decode, draw and
   write one after another in one thread. Its per-stage timings are each stage running alone (nothing
   else competes for the CPU), so the slowest stage's own throughput is ``1 / mean(duration)`` of it.
2. threaded: ``run_pipeline(...)``, the four threads joined by bounded queues.

Target: threaded FPS >= 0.9 x the slowest stage's own FPS (the stages overlap almost perfectly).

Usage:
    python benchmarks/bench_pipeline.py                       # tiny (20 frames) and W32-512 (3 frames)
    python benchmarks/bench_pipeline.py --models tiny --frames-tiny 60 --backend onnxruntime

W32-512 is random-init (no download) and takes seconds per frame on a 2-core CPU, hence few frames.
"""

from __future__ import annotations

import argparse
import datetime
import platform
import subprocess
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

from hhrnet_rt.runtime.estimator import PoseEstimator
from hhrnet_rt.video import FileSource, JsonLinesSink, Mp4Sink, run_pipeline

GOLDEN_TINY = Path(__file__).resolve().parents[1] / ".." / "shared" / "golden" / "tiny_model.npz"


def make_clip(path: Path, frames: int, width: int = 640, height: int = 480, fps: int = 30) -> Path:
    """A moving pattern (blobs on a gradient), H.264: enough detail that decode and encode do real work."""
    import av

    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    centres = rng.uniform([0, 0], [width, height], size=(6, 2))
    velocity = rng.uniform(-6, 6, size=(6, 2))
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=fps)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        for i in range(frames):
            image = (xx / width * 120 + yy / height * 60).astype(np.float32)
            for (cx, cy), (vx, vy) in zip(centres, velocity, strict=True):
                x, y = (cx + vx * i) % width, (cy + vy * i) % height
                image += 120 * np.exp(-((xx - x) ** 2 + (yy - y) ** 2) / (2 * 30.0**2))
            gray = np.clip(image, 0, 255).astype(np.uint8)
            bgr = np.stack([gray, np.roll(gray, 40, axis=1), 255 - gray], axis=2)
            for packet in stream.encode(av.VideoFrame.from_ndarray(bgr, format="bgr24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def run_once(clip: Path, estimator, out_dir: Path, *, threaded: bool):
    """One run. Both kinds are started from a worker thread, never the main thread: on an oversubscribed
    CPU, torch's OpenMP team in the main thread was measured 3-8x slower than in any other thread (active
    spin-waiting; OMP_WAIT_POLICY=PASSIVE removes the gap), which would flatter the threaded pipeline."""
    source = FileSource(clip)
    tag = "threaded" if threaded else "sequential"
    sinks = [  # the repeats write the same scratch files: each replaces the previous one on purpose
        Mp4Sink(out_dir / f"{tag}.mp4", source.fps, rate=source.rate, overwrite=True),
        JsonLinesSink(out_dir / f"{tag}.jsonl", overwrite=True),
    ]
    box = {}
    worker = threading.Thread(
        target=lambda: box.setdefault("r", run_pipeline(source, estimator, sinks, threaded=threaded))
    )
    worker.start()
    worker.join()
    if "r" not in box:
        raise SystemExit(f"the {tag} run failed (see the traceback above)")
    return box["r"]


def bench_model(name: str, weights, frames: int, args, work: Path) -> dict:
    clip = make_clip(work / f"clip_{frames}.mp4", frames)
    estimator = PoseEstimator(weights, input_size=args.input_size, backend=args.backend, device="cpu")
    warm = FileSource(clip)
    image = warm.read().image
    warmup = threading.Thread(target=estimator.predict, args=(image,))  # Numba cache, allocator, ORT session
    warmup.start()
    warmup.join()
    warm.close()
    # Alternate the two kinds and keep the fastest of each: other processes loading the CPU then
    # penalise both about equally instead of whichever ran during a busy spell.
    seqs, thrs = [], []
    for _ in range(args.repeat):
        seqs.append(run_once(clip, estimator, work, threaded=False))
        thrs.append(run_once(clip, estimator, work, threaded=True))
    seq = max(seqs, key=lambda r: r.fps)
    thr = max(thrs, key=lambda r: r.fps)
    # A stage alone: its mean duration in the sequential run. draw+write run in one thread, so they count
    # as one stage here, as do preprocess+inference.
    stage_s = {s: seq.stages[s].mean_ms / 1e3 for s in seq.stages}
    groups = {
        "capture": stage_s["capture"],
        "preprocess+inference": stage_s["preprocess"] + stage_s["inference"],
        "decode": stage_s["decode"],
        "draw+write": stage_s["draw"] + stage_s["write"],
    }
    slowest = max(groups, key=groups.get)
    slowest_fps = 1.0 / groups[slowest]
    return {
        "model": name,
        "frames": frames,
        "stage_ms": {k: 1e3 * v for k, v in groups.items()},
        "slowest": slowest,
        "slowest_fps": slowest_fps,
        "sequential_fps": seq.fps,
        "threaded_fps": thr.fps,
        "all_fps": ([r.fps for r in seqs], [r.fps for r in thrs]),
        "ratio": thr.fps / slowest_fps,
        "speedup": thr.fps / seq.fps,
        "waits": {k: (w.put_s, w.get_s) for k, w in thr.queue_waits.items()},
        "describe": estimator.describe(),
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--models", default="tiny,w32", help="comma list of tiny, w32")
    parser.add_argument("--frames-tiny", type=int, default=20)
    parser.add_argument("--frames-w32", type=int, default=3)
    parser.add_argument("--input-size", type=int, default=512)
    parser.add_argument("--repeat", type=int, default=2, help="alternating runs of each kind; best is kept")
    parser.add_argument("--backend", default="torch", choices=["torch", "onnxruntime"])
    args = parser.parse_args()
    cpu = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
    model_name = next(
        (ln.split(":", 1)[1].strip() for ln in cpu.splitlines() if ln.startswith("Model name")), "?"
    )
    import os

    print(f"date: {datetime.datetime.now(datetime.UTC):%Y-%m-%d %H:%M} UTC; cpu: {model_name}, "
          f"{os.cpu_count()} cores; python {platform.python_version()}; backend {args.backend}; "
          f"input size {args.input_size}; flip on; 640x480 H.264 input, mp4 + jsonl sinks; "
          f"best of {args.repeat} alternating runs")  # fmt: skip
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        for model in args.models.split(","):
            t0 = time.perf_counter()
            if model == "tiny":
                rows.append(bench_model("tiny (golden)", GOLDEN_TINY.resolve(), args.frames_tiny, args, work))
            elif model == "w32":
                rows.append(bench_model("W32-512 (random init)", "random", args.frames_w32, args, work))
            else:
                raise SystemExit(f"unknown model {model!r}")
            print(f"  {model}: {time.perf_counter() - t0:.0f} s")
    print()
    print("| model | frames | capture ms | preprocess+inference ms | decode ms | draw+write ms | slowest stage "
          "alone FPS | sequential FPS | threaded FPS | threaded / slowest | threaded / sequential |")  # fmt: skip
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        ms = r["stage_ms"]
        print(f"| {r['model']} | {r['frames']} | {ms['capture']:.1f} | {ms['preprocess+inference']:.1f} | "
              f"{ms['decode']:.1f} | {ms['draw+write']:.1f} | {r['slowest_fps']:.2f} ({r['slowest']}) | "
              f"{r['sequential_fps']:.2f} | {r['threaded_fps']:.2f} | {r['ratio']:.2f} | {r['speedup']:.2f} |")  # fmt: skip
    print()
    print("every run (FPS):")
    for r in rows:
        seq_all, thr_all = r["all_fps"]
        print(f"- {r['model']}: sequential {', '.join(f'{v:.2f}' for v in seq_all)}; "
              f"threaded {', '.join(f'{v:.2f}' for v in thr_all)}")  # fmt: skip
    print()
    print("queue waits in the threaded run (seconds; put = producer blocked on a full queue, get = consumer "
          "idle on an empty one):")  # fmt: skip
    for r in rows:
        waits = ", ".join(f"{k} put {p:.2f} / get {g:.2f}" for k, (p, g) in r["waits"].items())
        print(f"- {r['model']}: {waits}")


if __name__ == "__main__":
    main()
