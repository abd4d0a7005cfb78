"""Plumbing between the pipeline's threads: short-wait bounded queues and a latest-image slot.

Every wait here is at most ``POLL_S`` long and then checks the stop event, which is what makes the
pipeline unable to deadlock: a stage blocked on a full or empty queue notices a stop within one poll.
"""

from __future__ import annotations

import queue
import threading
import time
from typing import Any

from hhrnet_rt.video.meters import QueueWait

POLL_S = 0.05


class Channel:
    """A bounded queue whose every wait is short, checks the stop event and is added to a QueueWait."""

    def __init__(self, maxsize: int, stop: threading.Event, wait: QueueWait) -> None:
        self._q: queue.Queue = queue.Queue(maxsize)
        self._stop, self._wait = stop, wait

    def put(self, item: Any) -> bool:
        """Blocking put; ``False`` if the run was stopped first."""
        t0 = time.perf_counter()
        try:
            while not self._stop.is_set():
                try:
                    self._q.put(item, timeout=POLL_S)
                    return True
                except queue.Full:
                    pass
            return False
        finally:
            self._wait.put_s += time.perf_counter() - t0

    def put_latest(self, item: Any) -> int:
        """Live policy: never wait; replace what the consumer has not taken yet. Returns frames dropped."""
        dropped = 0
        while True:
            try:
                self._q.put_nowait(item)
                return dropped
            except queue.Full:
                try:
                    self._q.get_nowait()
                    dropped += 1
                except queue.Empty:
                    pass

    def depth(self) -> int:
        """Items waiting (a gauge for the metrics, not a decision)."""
        return self._q.qsize()

    def get(self) -> Any:
        """Blocking get; ``None`` if the run was stopped first."""
        t0 = time.perf_counter()
        try:
            while not self._stop.is_set():
                try:
                    return self._q.get(timeout=POLL_S)
                except queue.Empty:
                    pass
            return None
        finally:
            self._wait.get_s += time.perf_counter() - t0


class LatestImage:
    """Hands the newest output image to the main thread for the window (display may skip frames)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._image = None

    def set(self, image: Any) -> None:
        with self._lock:
            self._image = image

    def take(self) -> Any:
        with self._lock:
            image, self._image = self._image, None
        return image
