"""The batching stage: per-stream inboxes in front of it, and one inference call per batch.

Every capture thread puts its frames into its own stream's inbox (:class:`StreamInbox`): a file stream
waits while its inbox is full (nothing is lost, order is kept), a live stream replaces what inference has
not taken yet (the newest frame wins) and counts the drop against that stream. The batching stage takes
up to ``batch`` frames round-robin across the streams (so one busy stream cannot starve the others, and
one file alone gives consecutive frames), waiting at most ``max_wait_s`` after the first frame for the
batch to fill: that bounds the latency batching adds to a live stream.

Like :class:`~hhrnet_rt.video.channels.Channel`, every wait is at most ``POLL_S`` long and then checks
the stop event, so a stop reaches a thread blocked here within one poll.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Sequence
from typing import Any

from hhrnet_rt.video.channels import POLL_S
from hhrnet_rt.video.meters import DeviceStageTimer, QueueWait, StageClock
from hhrnet_rt.video.stages import Estimator, StageError, timed


class StreamInbox:
    """One bounded FIFO per stream, read by one batching consumer.

    Args:
        capacities: the most frames each stream's inbox holds.
        stop: the run's stop event.
        wait: where the producers' (inbox full) and the consumer's (all empty) waiting time is added.
    """

    def __init__(self, capacities: Sequence[int], stop: threading.Event, wait: QueueWait) -> None:
        if any(c < 1 for c in capacities):
            raise ValueError(f"every inbox needs room for a frame, got {list(capacities)}")
        self._capacities = tuple(capacities)
        self._queues: list[deque[Any]] = [deque() for _ in capacities]
        self._ended = [False] * len(capacities)
        self._cond = threading.Condition()
        self._stop, self._wait = stop, wait
        self._next = 0  # where the next round-robin sweep starts

    def put(self, stream: int, item: Any) -> bool:
        """Lossless put (files): waits while the stream's inbox is full; ``False`` if stopped first."""
        t0 = time.perf_counter()
        try:
            with self._cond:
                while len(self._queues[stream]) >= self._capacities[stream]:
                    if self._stop.is_set():
                        return False
                    self._cond.wait(POLL_S)
                self._queues[stream].append(item)
                self._cond.notify_all()
                return True
        finally:
            self._wait.put_s += time.perf_counter() - t0

    def put_latest(self, stream: int, item: Any) -> int:
        """Live put: never waits; drops the oldest frames the consumer has not taken. Returns the drops."""
        with self._cond:
            box = self._queues[stream]
            dropped = 0
            while len(box) >= self._capacities[stream]:
                box.popleft()
                dropped += 1
            box.append(item)
            self._cond.notify_all()
            return dropped

    def end(self, stream: int, marker: Any = None) -> None:
        """The stream has no more frames (what is already in its inbox is still taken); ``marker``, if
        given, is taken after them (whatever the inbox's capacity) to carry the end down the stages."""
        with self._cond:
            if marker is not None:
                self._queues[stream].append(marker)
            self._ended[stream] = True
            self._cond.notify_all()

    def depth(self, stream: int) -> int:
        """Items waiting in one stream's inbox (read without the lock: a gauge, not a decision)."""
        return len(self._queues[stream])

    def _finished(self) -> bool:
        return all(self._ended) and not any(self._queues)

    def _sweep(self, batch: list[tuple[int, Any]], size: int) -> None:
        """Take frames round-robin, one per stream per turn, until ``size`` or every inbox is empty."""
        n = len(self._queues)
        while len(batch) < size and any(self._queues):
            for k in range(n):
                stream = (self._next + k) % n
                if self._queues[stream] and len(batch) < size:
                    batch.append((stream, self._queues[stream].popleft()))
            self._next = (self._next + 1) % n

    def take(self, size: int, max_wait_s: float) -> list[tuple[int, Any]] | None:
        """Up to ``size`` ``(stream, item)`` pairs; ``[]`` when every stream ended and all was taken;
        ``None`` when the run was stopped first."""
        t0 = time.perf_counter()
        try:
            with self._cond:
                while not any(self._queues):
                    if self._stop.is_set():
                        return None
                    if self._finished():
                        return []
                    self._cond.wait(POLL_S)
                batch: list[tuple[int, Any]] = []
                deadline = time.perf_counter() + max_wait_s
                while True:
                    self._sweep(batch, size)
                    self._cond.notify_all()  # room for the producers that waited on a full inbox
                    left = deadline - time.perf_counter()
                    if self._stop.is_set():  # no inference call for a run that is ending
                        return None
                    if len(batch) >= size or left <= 0 or all(self._ended):
                        return batch
                    self._cond.wait(min(left, POLL_S))
        finally:
            self._wait.get_s += time.perf_counter() - t0


class BatchInference:
    """Prepare each frame, then ONE ``estimator.infer_batch`` call for the whole batch.

    An estimator without ``infer_batch`` (a test double, an older estimator) gets one ``infer`` per frame.
    ``sizes`` records each call's batch size (read after the run). A frame that cannot be prepared is
    handed back with its error (its stream alone fails); a failed inference call raises for the batch.
    """

    def __init__(self, estimator: Estimator, clock: StageClock, names: Sequence[str | None]) -> None:
        self.estimator, self.clock, self.names = estimator, clock, tuple(names)
        self.sizes: list[int] = []
        self._infer_batch = getattr(estimator, "infer_batch", None)
        self.device = getattr(getattr(estimator, "backend", None), "device", None)
        self.device_timer = DeviceStageTimer(clock)

    def _infer_all(self, prepared: list[Any]) -> list[Any]:
        if self._infer_batch is not None and len(prepared) > 1:  # one frame: the per-frame call, as ever
            maps = list(self._infer_batch(prepared))
        else:
            maps = [self.estimator.infer(p) for p in prepared]
        if len(maps) != len(prepared):
            raise RuntimeError(f"infer_batch returned {len(maps)} results for {len(prepared)} frames")
        return maps

    def __call__(
        self, items: list[tuple[int, Any]]
    ) -> tuple[list[tuple[int, Any, Any, Any]], list[tuple[int, StageError]]]:
        """``(stream, frame)`` pairs -> ``(stream, frame, prepared, maps)`` for those that went through,
        and ``(stream, error)`` for frames that could not be prepared.

        Raises:
            StageError: the inference call failed (every frame of the batch is lost with it).
        """
        ready, failed = [], []
        for i, frame in items:
            try:
                where = (frame.index, self.names[i])
                ready.append(
                    (i, frame, timed(self.clock, "preprocess", where, self.estimator.prepare, frame.image))
                )
            except StageError as exc:
                failed.append((i, exc))
        if not ready:
            return [], failed
        first_stream, first, _ = ready[0]
        where = (first.index, self.names[first_stream])
        prepared = [p for _, _, p in ready]
        start = self.device_timer.start(self.device)
        if start is None:
            maps = timed(self.clock, "inference", where, self._infer_all, prepared)
        else:  # CUDA: the call only enqueues; the GPU's time comes from events (DeviceStageTimer)
            try:
                maps = self._infer_all(prepared)
            except Exception as exc:
                raise StageError("inference", where[0], exc, where[1]) from exc
            self.device_timer.stop("inference", start, self.device)
        self.sizes.append(len(ready))
        return [(i, frame, p, m) for (i, frame, p), m in zip(ready, maps, strict=True)], failed
