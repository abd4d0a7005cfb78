"""A live view of a run's counters: Prometheus metrics and readiness, read while the run goes on.

:class:`RunMonitor` is attached to the runner as the run starts (``run_streams(..., monitor=...)``) and
reads the counters the stages keep anyway (frames, drops, latencies, outages, queue depths) only when it
is scraped: the frames pay nothing for it. Names follow Prometheus conventions (``hhrt_`` prefix, units in
the name, ``_total`` counters); every stream is a ``stream`` label, credentials in it redacted.

Example:
    >>> monitor = RunMonitor()
    >>> monitor.ready()
    (False, 'the run has not started')
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator, Sequence
from typing import Any

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily
from prometheus_client.registry import Collector

from hhrnet_rt.core.redact import redact
from hhrnet_rt.video.stages import QUEUE_NAMES

#: End-to-end and stage latency buckets, seconds.
LATENCY_BUCKETS_S = (0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0)
#: People per frame buckets.
PEOPLE_BUCKETS = (0, 1, 2, 3, 5, 10, 20)


class _Buckets:
    """Cumulative histogram counts of an append-only list of values, updated from where it was left."""

    def __init__(self, bounds: Sequence[float]) -> None:
        self.bounds, self.counts = tuple(bounds), [0] * (len(bounds) + 1)
        self.seen, self.sum = 0, 0.0

    def update(self, values: Sequence[float]) -> None:
        new = values[self.seen : len(values)]  # appended by another thread: read what is there now
        for v in new:
            self.counts[next((k for k, b in enumerate(self.bounds) if v <= b), len(self.bounds))] += 1
            self.sum += v
        self.seen += len(new)

    def family_buckets(self) -> list[tuple[str, float]]:
        out: list[tuple[str, float]] = []
        total = 0.0
        for bound, count in zip((*map(str, self.bounds), "+Inf"), self.counts, strict=True):
            total += count
            out.append((bound, total))
        return out


class RunMonitor(Collector):
    """Metrics and readiness of one run (see the module docstring).

    Args:
        stall_s: a stream without a new frame for this long is not ready (its source's own stall timeout,
            when it has one, is used instead).
    """

    def __init__(self, stall_s: float = 5.0) -> None:
        self.stall_s = stall_s
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(self)
        self._runner: Any = None
        self._lock = threading.Lock()  # scrapes may come in parallel; the bucket updates must not
        self._latency: dict[int, _Buckets] = {}
        self._stages: dict[str, _Buckets] = {}

    def attach(self, runner: Any) -> None:
        """Called by the runner as the run starts."""
        self._runner = runner

    # -- what the endpoints serve ------------------------------------------------------------------------
    def metrics_text(self) -> bytes:
        """The Prometheus text format of everything below."""
        return generate_latest(self.registry)

    def ready(self) -> tuple[bool, str]:
        """Whether every stream still running delivers frames; else which do not and why."""
        runner = self._runner
        if runner is None:
            return False, "the run has not started"
        problems = [p for p in map(self._problem, runner.streams) if p is not None]
        return (not problems, "; ".join(problems) if problems else "every stream is delivering")

    def _problem(self, st: Any) -> str | None:
        """Why a stream is not delivering (``None``: it is, or it ended as it should)."""
        name = _name(st)
        if st.state == "failed":
            return f"{name}: failed"
        if st.state != "running":
            return None
        since = _seconds_since_frame(st)
        stall = getattr(getattr(st.source, "policy", None), "stall_timeout_s", self.stall_s)
        if since is not None and since <= stall:
            return None
        problem = f"{name}: no frame yet" if since is None else f"{name}: no frame for {since:.1f} s"
        state = getattr(st.source, "state", None)
        return f"{problem} ({state})" if state in ("reconnecting", "connecting") else problem

    # -- the collector -----------------------------------------------------------------------------------
    def collect(self) -> Iterator[Any]:
        runner = self._runner
        if runner is None:
            return
        with self._lock:
            yield from self._stream_metrics(runner)
            yield from self._stage_metrics(runner)

    def _stream_metrics(self, runner: Any) -> Iterator[Any]:
        label = ["stream"]
        counters = {
            "frames_read": ("Frames read from the input.", lambda st: st.read),
            "frames_written": ("Frames drawn and written to the outputs.", lambda st: st.written),
            "frames_dropped": ("Live frames dropped because inference was behind.", lambda st: st.dropped),
            "reconnects": ("Outages the live source came back from.", lambda st: getattr(st.source, "reconnects", 0)),
            "outage_seconds": ("Seconds the live source was away (an outage going on counts to now).", _outage_s),
        }  # fmt: skip
        families = {
            k: CounterMetricFamily(f"hhrt_{k}", doc, labels=label) for k, (doc, _) in counters.items()
        }
        fps = GaugeMetricFamily("hhrt_stream_fps", "Frames written per second, recent window.", labels=label)
        up = GaugeMetricFamily("hhrt_stream_up", "1 while the stream delivers frames.", labels=label)
        depth = GaugeMetricFamily("hhrt_inbox_frames", "Frames waiting for inference.", labels=label)
        latency = HistogramMetricFamily(
            "hhrt_latency_seconds", "Capture to drawn and written, per frame.", labels=label
        )
        people = HistogramMetricFamily("hhrt_people_per_frame", "People written per frame.", labels=label)
        for i, st in enumerate(runner.streams):
            name = [_name(st)]
            for key, (_, read) in counters.items():
                families[key].add_metric(name, float(read(st)))
            fps.add_metric(name, st.rolling.fps)
            up.add_metric(name, 1.0 if st.state == "running" and self._problem(st) is None else 0.0)
            depth.add_metric(name, float(runner.inbox.depth(i)))
            buckets = self._latency.setdefault(i, _Buckets(LATENCY_BUCKETS_S))
            buckets.update(st.latencies)
            latency.add_metric(name, buckets.family_buckets(), buckets.sum)
            counts = st.people_counts
            cumulative = [(str(b), float(sum(counts[: b + 1]))) for b in PEOPLE_BUCKETS]
            total_people = float(sum(k * c for k, c in enumerate(counts)))
            people.add_metric(name, [*cumulative, ("+Inf", float(sum(counts)))], total_people)
        yield from (*families.values(), fps, up, depth, latency, people)

    def _stage_metrics(self, runner: Any) -> Iterator[Any]:
        stages = HistogramMetricFamily(
            "hhrt_stage_seconds", "Time of each pipeline stage per call.", labels=["stage"]
        )
        for stage, values in list(runner.clock.durations.items()):
            buckets = self._stages.setdefault(stage, _Buckets(LATENCY_BUCKETS_S))
            buckets.update(values)
            stages.add_metric([stage], buckets.family_buckets(), buckets.sum)
        queues = GaugeMetricFamily("hhrt_queue_batches", "Batches waiting between stages.", labels=["queue"])
        for channel, name in zip(runner.channels, QUEUE_NAMES[1:], strict=True):
            queues.add_metric([name.replace("→", "_to_")], float(channel.depth()))
        yield stages
        yield queues


def _name(st: Any) -> str:
    return redact(str(st.name or getattr(st.source, "description", "stream")))


def _seconds_since_frame(st: Any) -> float | None:
    since = getattr(st.source, "seconds_since_frame", None)
    if since is not None:
        return since()
    return None if st.t_last is None else time.perf_counter() - st.t_last


def _outage_s(st: Any) -> float:
    source = st.source
    now = source.now() if hasattr(source, "now") else None
    return float(sum(o.seconds(now) for o in getattr(source, "outages", ())))
