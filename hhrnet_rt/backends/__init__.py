"""Inference backends behind one protocol (:class:`~hhrnet_rt.backends.base.Backend`).

``choose_backend`` (in :mod:`.select`) turns a request into a name and device; ``create_backend`` builds
it. Each implementation imports its heavy dependency (onnxruntime, tensorrt) only when it is created.
"""

from __future__ import annotations

import importlib
import importlib.util
import os

from hhrnet_rt.backends.base import Backend
from hhrnet_rt.backends.select import choose_backend
from hhrnet_rt.errors import BackendUnavailableError

__all__ = ["Backend", "choose_backend", "create_backend"]


def create_backend(
    name: str,
    graph=None,
    *,
    device: str = "cpu",
    engine: str | os.PathLike | None = None,
    onnx_threads: int | None = None,
    example_hw: tuple[int, int] = (512, 512),
    cache_dir: str | os.PathLike | None = None,
) -> Backend:
    """Build backend ``name`` ("torch", "onnxruntime", "tensorrt") for ``graph`` (a PoseGraph).

    - torch: runs ``graph`` on ``device``. For CUDA devices the specialised ``TorchCudaBackend(graph,
      device=...)`` from ``backends/torch_cuda.py`` is used when that module exists.
    - onnxruntime: runs ``engine`` when it is an ``.onnx`` file, else exports ``graph`` into the cache
      (keyed by weights, flip, projection and ``example_hw``) and runs that.
    - tensorrt: ``TensorRTBackend(engine, device=...)`` from ``backends/tensorrt_backend.py``.
    """
    if name == "torch":
        if str(device).startswith("cuda") and importlib.util.find_spec("hhrnet_rt.backends.torch_cuda"):
            module = importlib.import_module("hhrnet_rt.backends.torch_cuda")
            return module.TorchCudaBackend(graph, device=device)
        from hhrnet_rt.backends.torch_backend import TorchBackend

        return TorchBackend(graph, device=device)
    if name == "onnxruntime":
        from hhrnet_rt.backends.onnxruntime_backend import OnnxRuntimeBackend

        if engine is not None and os.fspath(engine).endswith(".onnx"):
            return OnnxRuntimeBackend(engine, threads=onnx_threads)
        return OnnxRuntimeBackend.from_graph(
            graph, example_hw=example_hw, cache_dir=cache_dir, threads=onnx_threads
        )
    if name == "tensorrt":
        if engine is None:
            raise BackendUnavailableError("the tensorrt backend needs an engine file (--engine)")
        module = importlib.import_module("hhrnet_rt.backends.tensorrt_backend")
        return module.TensorRTBackend(engine, device=device)
    raise BackendUnavailableError(f"unknown backend {name!r}")
