"""Time to plan the outputs of N inputs before the first frame (``hhrt video DIR --out OUT/ --json OUT/``).

Planning is what runs between the command line and the model: expanding the inputs (folders, patterns),
checking each one is a readable regular file, and choosing and checking every output name (never an
input, never an existing file without --overwrite). It must be linear in the number of inputs.

Usage:
    python benchmarks/bench_plan.py                 # 1000, 2000, 4000, 10000 inputs
    python benchmarks/bench_plan.py --counts 500 1000

The inputs are empty files named like videos (planning opens none of them); everything happens in a
temporary folder that is removed afterwards.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from hhrnet_rt.cli.inputs_expand import expand_videos  # noqa: E402
from hhrnet_rt.cli.targets import plan_video_outputs  # noqa: E402
from hhrnet_rt.core.inputs import check_input_file  # noqa: E402


def plan_seconds(root: Path, n: int) -> tuple[float, float, int]:
    """(seconds to expand + check the inputs, seconds to plan the outputs, planned inputs)."""
    folder = root / f"in{n}"
    folder.mkdir()
    for i in range(n):
        (folder / f"clip_{i:05d}.mp4").touch()
    out = root / f"out{n}"
    t0 = time.perf_counter()
    sources = expand_videos([str(folder)])
    for source in sources:
        check_input_file(source, "video file")
    t1 = time.perf_counter()
    plan = plan_video_outputs(sources, out, out, None, run_dir=None, overwrite=False)
    t2 = time.perf_counter()
    return t1 - t0, t2 - t1, len(plan)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--counts", type=int, nargs="+", default=[1000, 2000, 4000, 10000])
    args = parser.parse_args()
    print("| inputs | expand + check inputs (s) | plan outputs (s) | total (s) | µs per input |")
    print("|---:|---:|---:|---:|---:|")
    with tempfile.TemporaryDirectory(prefix="hhrt-bench-plan-") as tmp:
        for n in args.counts:
            expand, plan, planned = plan_seconds(Path(tmp), n)
            assert planned == n
            total = expand + plan
            print(f"| {n} | {expand:.2f} | {plan:.2f} | {total:.2f} | {1e6 * total / n:.0f} |", flush=True)


if __name__ == "__main__":
    main()
