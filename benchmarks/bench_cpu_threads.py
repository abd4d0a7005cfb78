"""ONNX Runtime's thread settings in the THREADED pipeline (issue 13 item 3), all in ONE interleaved run.

In ``hhrt video`` inference shares the CPU with the capture, decode and draw/write threads. ORT's pool
threads spin-wait between operators by default (``session.intra_op.allow_spinning``), which keeps a
core busy that decode or draw needs; fewer intra-op threads (cores - 1) leaves one free outright.
This runs the real pipeline (``run_pipeline``, mp4 + JSON lines sinks, as ``hhrt video``) on a
generated 640x480 H.264 clip with each setting:

* ``spin off`` / ``spin on``  x  ``threads default`` (ORT: one per physical core) / ``cores - 1``,

round r runs every setting once before round r+1 (a load change hits all alike), and prints the FPS
of every run and the median per setting. hhrt's default (``OnnxRuntimeBackend``: spinning off, ORT's
thread count) is chosen by these figures; see README "CPU".

Figures must be taken on a quiet machine; from the repository root:

    python benchmarks/bench_cpu_threads.py --model w32 --frames 8 --rounds 3     # the recorded figures
    python benchmarks/bench_cpu_threads.py --model tiny --frames 6 --rounds 1 --size 128   # smoke test
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))

from bench_cpu import load  # noqa: E402
from bench_pipeline import make_clip, run_once  # noqa: E402


def settings(cores: int) -> dict[str, dict]:
    fewer = max(1, cores - 1)
    return {
        "spin off, threads default": {"spinning": False, "threads": None},
        "spin on, threads default": {"spinning": True, "threads": None},
        f"spin off, threads {fewer}": {"spinning": False, "threads": fewer},
        f"spin on, threads {fewer}": {"spinning": True, "threads": fewer},
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="w32", choices=["w32", "tiny"])
    parser.add_argument("--size", type=int, default=512, help="input size (smoke tests: smaller)")
    parser.add_argument("--frames", type=int, default=8, help="frames of the generated clip")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()

    import onnxruntime as ort

    from hhrnet_rt.bench.run import describe_machine, in_worker_thread
    from hhrnet_rt.export.build import export_graph
    from hhrnet_rt.runtime.backends.onnxruntime_backend import OnnxRuntimeBackend
    from hhrnet_rt.runtime.estimator import PoseEstimator

    cores = os.cpu_count() or 2
    fps: dict[str, list[float]] = {}
    with tempfile.TemporaryDirectory(prefix="hhrt-bench-threads-") as tmp:
        work = Path(tmp)
        clip = make_clip(work / "clip.mp4", args.frames)
        onnx_file = export_graph(load(args.model), work / "graph.onnx", flip=True, input_size=args.size)
        est = PoseEstimator(
            None, input_size=args.size, flip=True, backend="onnxruntime", engine=str(onnx_file)
        )
        backends = {name: OnnxRuntimeBackend(onnx_file, **kw) for name, kw in settings(cores).items()}
        import numpy as np

        warm = np.zeros((480, 640, 3), np.uint8)
        for backend in backends.values():  # sessions warmed up, Numba loaded, before any timing
            est.backend = backend
            in_worker_thread(lambda: est.predict(warm))
        for _ in range(args.rounds):
            for name, backend in backends.items():
                est.backend = backend
                fps.setdefault(name, []).append(run_once(clip, est, work, threaded=True).fps)
    machine = describe_machine()
    print(f"# bench_cpu_threads: {args.model}, input {args.size}, flip, {args.frames}-frame 640x480 clip, threaded "
          f"pipeline; {machine['cpu']} ({cores} cores), ORT {ort.__version__}, OMP_WAIT_POLICY="
          f"{os.environ.get('OMP_WAIT_POLICY')}, load avg {os.getloadavg()[0]:.2f}; {args.rounds} rounds\n")  # fmt: skip
    print("| ORT setting | median FPS | vs hhrt default | every run |\n|---|---|---|---|")
    base = statistics.median(fps["spin off, threads default"])
    for name, values in fps.items():
        med = statistics.median(values)
        print(f"| {name} | {med:.3f} | {med / base:.2f}x | {', '.join(f'{v:.3f}' for v in values)} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
