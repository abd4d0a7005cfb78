"""Network forward latency: PyTorch CPU vs ONNX Runtime CPU, for W32-512 and the golden tiny model.

Prints a table (median and min of ``--repeats`` timed runs after ``--warmup`` untimed ones) and the
machine it ran on. Weights: W32-512 is random-init (latency does not depend on the values); the tiny
model is ../shared/golden/tiny_model.npz. The ONNX files come from hhrnet_rt.model.onnx_export.export_onnx
(fp32, dynamic N/H/W), exported once into a temporary directory (export time is not part of the table).

Run from the repository root:
    python benchmarks/bench_model.py --repeats 10
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from hhrnet_rt.model.higherhrnet import HigherHRNet
from hhrnet_rt.model.onnx_export import export_onnx
from hhrnet_rt.model.spec import ModelSpec
from hhrnet_rt.model.weights import build_from_checkpoint

REPO = Path(__file__).resolve().parents[1]
GOLDEN_TINY = REPO.parent / "shared" / "golden" / "tiny_model.npz"


def machine() -> dict[str, str]:
    """lscpu model name and core count, versions, thread settings, load average."""
    info = {"cpu": platform.processor() or platform.machine(), "cores": str(os.cpu_count())}
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, check=True).stdout
        fields = dict(line.split(":", 1) for line in out.splitlines() if ":" in line)
        info["cpu"] = fields.get("Model name", info["cpu"]).strip()
        info["cores"] = f"{fields.get('CPU(s)', '?').strip()} logical"
    except (OSError, subprocess.CalledProcessError):
        pass
    import onnxruntime as ort

    info.update(
        python=platform.python_version(),
        torch=torch.__version__,
        onnxruntime=ort.__version__,
        torch_threads=str(torch.get_num_threads()),
        load_average=" ".join(f"{x:.2f}" for x in os.getloadavg()),
    )
    return info


def time_runs(fn, warmup: int, repeats: int) -> tuple[float, float]:
    """(median, min) seconds of ``repeats`` calls after ``warmup`` untimed ones."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), min(times)


def bench_case(label, model, size, tmp, args) -> list[tuple]:
    import onnxruntime as ort

    x = torch.from_numpy(np.random.default_rng(0).standard_normal((1, 3, size, size), dtype=np.float32))
    onnx_path = export_onnx(
        model,
        Path(tmp) / f"{label}.onnx",
        example_input=torch.zeros(1, 3, 128, 128),
        input_names=["image"],
        output_names=["out4", "out2"],
        dynamic_axes={"image": {0: "N", 2: "H", 3: "W"}},
    )
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = args.threads
    sess = ort.InferenceSession(str(onnx_path), opts, providers=["CPUExecutionProvider"])
    feed = {"image": x.numpy()}

    def run_torch():
        with torch.inference_mode():
            model(x)

    rows = []
    for backend, fn in (("torch", run_torch), ("onnxruntime", lambda: sess.run(None, feed))):
        med, best = time_runs(fn, args.warmup, args.repeats)
        rows.append((label, f"{size}x{size}", backend, med * 1e3, best * 1e3))
        print(f"  {label} {size} {backend}: median {med * 1e3:.1f} ms", file=sys.stderr, flush=True)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--repeats", type=int, default=10, help="timed runs per case (median reported)")
    parser.add_argument("--warmup", type=int, default=2, help="untimed runs before timing")
    parser.add_argument("--threads", type=int, default=torch.get_num_threads(), help="torch and ORT threads")
    parser.add_argument("--skip-w32", action="store_true", help="only the tiny model (quick check)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    w32 = HigherHRNet(ModelSpec.preset("w32_512")).eval()
    tiny, _ = build_from_checkpoint(GOLDEN_TINY)
    n_w32 = sum(p.numel() for p in w32.parameters())
    n_w48 = sum(p.numel() for p in HigherHRNet(ModelSpec.preset("w48_640")).parameters())
    n_tiny = sum(p.numel() for p in tiny.parameters())

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        cases = [("tiny", tiny, 256), ("tiny", tiny, 512)]
        if not args.skip_w32:
            cases.append(("W32", w32, 512))
        for label, model, size in cases:
            rows += bench_case(label, model, size, tmp, args)

    info = machine()
    print(f"date (UTC): {dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M}")
    print(f"command: python {' '.join(sys.argv)}")
    for k, v in info.items():
        print(f"{k}: {v}")
    print(f"ORT intra_op_num_threads: {args.threads}; warm-up {args.warmup}, timed runs {args.repeats}")
    print(f"parameters: W32 {n_w32:,}  W48 {n_w48:,}  tiny {n_tiny:,}\n")
    print("| model | input | backend | median ms | min ms |")
    print("|---|---|---|---:|---:|")
    for label, size, backend, med, best in rows:
        print(f"| {label} | {size} | {backend} | {med:.1f} | {best:.1f} |")


if __name__ == "__main__":
    main()
