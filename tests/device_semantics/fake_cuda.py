"""Stand-ins for what CPU-only torch lacks: streams, events, CUDA graphs and the ``torch.cuda`` queries.

They keep the rules that matter for correctness and speed and check their arguments as CUDA would:

* streams: a per-thread current stream (the legacy default stream until a thread sets one), ``wait_stream``
  / ``wait_event`` / ``synchronize`` (counted as a synchronisation);
* events: ``record`` on a stream, ``synchronize`` (counted), ``elapsed_time`` between two recorded timing
  events (host time: on the CPU every operation has finished when it returns);
* graphs: ``torch.cuda.graph(g, pool=..., stream=...)`` records the device operations run inside it, and
  ``g.replay()`` runs them again on the *same* tensors, as a real replay rewrites the captured memory --
  so a caller that forgets to refresh the static input, or hands out a static output that the next replay
  overwrites, gets wrong numbers here too. Inside a capture every synchronisation, transfer and host
  conversion raises, as CUDA refuses them ("operation not permitted when stream is capturing").
"""

from __future__ import annotations

import itertools
import threading
import time
from typing import Any

import torch

from .ledger import Ledger, caller

DEVICE = torch.device("cuda", 0)
_ids = itertools.count(1)


class CaptureError(RuntimeError):
    """What CUDA answers when a capturing stream meets a synchronising call."""


class State:
    """The fake CUDA of one session: its ledger, the default stream, and per-thread stream / capture."""

    def __init__(self, ledger: Ledger) -> None:
        self.ledger = ledger
        self.local = threading.local()
        self.default = FakeStream(self, default=True)

    def current(self) -> FakeStream:
        return getattr(self.local, "stream", None) or self.default

    def capturing(self) -> FakeGraph | None:
        return getattr(self.local, "graph", None)

    def sync(self, what: str) -> None:
        """A host wait for the device: refused while capturing, counted otherwise."""
        self.refuse_in_capture(what)
        self.ledger.add("syncs", f"{what} at {caller()}")

    def refuse_in_capture(self, what: str) -> None:
        graph = self.capturing()
        if graph is not None:
            graph.failed = True
            raise CaptureError(f"{what} during CUDA graph capture: operation not permitted when stream is "
                               f"capturing ({caller()})")  # fmt: skip


class FakeStream:
    def __init__(self, state: State, device: Any = None, priority: int = 0, *, default: bool = False) -> None:
        self.state, self.device, self.is_default = state, DEVICE, default
        self.cuda_stream = 0 if default else next(_ids)

    def wait_stream(self, other: FakeStream) -> None:
        assert isinstance(other, FakeStream), f"wait_stream needs a stream, got {type(other).__name__}"

    def wait_event(self, event: FakeEvent) -> None:
        assert isinstance(event, FakeEvent), f"wait_event needs an event, got {type(event).__name__}"

    def record_event(self, event: FakeEvent | None = None) -> FakeEvent:
        event = event or FakeEvent()
        event.record(self)
        return event

    def synchronize(self) -> None:
        self.state.sync("Stream.synchronize")

    def query(self) -> bool:
        return True

    def __repr__(self) -> str:
        return "<default stream>" if self.is_default else f"<stream {self.cuda_stream}>"


class FakeEvent:
    state: State  # set by the session

    def __init__(
        self, enable_timing: bool = False, blocking: bool = False, interprocess: bool = False
    ) -> None:
        self.enable_timing, self.t = enable_timing, None

    def record(self, stream: FakeStream | None = None) -> None:
        assert stream is None or isinstance(stream, FakeStream), f"record on {type(stream).__name__}"
        self.t = time.perf_counter()

    def wait(self, stream: FakeStream | None = None) -> None:
        pass

    def synchronize(self) -> None:
        self.state.sync("Event.synchronize")

    def query(self) -> bool:
        return True

    def elapsed_time(self, end: FakeEvent) -> float:
        if not (self.enable_timing and end.enable_timing):
            raise RuntimeError("Both events must be created with argument 'enable_timing=True'.")
        if self.t is None or end.t is None:
            raise RuntimeError("Both events must be recorded before calculating elapsed time.")
        return (end.t - self.t) * 1e3


class FakeGraph:
    """A captured sequence of device operations (``(func, args, kwargs, out)``), replayed in place."""

    state: State

    def __init__(self, keep_graph: bool = False) -> None:
        self.ops: list[tuple[Any, tuple, dict, Any]] = []
        self.failed = False
        self.captured = False

    def replay(self) -> None:
        assert self.captured and not self.failed, "replay of a graph that was not captured"
        self.state.ledger.count("replays")
        with torch._C.DisableTorchFunction(), torch.inference_mode():
            for func, args, kwargs, out in self.ops:
                _copy_into(out, func(*args, **kwargs))

    def reset(self) -> None:
        self.ops.clear()


def _copy_into(out: Any, result: Any) -> None:
    if isinstance(out, torch.Tensor):
        if out is not result:
            out.copy_(result)
    elif isinstance(out, (tuple, list)):
        for o, r in zip(out, result, strict=True):
            _copy_into(o, r)


class GraphCapture:
    """``torch.cuda.graph(cuda_graph, pool=None, stream=None, capture_error_mode=...)``."""

    state: State

    def __init__(self, cuda_graph: FakeGraph, pool: Any = None, stream: Any = None,
                 capture_error_mode: str = "global") -> None:  # fmt: skip
        assert isinstance(cuda_graph, FakeGraph), (
            f"graph() needs a CUDAGraph, got {type(cuda_graph).__name__}"
        )
        self.graph, self.stream = cuda_graph, stream or FakeStream(self.state)
        self.pool = pool

    def __enter__(self) -> FakeGraph:
        self.state.sync("torch.cuda.graph: device synchronize before capture")
        local = self.state.local
        self._saved = getattr(local, "stream", None)
        local.stream, local.graph = self.stream, self.graph
        return self.graph

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        local = self.state.local
        local.stream, local.graph = self._saved, None
        if exc_type is not None or self.graph.failed:
            self.graph.failed = True
            self.state.ledger.count("capture_failures")
            return
        self.graph.captured = True
        self.state.ledger.count("captures")


class StreamContext:
    """``torch.cuda.stream(s)``: ``s`` is this thread's current stream inside (``None``: no change)."""

    def __init__(self, state: State, stream: FakeStream | None) -> None:
        assert stream is None or isinstance(stream, FakeStream), f"stream() needs a stream, got {stream!r}"
        self.state, self.stream = state, stream

    def __enter__(self) -> FakeStream | None:
        self._saved = getattr(self.state.local, "stream", None)
        if self.stream is not None:
            self.state.local.stream = self.stream
        return self.stream

    def __exit__(self, *exc: Any) -> None:
        self.state.local.stream = self._saved


class DeviceContext:
    """``torch.cuda.device(d)``: one device here, so only the argument is checked."""

    def __init__(self, device: Any) -> None:
        assert torch.device(device if not isinstance(device, int) else f"cuda:{device}").type == "cuda"

    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: Any) -> None:
        return None


def cuda_functions(state: State) -> dict[str, Any]:
    """The ``torch.cuda`` attributes the session replaces (restored when it ends)."""
    for cls in (FakeEvent, FakeGraph, GraphCapture):
        cls.state = state

    def set_stream(stream: FakeStream) -> None:
        assert isinstance(stream, FakeStream), f"set_stream needs a stream, got {stream!r}"
        state.local.stream = stream

    return {
        "is_available": lambda: True,
        "device_count": lambda: 1,
        "current_device": lambda: 0,
        "get_device_name": lambda *a: "device-semantics CPU",
        "get_device_capability": lambda *a: (9, 0),
        "Stream": lambda device=None, priority=0: FakeStream(state, device, priority),
        "Event": FakeEvent,
        "stream": lambda s: StreamContext(state, s),
        "current_stream": lambda device=None: state.current(),
        "default_stream": lambda device=None: state.default,
        "set_stream": set_stream,
        "synchronize": lambda device=None: state.sync("torch.cuda.synchronize"),
        "CUDAGraph": FakeGraph,
        "graph": GraphCapture,
        "graph_pool_handle": lambda: object(),
        "is_current_stream_capturing": lambda: state.capturing() is not None,
        "device": DeviceContext,
        "empty_cache": lambda: None,
        "max_memory_allocated": lambda *a: 0,
        "memory_allocated": lambda *a: 0,
        "reset_peak_memory_stats": lambda *a: None,
    }
