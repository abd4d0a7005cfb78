"""How long ``hhrt demo`` takes, as a new user runs it: a first run with empty caches (the ONNX export and
the decoder's compile happen then) and the runs after it (warm caches).

Each run is a fresh ``python -m hhrnet_rt demo`` in a new empty folder, with ``HHRT_CACHE_DIR`` pointing
at a cache folder made for this benchmark (so the first run really starts cold, and nothing of the user's
cache is touched). Prints a markdown table: wall time of the whole command, the FPS of its summary,
whether it ran the real weights or fell back to random ones (offline), and the load average.

    python benchmarks/bench_demo.py [--runs 3] [-- extra demo options, e.g. --no-fast]
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def machine() -> str:
    model = platform.processor() or "unknown CPU"
    try:
        lscpu = subprocess.run(["lscpu"], capture_output=True, text=True, timeout=10).stdout
        model = re.search(r"Model name:\s*(.+)", lscpu).group(1).strip()  # type: ignore[union-attr]
    except (OSError, AttributeError, subprocess.SubprocessError):
        pass
    return f"{model} ({os.cpu_count()} cores)"


def run_demo(cache: Path, extra: list[str]) -> dict:
    env = {**os.environ, "HHRT_CACHE_DIR": str(cache), "PYTHONPATH": str(REPO)}
    env.pop("NUMBA_CACHE_DIR", None)  # the kernels go under HHRT_CACHE_DIR, cold on the first run
    with tempfile.TemporaryDirectory(prefix="hhrt-demo-") as folder:
        load = os.getloadavg()[0]
        t0 = time.perf_counter()
        done = subprocess.run([sys.executable, "-m", "hhrnet_rt", "demo", *extra], cwd=folder, env=env,
                              capture_output=True, text=True, timeout=1800)  # fmt: skip
        wall = time.perf_counter() - t0
    if done.returncode != 0:
        raise SystemExit(f"hhrt demo failed ({done.returncode}):\n{done.stderr[-3000:]}")
    fps = re.search(r"end-to-end FPS\s*│\s*([\d.]+)", done.stdout)
    loaded = re.search(r"model loaded: ([\d.]+) s", done.stderr)
    return {
        "wall_s": wall,
        "fps": float(fps.group(1)) if fps else float("nan"),
        "load_s": float(loaded.group(1)) if loaded else None,  # said only when over 2 s
        "weights": "random (offline)" if "weights: could not download" in done.stderr else "real",
        "load_avg": load,
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--runs", type=int, default=3, help="runs in all; the first starts with empty caches")
    parser.add_argument("extra", nargs="*", help="options passed on to hhrt demo (after --)")
    args = parser.parse_args()
    started = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")
    with tempfile.TemporaryDirectory(prefix="hhrt-demo-cache-") as cache:
        rows = [run_demo(Path(cache), args.extra) for _ in range(args.runs)]
    print(f"# bench_demo {started}: {machine()}, Python {platform.python_version()}, "
          f"demo options: {' '.join(args.extra) or '(none)'}\n")  # fmt: skip
    print("| run | caches | weights | wall s | model load s | end-to-end FPS | load avg at start |")
    print("|---|---|---|---:|---:|---:|---:|")
    for i, row in enumerate(rows, 1):
        load = f"{row['load_s']:.1f}" if row["load_s"] is not None else "< 2"
        print(f"| {i} | {'empty' if i == 1 else 'warm'} | {row['weights']} | {row['wall_s']:.1f} | {load} | "
              f"{row['fps']:.2f} | {row['load_avg']:.2f} |")  # fmt: skip


if __name__ == "__main__":
    main()
