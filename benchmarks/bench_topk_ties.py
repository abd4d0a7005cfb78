"""NMS + top-k of one 17 x 512 x 704 map set with the two orders of equal peaks (DecodeParams.topk_ties):
"cpu" (torch's CPU kernel, replayed only for joints with ties or k candidates) and "index". Both run
interleaved in one process, so machine load hits both alike; minimum over repeats, milliseconds.

    python benchmarks/bench_topk_ties.py
"""

import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # measure this checkout

import numpy as np  # noqa: E402

from hhrnet_rt.decode.peaks import float32_threshold, top_k_peaks  # noqa: E402
from hhrnet_rt.decode.synthetic import synthesize  # noqa: E402

print("| people | background | maps | cpu order ms | index order ms |")
print("|---|---|---|---|---|")
for people, bg, levels in ((20, 0.0, 0), (20, 0.02, 0), (20, 0.0, 16)):
    m = synthesize(people, 17, 512, 704, 2, seed=1, sigma=4.0, background=bg)
    hm = m.heatmaps if not levels else (np.round(m.heatmaps * levels) / levels).astype(np.float32)
    thr = float32_threshold(0.1)
    best = {True: 1e9, False: 1e9}
    for order in (True, False):
        top_k_peaks(hm, thr, 30, 2, order)
    for _ in range(40):
        for order in (True, False):
            t0 = time.perf_counter()
            top_k_peaks(hm, thr, 30, 2, order)
            best[order] = min(best[order], time.perf_counter() - t0)
    kind = f"rounded to 1/{levels} (ties)" if levels else "as made"
    print(f"| {people} | {bg} | {kind} | {best[True] * 1e3:.3f} | {best[False] * 1e3:.3f} |")
