"""Streams under outages: reconnect latency, where frames are lost, and what an outage costs the others.

Live MPEG-TS servers on 127.0.0.1 (FFmpeg, :mod:`hhrnet_rt.bench.stream_server`; each picture carries the
camera's frame number) feed ``--streams`` LiveSources through one pipeline. Stream 0 is taken down (its
server killed) for each of ``--outages`` seconds in turn, with ``--settle`` seconds of service between;
the others run on, and the next outage starts only once stream 0 is back. A second run without outages
is the baseline, and a third, without outages, scrapes the Prometheus endpoint to measure what it costs.

Reported:

* reconnect latency per outage: from the server answering again to the first frame after it, split into
  the backoff wait (the interval between tries it came back in: up to 30 s +20 % jitter) and the last
  try to the first frame; the target is latency <= that interval + 2 s;
* camera frames lost inside outages (after the last frame delivered before the kill, before the first
  after it: what the dying server still held is lost with it) vs outside them (target 0);
* the other streams' FPS during outages vs the baseline run (target: within 10 %);
* per-frame latency with a 1 Hz scrape vs without, in alternating 5 s windows of one run (so a busy
  neighbour on the machine affects both alike; target: < 1 % more).

The estimator is a stand-in with a fixed cost per frame (``--cost-ms``): these figures are about the
pipeline and the sources, not the network.

Usage (from the repository root; needs the ffmpeg program):
    python benchmarks/bench_chaos.py --outages 1,3 --settle 2            # a check that it runs (~20 s)
    python benchmarks/bench_chaos.py --outages 1,5,10,30,60              # the recorded figures
    python benchmarks/bench_chaos.py --outages "" --baseline 60          # the metrics' cost alone
"""

from __future__ import annotations

import argparse
import platform
import statistics
import sys
import threading
import time
import urllib.request
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from hhrnet_rt.bench.stream_server import StreamServer, ffmpeg_problem, free_port, read_number  # noqa: E402
from hhrnet_rt.endpoints import EndpointServer, Reply  # noqa: E402
from hhrnet_rt.poses import Poses  # noqa: E402
from hhrnet_rt.video import Stream, run_streams  # noqa: E402
from hhrnet_rt.video.live import LiveSource  # noqa: E402
from hhrnet_rt.video.monitor import RunMonitor  # noqa: E402
from hhrnet_rt.video.reconnect import ReconnectPolicy  # noqa: E402


class FixedCost:
    """prepare/infer/decode with a fixed cost per frame and one person."""

    def __init__(self, cost_ms: float) -> None:
        self.cost_s = cost_ms / 1e3

    def prepare(self, image):
        return image

    def infer(self, prepared):
        time.sleep(self.cost_s)
        return None

    def decode(self, maps, prepared) -> Poses:
        kp = np.zeros((1, 17, 3), np.float32)
        return Poses(kp, np.array([0.5], np.float32))


class TimedLiveSource(LiveSource):
    """A LiveSource that notes when it tries to connect (to tell the backoff wait from the connect time)."""

    def __init__(self, *args, **kwargs) -> None:
        self.tries: list[float] = []
        super().__init__(*args, **kwargs)

    def _connect(self):
        self.tries.append(time.monotonic())
        return super()._connect()


def backoff_bound(down_s: float, policy: ReconnectPolicy) -> float:
    """Seconds after the server is back by which a try must have come (the latest schedule, +20 %)."""
    t, k = 0.0, 0
    while t < down_s:
        t += min(policy.max_s, policy.initial_s * policy.factor**k) * (1 + policy.jitter)
        k += 1
    return t - down_s


def run(args, outages: list[float], scrape: bool) -> dict:
    servers = [StreamServer(fps=args.fps) for _ in range(args.streams)]
    for server in servers:
        server.start()
    policy = ReconnectPolicy(stall_timeout_s=args.stall)
    # per frame written: (wall time, camera number, connection, latency capture -> written)
    logs: list[list[tuple[float, int, int, float]]] = [[] for _ in servers]

    def watch(k):
        return lambda r: logs[k].append(
            (time.monotonic(), read_number(r.image), r.frame.connection, r.latency_s)
        )

    streams = [Stream(TimedLiveSource(s.url, policy=policy, lossless=True), name=f"s{k}", on_frame=watch(k))
               for k, s in enumerate(servers)]  # fmt: skip
    stop, events = threading.Event(), []  # (kill time, back time, down seconds)

    def script() -> None:
        time.sleep(args.settle)
        for down in outages:
            t_kill = time.monotonic()
            servers[0].kill()
            time.sleep(down)
            servers[0].start()
            t_back = time.monotonic()
            events.append((t_kill, t_back, down))
            deadline = t_back + backoff_bound(down, policy) + 10  # the stream returns before the next outage
            while time.monotonic() < deadline and not any(t > t_back for t, *_ in logs[0][-5:]):
                time.sleep(0.05)
            time.sleep(args.settle)
        if not outages:
            time.sleep(args.baseline)
        stop.set()

    monitor = RunMonitor() if scrape else None
    scrapes = []
    endpoint = None
    if monitor is not None:
        endpoint = EndpointServer({"/metrics": lambda: Reply(200, "text/plain", monitor.metrics_text())},
                                  port=free_port()).__enter__()  # fmt: skip

        def scraper() -> None:  # 1 Hz in every other 5 s window: frames with and without, side by side
            while not stop.wait(1.0):
                t0 = time.monotonic()
                if int(t0 / 5) % 2:
                    urllib.request.urlopen(endpoint.url + "/metrics", timeout=5).read()
                    scrapes.append((t0, time.monotonic() - t0))

        threading.Thread(target=scraper, daemon=True).start()
    threading.Thread(target=script, daemon=True).start()
    try:
        result = run_streams(streams, FixedCost(args.cost_ms), stop_event=stop, monitor=monitor)
    finally:
        for server in servers:
            server.kill()
        if endpoint is not None:
            endpoint.close()
    return {
        "result": result,
        "logs": logs,
        "events": events,
        "policy": policy,
        "scrapes": scrapes,
        "servers": servers,
        "t_end": time.monotonic(),
        "tries": streams[0].source.tries,
    }


def analyse(chaos: dict, t_end: float) -> tuple[list[tuple], dict]:
    logs, events = chaos["logs"], chaos["events"]
    rows, windows, gaps = [], [], []
    for t_kill, t_back, down in events:
        after = next(((t, n) for t, n, *_ in logs[0] if t > t_back), None)
        latency = None if after is None else after[0] - t_back
        # the backoff interval in which the server came back, and the first try after it
        before = max((t for t in chaos["tries"] if t <= t_back), default=t_kill)
        next_try = min((t for t in chaos["tries"] if t > t_back), default=None)
        interval = None if next_try is None else next_try - before
        connect = None if after is None or next_try is None else after[0] - next_try
        rows.append((down, latency, interval, connect))
        windows.append((t_kill, after[0] if after is not None else t_end))
        # the outage, in camera frames: after the last one delivered before it, before the first after it
        last_before = max((n for t, n, *_ in logs[0] if t < t_kill), default=-1)
        gaps.append((last_before, after[1] if after is not None else float("inf")))
    # which camera frames never arrived, and whether they lie inside an outage
    numbers = [n for _, n, *_ in logs[0][25:]]  # after the first second: a server's start-up buffer aside
    missing = sorted(set(range(numbers[0], numbers[-1] + 1)) - set(numbers))
    inside = sum(any(a < n < b for a, b in gaps) for n in missing)
    others = {}
    span = sum(b - a for a, b in windows)
    for k in range(1, len(logs)):
        during = sum(sum(a <= t <= b for t, *_ in logs[k]) for a, b in windows)
        seen = [n for _, n, *_ in logs[k][25:]]  # after the first second: a server's start-up buffer aside
        others[k] = (
            during / span if span else float("nan"),
            len(set(range(seen[0], seen[-1] + 1)) - set(seen)),
        )
    return rows, {"missing": len(missing), "inside": inside, "others": others}


def fps_of(log: list[tuple[float, int, int]], skip_s: float = 1.0) -> float:
    times = [t for t, *_ in log if t >= log[0][0] + skip_s]
    return (len(times) - 1) / (times[-1] - times[0]) if len(times) > 1 else float("nan")


def report_outages(chaos: dict, baseline: dict) -> None:
    rows, lost = analyse(chaos, chaos["t_end"])
    result = chaos["result"]
    print("\n| outage s | back -> first frame s | backoff interval it came back in s | last try -> first frame s "
          "| within interval + 2 s |")  # fmt: skip
    print("|---:|---:|---:|---:|:--:|")

    def cell(x):
        return "never" if x is None else f"{x:.2f}"

    for down, latency, interval, connect in rows:
        ok = latency is not None and interval is not None and latency <= interval + 2.0
        print(
            f"| {down:g} | {cell(latency)} | {cell(interval)} | {cell(connect)} | {'yes' if ok else 'NO'} |"
        )
    latencies = [x for _, x, _, _ in rows if x is not None]
    connects = [x for _, _, _, x in rows if x is not None]
    if latencies:
        p95 = float(np.percentile(latencies, 95))
        print(f"\nserver back -> first frame: p50 {statistics.median(latencies):.2f} s, p95 {p95:.2f} s; "
              f"try -> first frame: p50 {statistics.median(connects):.2f} s, max {max(connects):.2f} s; "
              f"survived: {'yes' if result.failed == () else 'NO'}; stream 0 reconnects {result.streams[0].reconnects}")  # fmt: skip
    for outage in result.streams[0].outages:
        print(f"  stream 0 outage: {outage.seconds():.2f} s, {outage.attempts} tries, {outage.reason}")
    print(f"\nstream 0: {lost['missing']} camera frames missing, {lost['inside']} of them inside outages "
          f"({lost['missing'] - lost['inside']} outside)")  # fmt: skip
    print("\n| stream | FPS during outages | FPS baseline run | change | frames missing |")
    print("|---|---:|---:|---:|---:|")
    for k, (during, missing) in lost["others"].items():
        base = fps_of(baseline["logs"][k])
        print(f"| s{k} | {during:.2f} | {base:.2f} | {100 * (during / base - 1):+.1f} % | {missing} |")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--outages", default="1,5,10,30,60", help="seconds each outage lasts, comma-separated"
    )
    parser.add_argument("--streams", type=int, default=3)
    parser.add_argument("--fps", type=float, default=25.0)
    parser.add_argument("--settle", type=float, default=5.0, help="seconds of service before/between outages")
    parser.add_argument("--baseline", type=float, default=20.0, help="seconds of each run without outages")
    parser.add_argument("--stall", type=float, default=5.0, help="--stall-timeout")
    parser.add_argument("--cost-ms", type=float, default=5.0, help="the stand-in estimator's cost per frame")
    args = parser.parse_args()
    if (problem := ffmpeg_problem()) is not None:
        raise SystemExit(problem)
    outages = [float(x) for x in args.outages.split(",") if x]
    print(f"# bench_chaos: {args.streams} streams at {args.fps:g} fps, outages {outages} s on stream 0, "
          f"stand-in estimator {args.cost_ms:g} ms/frame; python {platform.python_version()}")  # fmt: skip
    if outages:  # --outages "": the metrics' cost alone
        report_outages(run(args, outages, scrape=False), run(args, [], scrape=False))
    scraped = run(args, [], scrape=True)
    on = [x for log in scraped["logs"] for t, _, _, x in log if int(t / 5) % 2]
    off = [x for log in scraped["logs"] for t, _, _, x in log if not int(t / 5) % 2]
    scrape_ms = (
        1e3 * statistics.mean(d for _, d in scraped["scrapes"]) if scraped["scrapes"] else float("nan")
    )
    p_on, p_off = 1e3 * statistics.median(on), 1e3 * statistics.median(off)
    print(f"\nmetrics: median frame latency {p_off:.2f} ms in 5 s windows without scraping, {p_on:.2f} ms in "
          f"those with a 1 Hz scrape ({100 * (p_on / p_off - 1):+.1f} %; {len(off)} and {len(on)} frames); "
          f"one scrape takes {scrape_ms:.2f} ms")  # fmt: skip


if __name__ == "__main__":
    main()
