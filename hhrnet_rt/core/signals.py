"""The stop signals (Ctrl-C, SIGTERM, SIGHUP) and their deferral while outputs are being closed.

Its own small module, outside :mod:`hhrnet_rt.video`, so the CLI can install its handlers for every
command without importing OpenCV and the pipeline.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Callable
from typing import Any

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
    # Only Python handlers (callables); SIG_DFL / SIG_IGN (ints) and None stay as they are.
    previous = {signum: handler for signum in STOP_SIGNALS if callable(handler := signal.getsignal(signum))}

    def noted(signum: int, frame: Any) -> None:
        try:
            previous[signum](signum, frame)
        except KeyboardInterrupt:
            pass
        on_signal()

    for signum in previous:
        signal.signal(signum, noted)
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
