"""Device->host bytes and host decode time per frame: decoding on the device vs on the host.

For each frame size (default 640x480 and 1920x1080) at network input 512 with flip (L=2), the map size
is what the preprocessing gives (``hhrnet_rt.runtime.preprocess.multi_scale_size``: the maps are projected to
the network input size). Synthetic people (``hhrnet_rt.decode.synthetic``) fill the maps. Then:

- "host": ``parse()`` (Numba) on host arrays. Bytes: the whole heatmaps and tags, which a host decode
  must copy from the device; host time: the whole ``parse`` (NMS included).
- "device": ``parse_on_device`` with the maps as torch tensors on ``--device`` (default CPU). Bytes:
  its ``d2h_bytes``; host time: ``parse_on_device`` with its two device stages replaced by their
  recorded outputs, i.e. unpacking, munkres grouping, adjust, scores and refine bookkeeping on the
  host plus the Python around them. The device stages' own time is listed separately (torch on the
  CPU here: not a GPU figure).

Both decoders' outputs are compared (must be identical). Take figures on a quiet machine; with
``--repeats 2`` it only checks that everything runs.

    python benchmarks/bench_transfer.py [--repeats 30] [--people 20] [--device cpu] [--out results/x.md]
"""

from __future__ import annotations

import os

os.environ.setdefault("NUMBA_NUM_THREADS", "1")

import argparse  # noqa: E402
import contextlib  # noqa: E402
import datetime  # noqa: E402
import platform  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import torch  # noqa: E402

# Measure the checkout this script sits in, even when the editable install points at another copy.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import hhrnet_rt.decode.device as device_decode  # noqa: E402
from hhrnet_rt.core.tag_layout import by_pixel, planar  # noqa: E402
from hhrnet_rt.decode import parse, warmup  # noqa: E402
from hhrnet_rt.decode.synthetic import synthesize  # noqa: E402
from hhrnet_rt.runtime.preprocess import multi_scale_size  # noqa: E402

FRAMES = {"640x480": (480, 640), "1920x1080": (1080, 1920)}
DEVICE_STAGES = ("candidate_pack", "refine_pack")


def timed(fn, repeats: int, sync=lambda: None) -> tuple[float, float]:
    """(median, min) wall time of ``fn()`` in milliseconds."""
    out = []
    for _ in range(repeats):
        sync()
        t = time.perf_counter()
        fn()
        sync()
        out.append((time.perf_counter() - t) * 1e3)
    return float(np.median(out)), float(np.min(out))


@contextlib.contextmanager
def replayed_device_stages(hm: torch.Tensor, tg: torch.Tensor):
    """Run ``parse_on_device`` once for real, recording what each device stage returned; inside the
    block those stages return the recording at once, so a call times only the host-side work."""
    recorded: dict[str, torch.Tensor] = {}
    real = {name: getattr(device_decode, name) for name in DEVICE_STAGES}

    def recorder(name):
        def run(*args):
            recorded[name] = real[name](*args)
            return recorded[name]

        return run

    try:
        for name in DEVICE_STAGES:
            setattr(device_decode, name, recorder(name))
        device_decode.parse_on_device(hm, tg)
        for name in DEVICE_STAGES:
            setattr(device_decode, name, lambda *args, name=name: recorded[name])
        yield
    finally:
        for name, fn in real.items():
            setattr(device_decode, name, fn)


def measure(frame_hw, people, device, repeats, input_size=512):
    (w, h), _, _ = multi_scale_size(frame_hw, input_size)
    m = synthesize(people, 17, h, w, 2, seed=people, sigma=4.0)
    # Tags as the network leaves them: planes (K, L, H, W), handed to the decoders as the per-pixel view.
    planes = planar(m.tags)
    tags = by_pixel(planes)
    hm_dev = torch.from_numpy(m.heatmaps).to(device)
    planes_dev = torch.from_numpy(planes).to(device)
    tg_dev = by_pixel(planes_dev)
    sync = torch.cuda.synchronize if hm_dev.is_cuda else (lambda: None)

    grouped, scores = parse(m.heatmaps, tags)
    res = device_decode.parse_on_device(hm_dev, tg_dev)
    same = np.array_equal(res.grouped, grouped) and np.array_equal(res.scores, scores)

    host = {
        "bytes": m.heatmaps.nbytes + planes.nbytes,
        "host_ms": timed(lambda: parse(m.heatmaps, tags), repeats),
        "copy_ms": timed(lambda: (hm_dev.cpu(), planes_dev.cpu()), repeats, sync) if hm_dev.is_cuda else None,
    }
    with replayed_device_stages(hm_dev, tg_dev):
        host_only = timed(lambda: device_decode.parse_on_device(hm_dev, tg_dev), repeats)
    whole = timed(lambda: device_decode.parse_on_device(hm_dev, tg_dev), repeats, sync)
    dev = {"bytes": res.d2h_bytes, "host_ms": host_only, "whole_ms": whole}
    return (h, w), len(grouped), same, host, dev


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--frames", nargs="+", choices=list(FRAMES), default=list(FRAMES))
    ap.add_argument("--people", type=int, default=20)
    ap.add_argument("--repeats", type=int, default=30)
    ap.add_argument("--device", default="cpu", help="torch device of the maps for the device path")
    ap.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    ap.add_argument("--out", type=Path, default=None, help="also write the table as markdown here")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    warmup()

    lines = [
        "| frame | maps K x H x W, L | people drawn / decoded | decode | d2h bytes / frame | host decode ms | "
        "device stages ms | identical |",
        "|" + "---|" * 8,
    ]
    for name in a.frames:
        (h, w), n_out, same, host, dev = measure(FRAMES[name], a.people, a.device, a.repeats)
        maps = f"17 x {h} x {w}, 2"
        copy = f"copy {host['copy_ms'][0]:.2f}" if host["copy_ms"] else "-"
        lines.append(
            f"| {name} | {maps} | {a.people} / {n_out} | host | {host['bytes']:,} | "
            f"{host['host_ms'][0]:.3f} ({host['host_ms'][1]:.3f}) | {copy} | - |"
        )
        device_ms = dev["whole_ms"][0] - dev["host_ms"][0]
        lines.append(
            f"| {name} | {maps} | {a.people} / {n_out} | device ({a.device}) | {dev['bytes']:,} | "
            f"**{dev['host_ms'][0]:.3f}** ({dev['host_ms'][1]:.3f}) | {device_ms:.2f} | "
            f"{'yes' if same else 'NO'} |"
        )
    table = "\n".join(lines)
    note = (
        "Times: median (min) over repeats, milliseconds. Host decode for 'device' = parse_on_device with "
        "its device stages replayed from a recording (host work only); device stages ms = whole call "
        "minus that (torch on the CPU unless --device says otherwise). 'host' bytes = heatmaps + tags "
        "float32, what a host decode copies off the device."
    )
    print(table)
    print(note)
    if a.out:
        a.out.parent.mkdir(parents=True, exist_ok=True)
        a.out.write_text(
            f"# bench_transfer\n\nCommand: `python benchmarks/bench_transfer.py {' '.join(sys.argv[1:])}`\n\n"
            f"Machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, Python "
            f"{platform.python_version()}, torch {torch.__version__}, {a.threads} torch thread(s); "
            f"date {datetime.datetime.now(datetime.UTC):%Y-%m-%d %H:%M} UTC.\n\n{table}\n\n{note}\n"
        )


if __name__ == "__main__":
    main()
