"""Plumbing between the pipeline's threads: short-wait bounded queues, a latest-image slot, signal deferral.

Every wait here is at most ``POLL_S`` long and then checks the stop event, which is what makes the
pipeline unable to deadlock: a stage blocked on a full or empty queue notices a stop within one poll.
"""

from __future__ import annotations

import contextlib
import queue
import signal
import threading
import time
from collections.abc import Callable
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


# The signals that end a run like Ctrl-C when the application handles them (the CLI does for all three).
STOP_SIGNALS = tuple(
    getattr(signal, name) for name in ("SIGINT", "SIGTERM", "SIGHUP") if hasattr(signal, name)
)


@contextlib.contextmanager
def signals_deferred(on_signal: Callable[[], None]):
    """While sinks are being closed, a stop signal is noted instead of cutting the mp4 trailer short.

    Only signals with a Python handler are deferred (Ctrl-C's, or the CLI's for SIGTERM/SIGHUP). That
    handler still runs, so the application learns which signal came, but the KeyboardInterrupt it raises
    is swallowed here and becomes ``on_signal()``. A signal left at the system default (a library user's
    SIGTERM) still ends the process at once, as that user asked for.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {signum: signal.getsignal(signum) for signum in STOP_SIGNALS}

    def noted(signum: int, frame: Any) -> None:
        try:
            previous[signum](signum, frame)
        except KeyboardInterrupt:
            pass
        on_signal()

    for signum, handler in previous.items():
        if callable(handler):
            signal.signal(signum, noted)
    try:
        yield
    finally:
        for signum, handler in previous.items():
            if callable(handler):
                signal.signal(signum, handler)


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
