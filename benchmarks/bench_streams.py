"""Several streams through one model: aggregate FPS and p95 latency, batched vs one inference call per frame.

For 1, 2, 4 and 8 streams of the same generated 640x480 clip (each stream its own reader, as
``hhrt video a.mp4 b.mp4 ...`` runs them), two modes:

* ``per-frame``: ``batch=1``, one ``infer`` call per frame (what a single stream always did);
* ``batched``: ``batch=--batch`` (default 8): the batching stage gives the estimator up to that many frames
  per ``infer_batch`` call, across the streams, or consecutive frames of one.

Reported per row: aggregate FPS (frames written by all streams / wall time), the slowest stream's own
FPS, p95 latency capture -> drawn over all frames, and the mean frames per inference call.

Usage (from the repository root; package importable: ``pip install -e .`` or ``PYTHONPATH=.``):
    python benchmarks/bench_streams.py --frames 4 --streams 1,2          # a check that it runs (seconds)
    python benchmarks/bench_streams.py                                    # tiny model, CPU, 60 frames/stream
    python benchmarks/bench_streams.py --model w32 --input-size 256      # W32 (random init) at a small size
    python benchmarks/bench_streams.py --device cuda --model w32 --input-size 512 --precision fp16 \\
        --weights w32_512 --frames 300 --write none --decode-threads 4
                                                      # the H200 figure: target >= 1000 FPS over 8 streams

Figures must be taken on a quiet machine: other processes on the cores change them more than batching
does. On the CPU, batching mostly saves per-call overhead; the figure that matters is the GPU one, where
a batch of 8 fills the device that one frame leaves mostly idle.
"""

from __future__ import annotations

import argparse
import platform
import sys
import tempfile
import threading
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
GOLDEN_TINY = REPO / ".." / "shared" / "golden" / "tiny_model.npz"
sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_pipeline import make_clip  # noqa: E402  (the same moving-pattern clip as the pipeline bench)

from hhrnet_rt.runtime.estimator import PoseEstimator  # noqa: E402
from hhrnet_rt.video import FileSource, JsonLinesSink, Stream, run_streams  # noqa: E402


def build_estimator(args) -> PoseEstimator:
    weights = args.weights or (GOLDEN_TINY.resolve() if args.model == "tiny" else "random")
    backend = "torch" if args.device.startswith("cuda") else args.backend
    return PoseEstimator(
        weights, input_size=args.input_size, backend=backend, device=args.device, precision=args.precision
    )


def warm(estimator, clip: Path, batch: int) -> None:
    """One-off costs (Numba cache, allocator, cuDNN autotuning for batch 1 and ``batch``) before timing."""
    source = FileSource(clip)
    image = source.read().image
    source.close()
    estimator.warmup(image.shape[:2])
    infer_batch = getattr(estimator, "infer_batch", None)
    if infer_batch is not None and batch > 1:
        for _ in range(2):
            infer_batch([estimator.prepare(image) for _ in range(batch)])


def run_once(clip: Path, n: int, estimator, batch: int, args, work: Path):
    """One run of ``n`` streams, started from a worker thread (torch's OpenMP team is slower in the main
    thread on a busy CPU; see bench_pipeline.run_once)."""
    streams = []
    for k in range(n):
        source = FileSource(clip)
        sinks = [JsonLinesSink(work / f"s{k}.jsonl", overwrite=True)] if args.write == "json" else []
        streams.append(Stream(source, sinks, name=f"stream{k}"))
    box: dict = {}

    def target() -> None:
        box["r"] = run_streams(
            streams,
            estimator,
            batch=batch,
            max_wait_ms=args.max_wait_ms,
            decode_threads=args.decode_threads,
            draw=args.draw,
            queue_size=max(4, batch),
        )

    worker = threading.Thread(target=target)
    worker.start()
    worker.join()
    if "r" not in box:
        raise SystemExit("a run failed (see the traceback above)")
    return box["r"]


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--streams", default="1,2,4,8", help="comma list of stream counts")
    parser.add_argument("--frames", type=int, default=60, help="frames per stream (the clip's length)")
    parser.add_argument("--batch", type=int, default=8, help="frames per call in the batched mode")
    parser.add_argument("--max-wait-ms", type=float, default=10.0)
    parser.add_argument("--decode-threads", type=int, default=1, help="run_streams(decode_threads=...)")
    parser.add_argument("--model", choices=["tiny", "w32"], default="tiny")
    parser.add_argument("--weights", default=None, help="default: the golden tiny model, or random W32")
    parser.add_argument("--input-size", type=int, default=None, help="default: 128 tiny, 256 w32")
    parser.add_argument("--device", default="cpu", help="cpu, or cuda (torch on the GPU)")
    parser.add_argument("--backend", default="onnxruntime", choices=["torch", "onnxruntime"], help="CPU only")
    parser.add_argument("--precision", default=None, help="fp16 with --device cuda")
    parser.add_argument("--write", choices=["none", "json"], default="json", help="sinks of each stream")
    parser.add_argument("--draw", action="store_true", help="also draw the people (as hhrt video does)")
    parser.add_argument("--repeat", type=int, default=1, help="runs per row; the fastest is kept")
    args = parser.parse_args()
    args.input_size = args.input_size or (128 if args.model == "tiny" else 256)
    counts = [int(x) for x in args.streams.split(",")]

    estimator = build_estimator(args)
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        clip = make_clip(work / "clip.mp4", args.frames)
        warm(estimator, clip, args.batch)
        facts = estimator.describe()
        print(
            f"# bench_streams: {args.model} input {args.input_size}, {facts.get('backend')} on {args.device}"
            f" {facts.get('precision', '')}, {args.frames} frames/stream, 640x480, write={args.write}, "
            f"draw={args.draw}; {platform.processor() or platform.machine()}"
        )
        print(
            "| streams | mode | batch | aggregate FPS | slowest stream FPS | p95 latency ms | frames/call |"
        )
        print("|---:|---|---:|---:|---:|---:|---:|")
        for n in counts:
            for mode, batch in (("per-frame", 1), ("batched", args.batch)):
                runs = [run_once(clip, n, estimator, batch, args, work) for _ in range(args.repeat)]
                r = max(runs, key=lambda x: x.fps)
                assert r.frames_written == n * args.frames, "a stream lost frames"
                slowest = min(s.fps for s in r.streams)
                print(
                    f"| {n} | {mode} | {batch} | {r.fps:.1f} | {slowest:.1f} | {r.latency.p95_ms:.0f} | "
                    f"{r.mean_batch:.2f} |",
                    flush=True,
                )


if __name__ == "__main__":
    main()
