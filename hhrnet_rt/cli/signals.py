"""SIGTERM and SIGHUP end a command the way Ctrl-C does, and the exit code says which signal it was.

A service manager stops a process with SIGTERM, a closed terminal sends SIGHUP; by default either kills
hhrt on the spot, leaving an mp4 without its index. While a command runs, all three stop signals raise
KeyboardInterrupt in the main thread instead, so every ``finally`` and the pipeline's interrupt path run:
sinks are closed, outputs stay usable. The exit code is the shell's convention, 128 + the signal number
(130 Ctrl-C, 143 SIGTERM, 129 SIGHUP), for the first signal received.
"""

from __future__ import annotations

import contextlib
import signal
import sys
import threading
from collections.abc import Iterator
from typing import Any

from hhrnet_rt.core.signals import STOP_SIGNALS

_received: list[int] = []  # the stop signals received during the current command, in order
_hard_exit: list[bool] = []  # non-empty once the command asked to end without interpreter shutdown


def _interrupt(signum: int, frame: Any) -> None:
    _received.append(signum)
    raise KeyboardInterrupt


@contextlib.contextmanager
def stop_signals_interrupt() -> Iterator[None]:
    """Within the block, SIGINT, SIGTERM and SIGHUP raise KeyboardInterrupt and are remembered."""
    if threading.current_thread() is not threading.main_thread():  # only the main thread may set handlers
        yield
        return
    _received.clear()
    _hard_exit.clear()
    previous = {signum: signal.signal(signum, _interrupt) for signum in STOP_SIGNALS}
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler if handler is not None else signal.SIG_DFL)


def interrupted_exit_code() -> int:
    """128 + the first stop signal of this command; 130 (Ctrl-C) when none was recorded."""
    return 128 + (_received[0] if _received else signal.SIGINT)


def request_hard_exit() -> None:
    """Ask for :func:`exit_now` when the command ends (a pipeline stage was still running)."""
    _hard_exit.append(True)


def hard_exit_requested() -> bool:
    return bool(_hard_exit)


def exit_now(code: int) -> None:
    """End the process without the interpreter's shutdown.

    Used when a pipeline stage is still inside a native call (inference) after the run: a normal exit
    would tear the runtime down under that thread, and torch aborts with "terminate called without an
    active exception" (exit 134). The outputs are closed by then; only the console needs flushing.
    """
    import os

    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()
    os._exit(code)
