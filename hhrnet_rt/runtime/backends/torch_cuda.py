"""torch CUDA backend: fp32/fp16, channels_last, cudnn.benchmark, CUDA graphs, preprocessing on the GPU.

* precision: fp32 by default (official parity); fp16 is opt-in (``PoseEstimator(precision="fp16")``,
  ``--precision fp16``): the graph runs in half precision (weights ``.half()``), inputs arrive as
  float32 and outputs are returned as float32, like the fp16 ONNX graph.
* CUDA graphs: a graph is captured once per input shape and replayed, which removes the per-kernel launch
  overhead that dominates at batch 1. The graphs of the last ``max_graphs`` shapes are kept (multi-scale
  frames, partial batches, streams of several sizes and ``hhrt serve`` requests alternate between a few
  shapes: recapturing on every change would cost a stream sync, 3 eager runs and a capture each time),
  all in one memory pool. A capture that fails switches the backend to eager execution for good, once.
* GPU preprocessing happens before the backend (:class:`~hhrnet_rt.runtime.device_prep.DevicePreprocessor`
  and the warp of :mod:`hhrnet_rt.runtime.warp_torch`): the frame is uploaded as uint8, warped and
  normalised on the GPU; :meth:`TorchCudaBackend.run_torch` then runs on that tensor without a host
  round trip.

All of it is importable without a GPU; the CUDA parts are tested where one exists.
"""

from __future__ import annotations

import copy
import warnings
from collections import OrderedDict
from typing import Any

import numpy as np

from hhrnet_rt.core.errors import BackendUnavailableError, InputError, option
from hhrnet_rt.core.names import BackendName
from hhrnet_rt.runtime.backends.base import check_batch, describe_common
from hhrnet_rt.runtime.backends.stream import BackendStream
from hhrnet_rt.runtime.device_transfer import maps_to_host


def cuda_device(device: str) -> Any:
    """``torch.device`` with an explicit index: tensors report ``cuda:0``, and ``torch.device("cuda")``
    does not compare equal to that, so "cuda" is resolved to the current device once, here."""
    import torch

    dev = torch.device(device)
    if dev.type == "cuda" and dev.index is None:
        dev = torch.device("cuda", torch.cuda.current_device())
    return dev


class TorchCudaBackend:
    """Backend protocol implementation: a pose graph (``PoseGraph``) on a CUDA device.

    Args:
        graph: the ``PoseGraph`` (network + flip + aggregation) in eval mode.
        device: CUDA device ("cuda" means the current one; stored with its index).
        precision: ``fp32`` (default: official parity; TF32 convolutions are switched off, see below)
            or ``fp16`` (opt-in).
        cuda_graphs: capture/replay a CUDA graph per input shape.
        max_graphs: how many shapes keep their graph (least recently used dropped first).
        channels_last: NHWC memory format (faster convolutions on tensor cores).

    Streams and threads: every call runs on the backend's own CUDA stream (graph capture included) and is
    ordered against the caller's current stream by events, so no caller synchronises by hand. Calls from
    several threads are safe: they are serialised by a lock while enqueued (the captured graph's static
    buffers are shared), and the GPU work of one overlaps the enqueueing of the next.

    Process-wide torch settings it makes (as cuDNN autotuning must be): ``cudnn.benchmark = True``, and
    for fp32 ``cudnn.allow_tf32 = False`` -- torch's default lets cuDNN run "fp32" convolutions in TF32
    (10-bit mantissa) on Ampere and newer GPUs, which would not be the fp32 that describe() reports.

    Raises:
        InputError: a precision other than fp32 / fp16.
        BackendUnavailableError: no CUDA device is visible to torch.
    """

    name = BackendName.torch
    tensor_native = True
    max_batch = None  # any batch (each batch size captures its own CUDA graph)

    def __init__(
        self,
        graph: Any,
        *,
        device: str = "cuda:0",
        precision: str = "fp32",
        cuda_graphs: bool = True,
        channels_last: bool = True,
        max_graphs: int = 8,
    ) -> None:
        import torch

        if precision not in ("fp16", "fp32"):
            raise InputError(
                f"the torch CUDA backend runs fp16 or fp32, not {precision!r} (int8 needs TensorRT)"
            )
        if not torch.cuda.is_available():
            raise BackendUnavailableError(
                "no CUDA GPU is visible to torch (CPU-only build or no driver); use "
                f"{option('device', 'cpu')} or {option('backend', 'onnxruntime')}"
            )
        torch.backends.cudnn.benchmark = True  # fixed input sizes per stream: let cuDNN pick the fastest algo
        if precision == "fp32":
            torch.backends.cudnn.allow_tf32 = False  # IEEE fp32 convolutions (see the class docstring)
        self._torch = torch
        self._device = cuda_device(device)
        self.device = str(self._device)
        self.precision = precision
        self._dtype = torch.float16 if precision == "fp16" else torch.float32
        self._memory_format = torch.channels_last if channels_last else torch.contiguous_format
        # A copy: Module.to() converts in place, and the caller's graph (e.g. the estimator's, also used
        # for ONNX export) must stay fp32 on the CPU; converting it to half and back would round weights.
        self._graph = copy.deepcopy(graph).eval()
        self._graph.to(self._device, dtype=self._dtype, memory_format=self._memory_format)
        self._use_cuda_graphs = cuda_graphs
        self._graph_failure: str | None = None  # why graphs were given up (describe() says it)
        self._max_graphs = max(1, int(max_graphs))
        self._captured: OrderedDict[tuple[int, ...], tuple[Any, Any, Any]] = OrderedDict()
        # One pool for every graph: memory grows to the largest graph's, not to the sum. Safe because
        # replays are serialised on the backend stream and each replay's outputs are cloned before the
        # next replay; the static inputs are allocated outside the pool, so no graph writes over them.
        self._pool: Any = None
        self._stream = BackendStream(self._device)

    def _forward(self, x: Any) -> tuple[Any, Any]:
        x = x.to(self._dtype).contiguous(memory_format=self._memory_format)
        heatmaps, tags = self._graph(x)
        return heatmaps.float(), tags.float()

    def _capture(self, shape: tuple[int, ...]) -> tuple[Any, Any, Any]:
        """Warm up and capture the graph for ``shape``; called on the backend stream, under its lock."""
        torch = self._torch
        if len(self._captured) >= self._max_graphs:  # drop the least recently used shape
            self._stream.synchronize()  # its graph may still be replaying
            self._captured.popitem(last=False)
        if self._pool is None:
            self._pool = torch.cuda.graph_pool_handle()
        static_in = torch.zeros(shape, dtype=torch.float32, device=self._device)
        with torch.inference_mode():
            for _ in range(3):  # warm-up outside the graph (on the backend's side stream): cuDNN autotuning
                self._forward(static_in)
        cuda_graph = torch.cuda.CUDAGraph()
        # Captured on the backend's own stream. "thread_local": only this thread is barred from unsafe CUDA
        # calls during the capture; the default ("global") would make another thread's cudaMalloc (e.g.
        # the preprocessing of the next frame) fail, or invalidate this capture.
        with (
            torch.cuda.graph(
                cuda_graph, pool=self._pool, stream=self._stream.stream, capture_error_mode="thread_local"
            ),
            torch.inference_mode(),
        ):
            static_out = self._forward(static_in)
        self._captured[shape] = (cuda_graph, static_in, static_out)
        return self._captured[shape]

    def _replayable(self, shape: tuple[int, ...]) -> tuple[Any, Any, Any] | None:
        """The graph of ``shape`` (captured now if new), or None once a capture has failed."""
        if shape in self._captured:
            self._captured.move_to_end(shape)
            return self._captured[shape]
        try:
            return self._capture(shape)
        except RuntimeError as exc:  # the capture is refused (an op that syncs, a driver limit): run eager
            self._use_cuda_graphs, self._graph_failure = False, f"{type(exc).__name__}: {exc}"
            self._captured.clear()
            warnings.warn(
                f"CUDA graph capture failed for input {shape}; running without CUDA graphs from now on "
                f"({self._graph_failure})",
                RuntimeWarning,
                stacklevel=2,
            )
            return None

    def _enqueue(self, x: Any) -> tuple[Any, Any]:
        """The work of one call, on the backend stream (see :meth:`run_torch`)."""
        torch = self._torch
        captured = self._replayable(tuple(x.shape)) if self._use_cuda_graphs else None
        if captured is None:
            with torch.inference_mode():
                return self._forward(x.to(self._device))
        cuda_graph, static_in, (hm, tags) = captured
        static_in.copy_(x)
        cuda_graph.replay()
        # Clones: the static outputs are overwritten by the next replay, callers may keep these.
        return hm.clone(), tags.clone()

    def run_torch(self, x: Any) -> tuple[Any, Any]:
        """CUDA ``(N, 3, h, w)`` float32 in, CUDA float32 ``(heatmaps, tags)`` out.

        Runs on the backend's stream; the results are ready for any later work on the caller's current
        stream (:class:`~hhrnet_rt.runtime.backends.stream.BackendStream`). Thread-safe: calls are serialised
        by a lock while they are enqueued.
        """
        return self._stream.call(self._enqueue, x)

    def run(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Backend protocol: numpy ``(N, 3, h, w)`` float32 in, numpy float32 ``(heatmaps, tags)`` out."""

        # Pinned host memory: the upload is a real asynchronous DMA (the caching host allocator keeps the
        # buffer until the copy has run).
        xt = self._torch.from_numpy(check_batch(x)).pin_memory().to(self._device, non_blocking=True)
        heatmaps, tags = self.run_torch(xt)
        # Contiguous on the device, then one copy each (a channels_last graph's outputs are strided; see
        # maps_to_host). The copy runs on the caller's stream, which waits for the backend's.

        heatmaps, tags, _ = maps_to_host(heatmaps, tags)
        return heatmaps, tags

    def describe(self) -> dict[str, Any]:
        return describe_common(
            self,
            gpu=self._torch.cuda.get_device_name(self._device),
            cuda_graphs=self._use_cuda_graphs,
            cuda_graph_shapes=len(self._captured),
            **({"cuda_graph_failure": self._graph_failure} if self._graph_failure else {}),
            channels_last=self._memory_format is self._torch.channels_last,
        )
