"""The interface every inference backend implements and the checks they share (the backend and
precision names themselves live in :mod:`hhrnet_rt.core.names`).
"""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

import numpy as np

from hhrnet_rt.core.errors import InputError
from hhrnet_rt.core.names import BackendName

# The keys every ``Backend.describe()`` starts with (backend-specific details follow).
DESCRIBE_KEYS = ("backend", "device", "precision")


@runtime_checkable
class Backend(Protocol):
    """Runs the exported :class:`~hhrnet_rt.model.graph.PoseGraph` computation on one batch.

    Everything the estimator, the pipeline and ``hhrt bench`` use is declared here; nothing is probed.

    Attributes:
        name: a :class:`BackendName`.
        precision: "fp32", "fp16" or "int8" (what the numbers are computed in).
        device: "cpu", "cuda:0", "cuda:1", ...
        tensor_native: ``run_torch`` takes and returns tensors on ``device`` without a round trip through
            numpy (torch, TensorRT). False for ONNX Runtime, whose ``run_torch`` wraps ``run``: it takes
            CPU tensors only. Device preprocessing needs a tensor-native backend.
        max_batch: the largest batch one call accepts (a TensorRT engine's profile), or ``None``: any.
            The estimator's ``infer_batch`` splits larger groups of frames into calls of this size.

    Threads: ``run`` and ``run_torch`` must be safe to call from several threads at once, each caller
    getting the result for its own input (the video pipeline runs inference in its own thread; a server
    may call one estimator from many). How each backend does it is in its docstring: the CUDA backends
    (torch CUDA, TensorRT) share state between calls (CUDA-graph buffers, an execution context) and
    serialise calls with a lock while they are enqueued on their own CUDA stream
    (:class:`~hhrnet_rt.runtime.backends.stream.BackendStream`); torch on the CPU keeps no state between calls;
    an ONNX Runtime session's ``run`` is thread-safe.
    """

    # Read-only to the callers (properties): an implementation may narrow a type, as TensorRT's int
    # ``max_batch`` does, and a plain class attribute (``max_batch = None``) satisfies one. Every
    # implementation is checked against this protocol by mypy (in ``backends/__init__.py``).
    @property
    def name(self) -> BackendName: ...
    @property
    def precision(self) -> str: ...
    @property
    def device(self) -> str: ...
    @property
    def tensor_native(self) -> bool: ...
    @property
    def max_batch(self) -> int | None: ...

    def run(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``x (N, 3, h, w) float32`` -> ``(heatmaps (N, K, h, w), tags (N, K, L, h, w))`` float32 (planar
        tags, :mod:`hhrnet_rt.core.tag_layout`)."""
        ...

    def run_torch(self, x: Any) -> tuple[Any, Any]:
        """The same on a torch tensor on ``device``; returns float32 ``(heatmaps, tags)`` tensors there."""
        ...

    def describe(self) -> dict[str, Any]:
        """JSON-ready facts: :data:`DESCRIBE_KEYS` first (see :func:`describe_common`), then details."""
        ...


def describe_common(backend: Backend, **details: Any) -> dict[str, Any]:
    """A ``describe()`` result: the keys every backend shares, then its own ``details``."""
    return {"backend": str(backend.name), "device": backend.device, "precision": backend.precision, **details}


def run_cpu_tensors(backend: Backend, x: Any) -> tuple[Any, Any]:
    """``run_torch`` of a numpy backend (ONNX Runtime, OpenVINO): CPU tensors in and out, their memory
    shared with numpy both ways (no copy)."""
    import torch

    if not isinstance(x, torch.Tensor) or x.device.type != "cpu":
        raise InputError(
            f"the {backend.name} backend takes CPU tensors, got {getattr(x, 'device', type(x).__name__)}"
        )
    heatmaps, tags = backend.run(x.detach().numpy())
    return torch.from_numpy(heatmaps), torch.from_numpy(tags)


def check_batch(x: np.ndarray) -> np.ndarray:
    """Validate a network input batch; returns it C-contiguous float32 (no copy when it already is)."""
    if not isinstance(x, np.ndarray) or x.ndim != 4 or x.shape[1] != 3:
        shape = getattr(x, "shape", type(x).__name__)
        raise InputError(f"a backend expects an (N, 3, h, w) float32 array, got {shape}")
    if x.dtype != np.float32:
        raise InputError(f"a backend expects float32 input, got {x.dtype}")
    return np.ascontiguousarray(x)
