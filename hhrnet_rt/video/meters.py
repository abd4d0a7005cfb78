"""Records for the streaming pipeline: per-stage latencies, queue waits, rolling FPS, bytes device→host.

Each recorder is written by one thread only (the stage that owns it) and read by the main thread after the
threads have stopped, or approximately while they run (HUD, progress bar); so no locks are needed beyond
what ``list.append`` and ``deque.append`` already guarantee in CPython.
"""

from __future__ import annotations

import time
from collections import deque
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class LatencyStats:
    """Summary of one stage's per-frame durations, in milliseconds.

    Attributes:
        count: how many durations were recorded.
        p50_ms: median.
        p95_ms: 95th percentile (linear interpolation, numpy's default).
        mean_ms: arithmetic mean.
        total_s: sum of all durations, in seconds.
    """

    count: int
    p50_ms: float
    p95_ms: float
    mean_ms: float
    total_s: float

    @classmethod
    def of(cls, seconds: list[float] | np.ndarray) -> LatencyStats:
        """Summarise a list of durations given in seconds (an empty list gives zeros)."""
        values = np.asarray(seconds, dtype=np.float64)
        if values.size == 0:
            return cls(0, 0.0, 0.0, 0.0, 0.0)
        ms = values * 1e3
        return cls(
            count=int(values.size),
            p50_ms=float(np.percentile(ms, 50)),
            p95_ms=float(np.percentile(ms, 95)),
            mean_ms=float(ms.mean()),
            total_s=float(values.sum()),
        )


@dataclass(frozen=True)
class TransferStats:
    """Bytes copied device -> host per frame (``Maps.d2h_bytes``; 0 when the maps are already on the host).

    Attributes:
        count: frames with a record (estimators that do not report transfers leave none).
        mean_bytes, max_bytes: per frame.
        total_bytes: over the run.
    """

    count: int
    mean_bytes: float
    max_bytes: int
    total_bytes: int

    @classmethod
    def of(cls, per_frame: list[int]) -> TransferStats:
        """Summarise per-frame byte counts (an empty list gives zeros)."""
        if not per_frame:
            return cls(0, 0.0, 0, 0)
        total = int(sum(per_frame))
        return cls(len(per_frame), total / len(per_frame), int(max(per_frame)), total)


def format_bytes(n: float) -> str:
    """``1234567`` -> ``'1.23 MB'`` (decimal units, as transfer rates are quoted)."""
    for unit, scale in (("GB", 1e9), ("MB", 1e6), ("KB", 1e3)):
        if n >= scale:
            return f"{n / scale:.2f} {unit}"
    return f"{n:.0f} B"


class StageClock:
    """Durations of the stages one thread runs, keyed by stage name.

    Example:
        >>> clock = StageClock()
        >>> with clock.time("decode"):
        ...     pass
        >>> clock.stats()["decode"].count
        1
    """

    def __init__(self) -> None:
        self.durations: dict[str, list[float]] = {}

    def add(self, stage: str, seconds: float) -> None:
        self.durations.setdefault(stage, []).append(seconds)

    def time(self, stage: str) -> _Timer:
        """Context manager that records the time spent inside it under ``stage``."""
        return _Timer(self, stage)

    def stats(self) -> dict[str, LatencyStats]:
        return {name: LatencyStats.of(values) for name, values in self.durations.items()}


class _Timer:
    __slots__ = ("_clock", "_stage", "_t0")

    def __init__(self, clock: StageClock, stage: str) -> None:
        self._clock, self._stage = clock, stage

    def __enter__(self) -> None:
        self._t0 = time.perf_counter()

    def __exit__(self, *exc: object) -> None:
        # Failed calls are not recorded: their duration says nothing about the stage's speed.
        if exc[0] is None:
            self._clock.add(self._stage, time.perf_counter() - self._t0)


@dataclass
class QueueWait:
    """Seconds spent blocked on one queue.

    Attributes:
        put_s: the producer waited because the queue was full (the consumer is the slower side).
        get_s: the consumer waited because the queue was empty (the producer is the slower side).
    """

    put_s: float = 0.0
    get_s: float = 0.0


class RollingRate:
    """Frames per second and latency over the last ``window`` events, for a live HUD."""

    def __init__(self, window: int = 30) -> None:
        self._times: deque[float] = deque(maxlen=window)
        self._latencies: deque[float] = deque(maxlen=window)

    def tick(self, latency_s: float | None = None, now: float | None = None) -> None:
        self._times.append(time.perf_counter() if now is None else now)
        if latency_s is not None:
            self._latencies.append(latency_s)

    @property
    def fps(self) -> float:
        times = tuple(self._times)
        if len(times) < 2 or times[-1] <= times[0]:
            return 0.0
        return (len(times) - 1) / (times[-1] - times[0])

    @property
    def latency_ms(self) -> float:
        values = tuple(self._latencies)
        return 1e3 * sum(values) / len(values) if values else 0.0


class DeviceStageTimer:
    """GPU time of a stage whose work is only enqueued by its thread (CUDA), from CUDA events.

    On CUDA a call such as ``infer_batch`` returns once the kernels are queued: its host time is the
    enqueue, and the GPU time would land in whichever stage reads the results first (decode). So the
    stage records an event before and after the call on its thread's stream; the durations are read
    later without waiting (``query``), when the events have completed, and added to the clock under the
    stage's name. The time between the events includes any wait for earlier work on the device, as a
    frame experiences it. Off CUDA :meth:`start` returns ``None`` and the caller times the host.
    """

    def __init__(self, clock: StageClock) -> None:
        self.clock = clock
        self._pending: deque[tuple[str, object, object]] = deque()

    @staticmethod
    def start(device: object) -> object | None:
        """An event recorded now on this thread's stream of ``device``, or ``None`` off CUDA."""
        if device is None or not str(device).startswith("cuda"):
            return None
        import torch

        event = torch.cuda.Event(enable_timing=True)
        event.record(torch.cuda.current_stream(torch.device(str(device))))
        return event

    def stop(self, stage: str, start: object, device: object) -> None:
        """Close the interval opened by :meth:`start`; its duration is added once the device is there."""
        import torch

        end = torch.cuda.Event(enable_timing=True)
        end.record(torch.cuda.current_stream(torch.device(str(device))))
        self._pending.append((stage, start, end))
        self.collect()

    def collect(self, *, wait: bool = False) -> None:
        """Add the finished intervals to the clock (``wait``: every one, synchronising; at the run's end)."""
        while self._pending:
            stage, start, end = self._pending[0]
            if wait:
                end.synchronize()  # type: ignore[attr-defined]
            elif not end.query():  # type: ignore[attr-defined]
                return
            self._pending.popleft()
            self.clock.add(stage, start.elapsed_time(end) / 1e3)  # type: ignore[attr-defined]
