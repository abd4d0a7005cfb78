"""What the device-semantics mode saw: every device<->host crossing and synchronisation, and where.

One :class:`Ledger` per session (``with device_semantics() as ledger``), written by every thread (under a
lock) and read by the test. Each entry carries the first stack frame in hhrnet_rt (or in the test), so a
failing budget names the line to fix.
"""

from __future__ import annotations

import sys
import threading
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from hhrnet_rt.decode.device_io import TRANSFER_POINTS

#: Code objects of the declared transfer points (hhrnet_rt/decode/device_io.py holds the one list).
DECLARED = frozenset(f.__code__ for f in TRANSFER_POINTS)
_HERE = str(Path(__file__).resolve().parent)
_REPO = str(Path(__file__).resolve().parents[2])

#: The budget the issue sets per frame: device -> host reads, and their bytes in all (0.5 MB).
READS_PER_FRAME = 2
READ_BYTES_PER_FRAME = 500_000


def caller() -> str:
    """``path:line function`` of the nearest frame in this repository outside this package and torch."""
    frame = sys._getframe(1)
    while frame is not None:
        path = frame.f_code.co_filename
        if path.startswith(_REPO) and not path.startswith(_HERE):
            return f"{Path(path).relative_to(_REPO)}:{frame.f_lineno} {frame.f_code.co_name}"
        frame = frame.f_back
    return "<outside the repository>"


def in_transfer_point() -> bool:
    """Whether a declared transfer point (:data:`DECLARED`) is on the current thread's stack."""
    frame = sys._getframe(1)
    while frame is not None:
        if frame.f_code in DECLARED:
            return True
        frame = frame.f_back
    return False


@dataclass
class Ledger:
    """Counts and places of what crossed between host and device, and of every synchronisation.

    Attributes:
        reads: ``(bytes, declared, where)`` per device -> host read.
        uploads: ``(blocking, where)`` per host -> device copy (pinned + ``non_blocking`` is not blocking).
        implicit: refused host conversions of device tensors (``.numpy()``, ``.item()``, ...).
        hidden: operations that synchronise without saying so (``nonzero``, boolean masks, ``if t:``, ...).
        syncs: explicit synchronisations (stream / event / device ``synchronize``).
        default_stream: device operations per thread name that ran on the legacy default stream.
        captures, replays, capture_failures: CUDA graph stand-in activity.
    """

    reads: list[tuple[int, bool, str]] = field(default_factory=list)
    uploads: list[tuple[bool, str]] = field(default_factory=list)
    implicit: list[str] = field(default_factory=list)
    hidden: list[str] = field(default_factory=list)
    syncs: list[str] = field(default_factory=list)
    default_stream: Counter = field(default_factory=Counter)
    captures: int = 0
    replays: int = 0
    capture_failures: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def add(self, kind: str, entry: object) -> None:
        with self.lock:
            getattr(self, kind).append(entry)

    def count(self, kind: str, n: int = 1) -> None:
        with self.lock:
            setattr(self, kind, getattr(self, kind) + n)

    def reset(self) -> None:
        """Forget everything so far (after a warm-up: capture, cuDNN autotuning and caches are one-off)."""
        with self.lock:
            for name in ("reads", "uploads", "implicit", "hidden", "syncs"):
                getattr(self, name).clear()
            self.default_stream.clear()
            self.captures = self.replays = self.capture_failures = 0

    @property
    def read_bytes(self) -> int:
        return sum(n for n, _, _ in self.reads)

    @property
    def blocking_uploads(self) -> list[str]:
        return [where for blocking, where in self.uploads if blocking]

    def problems(self, frames: int) -> list[str]:
        """Every way the last ``frames`` frames broke the budget (empty: within it)."""
        found = [f"implicit host conversion: {e}" for e in self.implicit]
        found += [f"hidden synchronisation: {e}" for e in self.hidden]
        found += [f"blocking upload: {w}" for w in self.blocking_uploads]
        found += [f"read outside the declared transfer points: {w}" for _, ok, w in self.reads if not ok]
        if len(self.reads) > READS_PER_FRAME * frames:
            places = Counter(w for _, _, w in self.reads)
            found.append(f"{len(self.reads)} device->host reads for {frames} frames (budget "
                         f"{READS_PER_FRAME} a frame): {dict(places)}")  # fmt: skip
        if self.read_bytes > READ_BYTES_PER_FRAME * frames:
            found.append(f"{self.read_bytes} bytes device->host for {frames} frames (budget "
                         f"{READ_BYTES_PER_FRAME} a frame)")  # fmt: skip
        return found

    def assert_budget(self, frames: int) -> None:
        """Raise AssertionError listing :meth:`problems` unless the frames kept the budget."""
        found = self.problems(frames)
        assert not found, "device budget broken:\n  " + "\n  ".join(found)

    def summary(self, frames: int) -> dict[str, float]:
        """Per-frame figures (what the tests report and the GPU check compares with)."""
        n = max(frames, 1)
        return {
            "reads": len(self.reads) / n,
            "read_bytes": self.read_bytes / n,
            "async_uploads": sum(not b for b, _ in self.uploads) / n,
            "blocking_uploads": len(self.blocking_uploads) / n,
            "syncs": len(self.syncs) / n,
        }
