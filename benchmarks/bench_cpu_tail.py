"""The work around the network on the CPU (issue 13 item 2), before and after planar tags, in ONE run.

ONNX Runtime fp32 (every file through hhrt's ``OnnxRuntimeBackend``: the same session settings and output
reuse), one 640x480 frame preprocessed at the official setting (input 512, flip), timed
interleaved in a worker thread (as the pipeline runs inference; round r runs every variant once before
round r+1, so a load change hits all alike):

* ``net``: the bare network forward on the flip batch ``[x, flip(x)]`` (what no tail can avoid);
* ``graph``: the exported PoseGraph as hhrt runs it now (tags leave as planes, (N, K, L, H, W));
* ``graph-interleaved``: the same graph with tags stacked per pixel (N, K, H, W, L), as before;
* ``e2e``: ``PoseEstimator.predict`` on the frame (preprocess, graph, decode) with the reused output
  buffers (OutputRing), and ``e2e-fresh`` with fresh output arrays every frame.

Reported: medians; ``tail`` = graph - net (flip-back, averaging, projection, tag layout) and
``alloc`` = e2e-fresh - e2e, each as a share of the e2e frame (target: tail + alloc <= 2%), and
e2e / net (target <= 1.05x; e2e also holds preprocessing and the decode). The same tail is shown for
torch (the ``torch`` backend's graph) when ``--torch`` is given.

Figures must be taken on a quiet machine; from the repository root:

    python benchmarks/bench_cpu_tail.py --model w32 --rounds 5 --torch     # the recorded figures
    python benchmarks/bench_cpu_tail.py --model tiny --rounds 1 --size 128   # smoke test (seconds)
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))

from bench_cpu import generated_frames, load  # noqa: E402


def graph_modules(network: Any) -> dict[str, Any]:
    """The three computations compared, as torch modules with one image input."""
    import torch
    from torch import nn

    from hhrnet_rt.model.graph import PoseGraph

    class BareNet(nn.Module):
        """The network on [x, flip(x)]: the flip graph's convolutions and nothing after them."""

        def __init__(self) -> None:
            super().__init__()
            self.network = network

        def forward(self, x):
            return self.network(torch.cat([x, torch.flip(x, [3])], dim=0))

    class Interleaved(nn.Module):
        """The graph with the former output layout: tags stacked on a last dimension."""

        def __init__(self) -> None:
            super().__init__()
            self.graph = PoseGraph(network)

        def forward(self, x):
            heatmaps, tags = self.graph(x)
            return heatmaps, tags.permute(0, 1, 3, 4, 2).contiguous()  # (N, K, H, W, L)

    return {
        "net": BareNet().eval(),
        "graph": PoseGraph(network).eval(),
        "graph-interleaved": Interleaved().eval(),
    }


def export_all(modules: dict[str, Any], folder: Path, size: int) -> dict[str, Path]:
    import torch

    from hhrnet_rt.model.onnx_export import export_onnx

    axes = {"image": {0: "n", 2: "h", 3: "w"}}
    paths = {}
    for name, module in modules.items():
        paths[name] = export_onnx(module, folder / f"{name}.onnx", example_input=torch.zeros(1, 3, size, size),
                                  input_names=["image"], output_names=["heatmaps", "tags"], dynamic_axes=axes)  # fmt: skip
    return paths


def timed(fn) -> float:
    t0 = time.perf_counter()
    fn()
    return 1000 * (time.perf_counter() - t0)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="w32", choices=["w32", "tiny"])
    parser.add_argument("--size", type=int, default=512, help="input size (smoke tests: smaller)")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--threads", type=int, default=None, help="ORT intra-op threads (default: ORT's)")
    parser.add_argument("--torch", action="store_true", help="also time the torch graph's tail")
    args = parser.parse_args()

    import onnxruntime as ort
    import torch

    from hhrnet_rt.bench.run import in_worker_thread
    from hhrnet_rt.export.build import export_graph, preprocess_bgr
    from hhrnet_rt.runtime.backends.onnxruntime_backend import OnnxRuntimeBackend
    from hhrnet_rt.runtime.estimator import PoseEstimator

    network = load(args.model)
    frame = generated_frames(1, seed=7)[0]
    x = preprocess_bgr(frame, args.size)
    modules = graph_modules(network)
    times: dict[str, list[float]] = {}
    with tempfile.TemporaryDirectory(prefix="hhrt-bench-tail-") as tmp:
        paths = export_all(modules, Path(tmp), args.size)
        # The same session settings (spinning off, threads) and output reuse as hhrt's backend, for all.
        sessions = {n: OnnxRuntimeBackend(p, threads=args.threads) for n, p in paths.items()}
        hhrt_file = export_graph(network, Path(tmp) / "hhrt.onnx", flip=True, input_size=args.size)
        est = PoseEstimator(
            None, input_size=args.size, flip=True, backend="onnxruntime", engine=str(hhrt_file)
        )
        reuse = OnnxRuntimeBackend(hhrt_file, threads=args.threads)
        fresh = OnnxRuntimeBackend(hhrt_file, threads=args.threads, reuse_outputs=False)

        def e2e(backend):
            est.backend = backend
            return lambda: est.predict(frame)

        runs = {name: (lambda s=s: s.run(x)) for name, s in sessions.items()}
        runs["e2e"], runs["e2e-fresh"] = e2e(reuse), e2e(fresh)
        if args.torch:
            xt = torch.from_numpy(x)
            for name in ("net", "graph", "graph-interleaved"):
                runs[f"torch {name}"] = lambda m=modules[name]: torch.inference_mode()(m)(xt)
        for fn in runs.values():  # warm-up
            in_worker_thread(fn)
        for _ in range(args.rounds):
            for name, fn in runs.items():
                times.setdefault(name, []).append(in_worker_thread(lambda fn=fn: timed(fn)))
    med = {name: statistics.median(v) for name, v in times.items()}
    print(f"# bench_cpu_tail: {args.model}, input {args.size} (frame 640x480 -> {x.shape[2]}x{x.shape[3]}), flip, "
          f"ORT {ort.__version__}, torch {torch.__version__} ({torch.get_num_threads()} threads), "
          f"{args.rounds} rounds, medians\n")  # fmt: skip
    print("| what | ms |\n|---|---|")
    for name, ms in med.items():
        print(f"| {name} | {ms:.1f} |")
    alloc = med["e2e-fresh"] - med["e2e"]
    print(
        "\n| tags | tail ms (graph - net) | tail / e2e | tail + alloc / e2e | e2e / net |\n|---|---|---|---|---|"
    )
    for label, graph in (("planar (now)", "graph"), ("interleaved (before)", "graph-interleaved")):
        tail = med[graph] - med["net"]
        e2e_ms = med["e2e"] + (med[graph] - med["graph"])  # the before frame: the same, with its graph
        print(f"| {label} | {tail:.1f} | {100 * tail / e2e_ms:.1f}% | {100 * (tail + alloc) / e2e_ms:.1f}% "
              f"| {e2e_ms / med['net']:.3f}x |")  # fmt: skip
    print(f"\nalloc (e2e-fresh - e2e) = {alloc:.1f} ms")
    if args.torch:
        for label, graph in (
            ("planar (now)", "torch graph"),
            ("interleaved (before)", "torch graph-interleaved"),
        ):
            print(f"torch tail, {label}: {med[graph] - med['torch net']:.1f} ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())
