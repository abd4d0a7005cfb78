"""Inference backends behind one protocol (:class:`~hhrnet_rt.runtime.backends.base.Backend`).

``choose_backend`` (in :mod:`.select`) turns a request into a name and device; ``create_backend`` builds
it. Each implementation imports its heavy dependency (onnxruntime, tensorrt) only when it is created.

What runs where:
    torch, cpu          TorchBackend: fp32 on the CPU; numpy in and out (``run``), or CPU tensors
                        (``run_torch``, used by the estimator's device preprocessing when forced on).
    torch, cuda         TorchCudaBackend: fp32 (default) or fp16 on the GPU, CUDA graphs; ``run_torch``
                        takes and returns CUDA tensors (the estimator's default path on CUDA).
    onnxruntime, cpu    OnnxRuntimeBackend: numpy in and out; precision read from the .onnx file.
    tensorrt, cuda      TensorRTBackend: the engine's precision; ``run_torch`` on CUDA tensors.
    openvino, cpu       OpenVinoBackend (optional extra): numpy in and out; an .onnx PoseGraph (fp32) or
                        the .xml IR of `hhrt build-engine --target openvino` (int8 or fp32).
"""

from __future__ import annotations

import importlib
import os
from typing import TYPE_CHECKING

from hhrnet_rt.artifacts.file_kind import FileKind, file_kind
from hhrnet_rt.core.errors import BackendUnavailableError, InputError, option
from hhrnet_rt.core.names import PRECISIONS, BackendName, Precision, check_precision
from hhrnet_rt.runtime.backends.base import Backend
from hhrnet_rt.runtime.backends.openvino_backend import MODEL_KINDS, OpenVinoBackend
from hhrnet_rt.runtime.backends.select import backend_status, choose_backend
from hhrnet_rt.runtime.backends.torch_cuda import TorchCudaBackend

if TYPE_CHECKING:
    # Every implementation of the protocol, checked by mypy (CI's type check): a missing or mistyped
    # member fails here, on any machine, not at run time on the one machine that has that backend.
    from hhrnet_rt.runtime.backends.onnxruntime_backend import OnnxRuntimeBackend
    from hhrnet_rt.runtime.backends.tensorrt_backend import TensorRTBackend
    from hhrnet_rt.runtime.backends.torch_backend import TorchBackend

    def _implementations(
        torch: TorchBackend,
        torch_cuda: TorchCudaBackend,
        onnxruntime: OnnxRuntimeBackend,
        openvino: OpenVinoBackend,
        tensorrt: TensorRTBackend,
    ) -> list[Backend]:
        return [torch, torch_cuda, onnxruntime, openvino, tensorrt]


__all__ = [
    "PRECISIONS",
    "Backend",
    "BackendName",
    "Precision",
    "backend_status",
    "check_precision",
    "choose_backend",
    "create_backend",
]


def _int8_hint() -> str:
    return (
        "int8 needs a TensorRT engine built with `hhrt build-engine --precision int8` (run it with "
        f"{option('backend', 'tensorrt')} {option('engine', 'NAME.engine')}), or the int8 .onnx file that "
        f"command writes, run with {option('backend', 'onnxruntime')} {option('engine', 'NAME.onnx')}"
    )


def create_backend(
    name: str,
    graph=None,
    *,
    device: str = "cpu",
    precision: str | None = None,
    engine: str | os.PathLike | None = None,
    onnx_threads: int | None = None,
    example_hw: tuple[int, int] = (512, 512),
    cache_dir: str | os.PathLike | None = None,
) -> Backend:
    """Build backend ``name`` ("torch", "onnxruntime", "tensorrt", "openvino") for ``graph`` (a PoseGraph).

    ``precision`` is what the caller asks for; ``None`` means fp32, or the precision of a given
    engine / ``.onnx`` file. A request the backend cannot honour is an error, never a silent switch:

    - torch on CUDA: ``TorchCudaBackend(graph, device=..., precision=...)`` (fp32 or fp16).
    - torch on the CPU: ``TorchBackend`` (fp32 only).
    - onnxruntime: runs ``engine`` when it is an ``.onnx`` file (its precision is read from the file and
      must equal ``precision`` when one is given), else exports ``graph`` (fp32) into the cache (keyed
      by weights, flip and projection) and runs that; fp16/int8 need a file.
    - tensorrt: ``TensorRTBackend(engine, device=...)``; the precision is the engine's (its sidecar)
      and must equal ``precision`` when one is given.
    - openvino: like onnxruntime (``onnx_threads`` are its inference threads), and it also runs the
      ``.xml`` IR ``hhrt build-engine --target openvino`` writes (int8 or fp32, read from the file).

    Raises:
        InputError: a precision the backend cannot run, or one that differs from the given file's.
        BackendUnavailableError: unknown backend, or no engine for tensorrt.
    """
    check_precision(precision)
    if name == BackendName.torch:
        return _torch_backend(graph, device, precision)
    if name == BackendName.onnxruntime:
        from hhrnet_rt.runtime.backends.onnxruntime_backend import OnnxRuntimeBackend

        if engine is not None and file_kind(engine) is FileKind.onnx:
            return _same_precision(OnnxRuntimeBackend(engine, threads=onnx_threads), precision, engine)
        if precision not in (None, "fp32"):
            raise InputError(
                f"ONNX Runtime runs {precision} only from a {precision} .onnx file: write one with `hhrt "
                f"build-engine --precision {precision}` and pass it with {option('engine', 'NAME.onnx')} "
                "(without a file the fp32 graph is exported and run)"
            )
        return OnnxRuntimeBackend.from_graph(
            graph, example_hw=example_hw, cache_dir=cache_dir, threads=onnx_threads
        )
    if name == BackendName.openvino:
        return _openvino_backend(graph, precision, engine, onnx_threads, example_hw, cache_dir)
    if name == BackendName.tensorrt:
        if engine is None:
            raise BackendUnavailableError(f"the tensorrt backend needs an engine file ({option('engine')})")
        module = importlib.import_module("hhrnet_rt.runtime.backends.tensorrt_backend")
        return _same_precision(module.TensorRTBackend(engine, device=device), precision, engine)
    raise BackendUnavailableError(f"unknown backend {name!r}")


def _torch_backend(graph, device: str, precision: str | None) -> Backend:
    precision = precision or "fp32"
    if precision == "int8":
        raise InputError(f"the torch backend runs fp32 or fp16 (fp16 on CUDA only); {_int8_hint()}")
    if str(device).startswith("cuda"):
        return TorchCudaBackend(graph, device=device, precision=precision)
    if precision != "fp32":
        raise InputError(
            f"torch on the CPU runs fp32 only, not {precision}; for {precision} on the CPU use "
            f"{option('backend', 'onnxruntime')} with a {precision} .onnx file (`hhrt build-engine --precision {precision}` "
            "writes one), or run torch on a CUDA device"
        )
    from hhrnet_rt.runtime.backends.torch_backend import TorchBackend

    return TorchBackend(graph, device=device)


def _openvino_backend(graph, precision, engine, threads, example_hw, cache_dir) -> Backend:

    if file_kind(engine) in MODEL_KINDS:
        return _same_precision(OpenVinoBackend(engine, threads=threads), precision, engine)
    if precision not in (None, "fp32"):
        raise InputError(
            f"OpenVINO runs {precision} only from a file: write one with `hhrt build-engine --target openvino "
            f"--precision {precision}` and pass the .xml with {option('engine', 'NAME.xml')} (without a file "
            "the fp32 graph is exported and run)"
        )
    return OpenVinoBackend.from_graph(graph, example_hw=example_hw, cache_dir=cache_dir, threads=threads)


def _same_precision(backend: Backend, requested: str | None, path) -> Backend:
    """The file decides the precision; a different explicit request is an error that names both."""
    actual = backend.precision
    if requested is not None and requested != actual:
        what = {BackendName.tensorrt: "engine", BackendName.openvino: "OpenVINO model"}.get(
            backend.name, "ONNX file"
        )
        raise InputError(
            f"{os.fspath(path)} is a {actual} {what} but precision {requested} was requested; pass a "
            f"{requested} file (`hhrt build-engine --precision {requested}`), or leave the precision "
            f"out to run this file as {actual}"
        )
    return backend
