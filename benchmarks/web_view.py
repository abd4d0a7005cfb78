"""What serving the live view (``--web``) costs a run: frame time with and without the view, 4 streams.

Four file streams of the same generated clip go through one tiny model (the golden ``tiny_model.npz``),
drawn as ``hhrt video`` draws them, in three modes, interleaved run by run (so a machine whose load drifts
shifts every mode alike):

* ``none``: no view (``run_streams`` as without ``--web``);
* ``reading``: the view served, one client reading all four MJPEG streams as fast as they come (a browser
  tab with four tiles);
* ``stalled``: the view served, one client that opens all four streams and never reads a byte.

Frame time = wall time of the run / frames written by all streams. Reported per mode: the median frame
time over the runs, its ratio to ``none``'s median, the median of the per-round ratios (each run against
the ``none`` run of its own round: the overhead, least disturbed by a load that drifts), the frames the
client received and the frames the view dropped for it (a stalled client's drops rise while the run is
not slowed). On a shared machine the spread between runs of the same mode (min, max) is the noise floor:
an overhead below it cannot be told from zero.

Usage (from the repository root; package importable: ``pip install -e .`` or ``PYTHONPATH=.``):
    python benchmarks/web_view.py                          # 4 streams x 100 frames, input 64, 9 rounds
    python benchmarks/web_view.py --input-size 128 --rounds 7
    python benchmarks/web_view.py --frames 20 --rounds 1   # a check that it runs
"""

from __future__ import annotations

import argparse
import platform
import selectors
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
GOLDEN_TINY = REPO / ".." / "shared" / "golden" / "tiny_model.npz"
sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_pipeline import make_clip  # noqa: E402  (the moving-pattern clip of the pipeline bench)

from hhrnet_rt.endpoints import EndpointServer, LiveView  # noqa: E402
from hhrnet_rt.runtime.estimator import PoseEstimator  # noqa: E402
from hhrnet_rt.video import FileSource, Stream, run_streams  # noqa: E402

MODES = ("none", "reading", "stalled")


class Client:
    """A viewer in a process of its own, as a browser is: it opens ``/stream/i`` for every stream and reads
    them all in one thread (counting JPEG parts), or never reads a byte."""

    def __init__(self, port: int, streams: int, *, read: bool) -> None:
        self.read = read
        command = [sys.executable, __file__, "--client", str(port), str(streams), "read" if read else "stall"]
        self._proc = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        assert self._proc.stdout is not None and self._proc.stdout.readline().strip() == "ready"

    def finish(self) -> int:
        """The JPEG parts it received (a reader ends when the view closes its streams)."""
        out, _ = self._proc.communicate(timeout=30)  # closes its stdin: a stalled client ends then
        return int(out.strip() or 0)


def client_main(port: int, streams: int, read: bool) -> None:
    socks = []
    for i in range(streams):
        sock = socket.create_connection(("127.0.0.1", port), timeout=30)
        sock.sendall(f"GET /stream/{i} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode())
        socks.append(sock)
    print("ready", flush=True)
    if not read:
        sys.stdin.read()  # until the benchmark is done with it
        print(0)
        return
    selector = selectors.DefaultSelector()
    for sock in socks:
        selector.register(sock, selectors.EVENT_READ, b"")
    parts, left = 0, len(socks)
    while left:
        for key, _ in selector.select():
            data = key.fileobj.recv(1 << 16)  # type: ignore[union-attr]
            if not data:
                selector.unregister(key.fileobj)
                left -= 1
                continue
            parts += (key.data + data).count(b"Content-Type: image/jpeg")
            selector.modify(key.fileobj, selectors.EVENT_READ, data[-32:])
    print(parts)


def run_once(clip: Path, streams: int, estimator, mode: str) -> tuple[float, int, int]:
    """(frame time in ms, JPEG parts the client received, frames the view dropped) of one run."""
    view = LiveView([f"s{k}" for k in range(streams)]) if mode != "none" else None
    server = EndpointServer(view.routes(), port=0).__enter__() if view is not None else None
    client = Client(server.port, streams, read=mode == "reading") if server is not None else None
    try:
        runs = [Stream(FileSource(clip), [], name=f"s{k}",
                       on_frame=view.frame_hook(k) if view is not None else None) for k in range(streams)]  # fmt: skip
        box: dict = {}

        def target() -> None:  # from a worker thread, as bench_streams does (torch's threads in main: slower)
            t0 = time.perf_counter()
            result = run_streams(runs, estimator, draw=True, monitor=view)
            box["r"] = (time.perf_counter() - t0, result.frames_written)

        worker = threading.Thread(target=target)
        worker.start()
        worker.join()
        if "r" not in box:
            raise SystemExit("a run failed (see the traceback above)")
        seconds, frames = box["r"]
        dropped = sum(s["dropped"] for s in view.stats()["streams"]) if view is not None else 0
    finally:
        if view is not None:
            view.close()  # the streams end: a reading client sees them close
        parts = client.finish() if client is not None else 0
        if server is not None:
            server.close()
    return 1e3 * seconds / frames, parts, dropped


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--streams", type=int, default=4)
    parser.add_argument("--frames", type=int, default=100, help="frames per stream (the clip's length)")
    parser.add_argument("--size", default="320x240", help="the clip's WxH")
    parser.add_argument("--input-size", type=int, default=64, choices=(64, 128))
    parser.add_argument("--backend", default="onnxruntime", choices=("onnxruntime", "torch"))
    parser.add_argument("--rounds", type=int, default=9, help="runs of each mode, interleaved")
    parser.add_argument("--client", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.client:
        port, streams, how = args.client
        return client_main(int(port), int(streams), how == "read")
    width, height = (int(v) for v in args.size.split("x"))

    estimator = PoseEstimator(GOLDEN_TINY.resolve(), input_size=args.input_size, backend=args.backend)
    with tempfile.TemporaryDirectory() as tmp:
        clip = make_clip(Path(tmp) / "clip.mp4", args.frames, width, height)
        source = FileSource(clip)
        estimator.warmup(source.read().image.shape[:2])
        source.close()
        run_once(clip, args.streams, estimator, "reading")  # one-off costs (Numba cache, first encodes)
        times: dict[str, list[float]] = {m: [] for m in MODES}
        parts: dict[str, list[int]] = {m: [] for m in MODES}
        drops: dict[str, list[int]] = {m: [] for m in MODES}
        for r in range(args.rounds):
            for mode in MODES if r % 2 == 0 else MODES[::-1]:  # alternate the order too
                ms, got, dropped = run_once(clip, args.streams, estimator, mode)
                times[mode].append(ms)
                parts[mode].append(got)
                drops[mode].append(dropped)

    base = statistics.median(times["none"])
    print(f"# web_view: {args.streams} streams x {args.frames} frames {width}x{height}, tiny model input "
          f"{args.input_size}, {args.backend} on cpu, drawn, {args.rounds} interleaved rounds; "
          f"{platform.machine()}")  # fmt: skip
    print("| mode | frame time ms (median) | min | max | ratio of medians | median paired ratio "
          "| frames sent to the client | dropped for it |")  # fmt: skip
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for mode in MODES:
        t = times[mode]
        med = statistics.median(t)
        paired = statistics.median(a / b for a, b in zip(t, times["none"], strict=True))
        print(f"| {mode} | {med:.3f} | {min(t):.3f} | {max(t):.3f} | {med / base:.3f} | {paired:.3f} | "
              f"{statistics.median(parts[mode]):.0f} | {statistics.median(drops[mode]):.0f} |")  # fmt: skip
    print()
    print("| round | " + " | ".join(f"{mode} ms" for mode in MODES) + " |")
    print("|---:|" + "---:|" * len(MODES))
    for r in range(args.rounds):
        print(f"| {r + 1} | " + " | ".join(f"{times[mode][r]:.3f}" for mode in MODES) + " |")


if __name__ == "__main__":
    main()
