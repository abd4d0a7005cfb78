"""One CUDA stream and one lock per backend: how the CUDA backends order their work and their callers.

Why a stream of its own: work enqueued on torch's legacy default stream serialises with everything else
on it (the preprocessing of the next frame, the copy of the last maps to the host). On its own stream a
backend's kernels overlap the upload and warp of frame n+1, which the preprocessor enqueues on *its*
stream (:class:`~hhrnet_rt.runtime.device_prep.DevicePreprocessor`).

Why a lock: a captured CUDA graph replays into the same static input and output buffers, and a TensorRT
execution context holds the input shape and the tensor addresses of the call being set up; two threads
inside one call would overwrite each other's. So calls are serialised, but only while they are
*enqueued*: the lock is released once the work is on the stream, and the GPU runs it while the next
caller enqueues (the single stream keeps the replays in order on the device).

The ordering rules :meth:`BackendStream.call` applies, so callers never synchronise by hand:

* the backend stream waits for the caller's current stream, so inputs made there are complete;
* inputs are marked as used on the backend stream (``record_stream``): the caching allocator must not
  hand their memory to someone else while the backend still reads them;
* the caller's stream waits for the backend stream, and the outputs are marked as used there, so any
  later work of the caller (``.cpu()``, decode on the device) sees complete results.

On a CPU device there is no stream: :meth:`BackendStream.call` only takes the lock, which is how the
tests check the serialisation on a machine without a GPU.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from typing import Any


def _tensors(values: Sequence[Any]) -> list[Any]:
    return [v for v in values if hasattr(v, "record_stream") and getattr(v, "is_cuda", False)]


class BackendStream:
    """The stream and lock of one backend on ``device`` (a ``torch.device``).

    Attributes:
        stream: the backend's ``torch.cuda.Stream`` (``None`` on the CPU).
        lock: held while a call is enqueued (and, on the CPU, while it runs).
    """

    def __init__(self, device: Any) -> None:
        import torch

        self.device = torch.device(device)
        self.stream = torch.cuda.Stream(self.device) if self.device.type == "cuda" else None
        self.lock = threading.Lock()

    def call(self, fn: Callable[..., tuple[Any, ...]], *inputs: Any) -> tuple[Any, ...]:
        """``fn(*inputs)`` under the lock, on the backend stream; returns ``fn``'s tuple of tensors.

        The results are ready for any later work on the caller's current stream (see the module
        docstring); the call does not wait for the GPU.
        """
        with self.lock:
            if self.stream is None:
                return fn(*inputs)
            import torch

            caller = torch.cuda.current_stream(self.device)
            self.stream.wait_stream(caller)
            for t in _tensors(inputs):
                t.record_stream(self.stream)
            with torch.cuda.stream(self.stream):
                outputs = fn(*inputs)
            caller.wait_stream(self.stream)
            for t in _tensors(outputs):
                t.record_stream(caller)
            return outputs

    def synchronize(self) -> None:
        """Wait until everything enqueued on the backend stream has run (e.g. before freeing a graph)."""
        if self.stream is not None:
            self.stream.synchronize()


def use_own_stream(device: Any) -> None:
    """Give the calling thread a CUDA stream of its own for the rest of its life (nothing off CUDA).

    For the pipeline's threads: a thread that never sets one works on the legacy default stream, which
    serialises with every other stream of the device, so inference would wait for the decode kernels
    queued before it and decode's host reads for the next frame's inference. With a stream each, they
    overlap; the hand-over between threads is by events (:mod:`hhrnet_rt.runtime.device_transfer`).

    Args:
        device: the estimator's device (``"cuda:0"``, a ``torch.device``; ``None`` or a CPU device: no-op).
    """
    if device is None or not str(device).startswith("cuda"):
        return
    import torch

    torch.cuda.set_stream(torch.cuda.Stream(torch.device(device)))
