"""The interface every inference backend implements, and the input check they share."""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import numpy as np

from hhrnet_rt.errors import InputError


@runtime_checkable
class Backend(Protocol):
    """Runs the exported :class:`~hhrnet_rt.graph.PoseGraph` computation on one batch.

    Attributes:
        name: "torch", "onnxruntime" or "tensorrt".
        precision: "fp32", "fp16" or "int8" (what the numbers are computed in).
        device: "cpu", "cuda", "cuda:1", ...

    Threads: ``run`` (and ``run_torch`` where a backend has it) must be safe to call from several threads
    at once, each caller getting the result for its own input (the video pipeline runs inference in its
    own thread; a server may call one estimator from many). How each backend does it is in its
    docstring: the CUDA backends (torch CUDA, TensorRT) share state between calls (CUDA-graph buffers, an
    execution context) and serialise calls with a lock while they are enqueued on their own CUDA stream
    (:class:`~hhrnet_rt.backends.stream.BackendStream`); torch on the CPU keeps no state between calls;
    an ONNX Runtime session's ``run`` is thread-safe.
    """

    name: str
    precision: str
    device: str

    def run(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``x (N, 3, h, w) float32`` -> ``(heatmaps (N, K, h, w), tags (N, K, h, w, L))`` float32."""
        ...

    def describe(self) -> dict:
        """JSON-ready facts: name, device, precision and backend-specific details."""
        ...


def check_batch(x: np.ndarray) -> np.ndarray:
    """Validate a network input batch; returns it C-contiguous float32 (no copy when it already is)."""
    if not isinstance(x, np.ndarray) or x.ndim != 4 or x.shape[1] != 3:
        shape = getattr(x, "shape", type(x).__name__)
        raise InputError(f"a backend expects an (N, 3, h, w) float32 array, got {shape}")
    if x.dtype != np.float32:
        raise InputError(f"a backend expects float32 input, got {x.dtype}")
    return np.ascontiguousarray(x)
