"""Benchmark of hhrnet_rt.decode.parse on synthetic maps at W32-512 output size (17 x 512 x 704, L=2).

Times each stage (NMS + top-k, grouping, adjust + scores, refine) and the whole ``parse`` (median and
minimum over repeats, one thread), the first call in a fresh process with a warm disk cache, and
checks the output against the plain numpy/torch/munkres-1.1.4 re-statement of the official parser in
tests/decode_reference.py (also timed, once).

    python benchmarks/bench_decode.py [--repeats 30] [--people 1 5 10 20 30] [--out results/x.md]
"""

from __future__ import annotations

import os

os.environ.setdefault("NUMBA_NUM_THREADS", "1")  # the kernels are serial anyway; keep Numba honest

import argparse  # noqa: E402
import datetime  # noqa: E402
import platform  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

# Measure the checkout this script sits in, even when the editable install points at another copy.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from hhrnet_rt.core.tag_layout import by_pixel, planar  # noqa: E402
from hhrnet_rt.decode import parse, warmup  # noqa: E402
from hhrnet_rt.decode.grouping import match_by_tag  # noqa: E402
from hhrnet_rt.decode.params import DecodeParams  # noqa: E402
from hhrnet_rt.decode.peaks import float32_threshold, gather_tags, top_k_peaks  # noqa: E402
from hhrnet_rt.decode.refine import adjust, refine, scores  # noqa: E402
from hhrnet_rt.decode.synthetic import synthesize  # noqa: E402

REPO = Path(__file__).resolve().parents[1]

FIRST_CALL = """
import time
t0 = time.perf_counter()
import numpy as np
from hhrnet_rt.decode import parse
t1 = time.perf_counter()
from hhrnet_rt.core.tag_layout import by_pixel, planar
m = np.load({path!r})
hm, tg = m["heatmaps"], by_pixel(planar(m["tags"]))  # planes seen per pixel, as the estimator passes them
t2 = time.perf_counter()
parse(hm, tg)
t3 = time.perf_counter()
parse(hm, tg)
t4 = time.perf_counter()
print(f"{{t1 - t0:.4f}} {{t3 - t2:.4f}} {{t4 - t3:.4f}}")
"""


def timed(fn, repeats: int) -> tuple[float, float]:
    """(median, min) wall time of ``fn()`` in milliseconds."""
    out = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        out.append((time.perf_counter() - t) * 1e3)
    return float(np.median(out)), float(np.min(out))


def stages(hm, tg, repeats):
    """Per-stage times; each stage runs on the previous stage's output, as parse does."""
    p = DecodeParams()
    order = np.asarray(p.order_for(hm.shape[0]), np.int64)
    W = hm.shape[2]
    thr = float32_threshold(p.detection_threshold)
    res = {}
    tg = planar(tg)  # the kernels' layout (K, L, H, W); a view of the planes, no copy
    cpu_order = p.topk_ties == "cpu"
    counts, flat, vals, tmax = top_k_peaks(hm, thr, p.max_num_people, p.nms_kernel // 2, cpu_order)
    res["nms+top-k"] = timed(
        lambda: gather_tags(tg, *top_k_peaks(hm, thr, p.max_num_people, 2, cpu_order)[:2]), repeats
    )
    cand = gather_tags(tg, counts, flat)
    args = (counts, flat, vals, cand, W, order, thr, p.tag_threshold, p.max_num_people)
    res["grouping"] = timed(lambda: match_by_tag(*args, True, False), repeats)
    people = match_by_tag(*args, True, False).astype(np.float32)

    def adjust_scores():
        x = people.copy()
        adjust(x, hm)
        scores(x)

    res["adjust+scores"] = timed(adjust_scores, repeats)
    adjusted = people.copy()
    adjust(adjusted, hm)
    copies = [adjusted.copy() for _ in range(repeats)]
    it = iter(copies)
    res["refine"] = timed(lambda: refine(next(it), hm, tg, tmax), repeats)
    return res, len(people), int((adjusted[:, :, 2] == 0).sum())


def first_call_ms(hm, tg, tmp: Path) -> tuple[float, float, float]:
    """(import s, first parse ms, second parse ms) in a fresh interpreter with the warm disk cache."""
    path = tmp / "bench_decode_maps.npz"
    np.savez(path, heatmaps=hm, tags=tg)
    proc = subprocess.run(
        [sys.executable, "-c", FIRST_CALL.format(path=str(path))],
        capture_output=True,
        text=True,
        cwd=REPO,
        check=True,
    )
    path.unlink()
    a, b, c = (float(v) for v in proc.stdout.split())
    return a, b * 1e3, c * 1e3


def reference_check(hm, tg, grouped, sc) -> tuple[str, float]:
    sys.path.insert(0, str(REPO / "tests"))
    from decode_reference import reference_parse

    t = time.perf_counter()
    ref, ref_scores = reference_parse(hm, tg)
    took = time.perf_counter() - t
    same = (
        ref.shape == grouped.shape
        and np.array_equal(ref[..., :2], grouped[..., :2])
        and np.allclose(ref[..., 2:], grouped[..., 2:], rtol=0, atol=1e-6)
        and np.allclose(ref_scores, sc, rtol=1e-6, atol=0)
    )
    return ("identical" if same else "DIFFERENT"), took


def gil_check(hm, tg, seconds: float = 1.0) -> tuple[float, float]:
    """How fast a pure-Python thread counts while the main thread (a) runs parse back to back,
    (b) runs a GIL-holding Python loop, each relative to the thread counting alone."""
    import threading

    def rate(busy) -> float:
        stop, out = threading.Event(), []

        def count():
            n = 0
            while not stop.is_set():
                n += 1
            out.append(n)

        th = threading.Thread(target=count)
        th.start()
        t = time.perf_counter()
        while time.perf_counter() - t < seconds:
            busy()
        stop.set()
        th.join()
        return out[0] / seconds

    def python_loop():
        s = 0
        for i in range(100_000):
            s += i

    alone = rate(lambda: time.sleep(0.01))
    return rate(lambda: parse(hm, tg)) / alone, rate(python_loop) / alone


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--people", type=int, nargs="+", default=[1, 5, 10, 20, 30])
    ap.add_argument("--repeats", type=int, default=30)
    ap.add_argument("--height", type=int, default=512)
    ap.add_argument("--width", type=int, default=704)
    ap.add_argument("--tag-dims", type=int, default=2)
    ap.add_argument("--sigma", type=float, default=4.0, help="blob sigma at input resolution")
    ap.add_argument("--background", type=float, default=0.0, help="uniform noise level (0 = exact zeros)")
    ap.add_argument("--reference-max-people", type=int, default=20, help="skip the slow reference above")
    ap.add_argument("--out", type=Path, default=None, help="also write the table as markdown here")
    a = ap.parse_args()

    warmup()
    rows = []
    for P in a.people:
        m = synthesize(P, 17, a.height, a.width, a.tag_dims, seed=P, sigma=a.sigma, background=a.background)
        # What the estimator hands the decoder: the per-pixel view of the network's tag planes.
        hm, tg = m.heatmaps, by_pixel(planar(m.tags))
        grouped, sc = parse(hm, tg)
        st, n_out, n_missing = stages(hm, tg, a.repeats)
        total = timed(lambda hm=hm, tg=tg: parse(hm, tg), a.repeats)
        imp, first, second = first_call_ms(hm, tg, Path("/tmp"))
        if P <= a.reference_max_people:
            verdict, ref_s = reference_check(hm, tg, grouped, sc)
        else:
            verdict, ref_s = "not run", float("nan")
        rows.append((P, n_out, n_missing, st, total, first, imp, verdict, ref_s))

    head = (
        "| people | P out | missing joints | NMS+top-k ms | grouping ms | adjust+scores ms | refine ms "
        "| parse total ms | first call ms (import s) | vs reference | reference s |"
    )
    lines = [head, "|" + "---|" * 11]
    for P, n_out, n_missing, st, total, first, imp, verdict, ref_s in rows:
        cells = [
            f"{st[k][0]:.3f} ({st[k][1]:.3f})" for k in ("nms+top-k", "grouping", "adjust+scores", "refine")
        ]
        lines.append(
            f"| {P} | {n_out} | {n_missing} | "
            + " | ".join(cells)
            + f" | **{total[0]:.3f}** ({total[1]:.3f}) | {first:.1f} ({imp:.2f}) | {verdict} | {ref_s:.2f} |"
        )
    m = synthesize(20, 17, a.height, a.width, a.tag_dims, seed=20, sigma=a.sigma, background=a.background)
    with_parse, with_python = gil_check(m.heatmaps, m.tags)
    note = (
        "Times: median (min) over repeats, single thread, milliseconds unless marked. "
        f"GIL check (20 people): a pure-Python thread keeps {with_parse:.0%} of its solo speed while "
        f"parse runs back to back in another thread, and {with_python:.0%} next to a GIL-holding "
        "Python loop."
    )
    table = "\n".join(lines)
    print(table)
    print(note)
    if a.out:
        cpu = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
        model = next(
            (ln.split(":", 1)[1].strip() for ln in cpu.splitlines() if ln.startswith("Model name")), "?"
        )
        a.out.parent.mkdir(parents=True, exist_ok=True)
        a.out.write_text(
            f"# bench_decode\n\nCommand: `python benchmarks/bench_decode.py {' '.join(sys.argv[1:])}`\n\n"
            f"Machine: {model}, {os.cpu_count()} cores, Python {platform.python_version()}, numpy "
            f"{np.__version__}; date {datetime.datetime.now(datetime.UTC):%Y-%m-%d %H:%M} UTC.\n\n"
            f"Maps: 17 x {a.height} x {a.width}, L={a.tag_dims}, sigma {a.sigma}, background {a.background}.\n\n"
            f"{table}\n\n{note}\n"
        )


if __name__ == "__main__":
    main()
