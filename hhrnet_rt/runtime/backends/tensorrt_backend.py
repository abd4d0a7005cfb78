"""TensorRT backend: runs an engine built by ``hhrt build-engine`` on torch CUDA tensors (no pycuda).

Device memory and streams are torch's: the input tensor's ``data_ptr()`` and freshly allocated torch
output tensors are bound with ``set_tensor_address`` and the engine is enqueued with
``execute_async_v3`` on the backend's own ``torch.cuda.Stream``, ordered against the caller's stream by
events (:class:`~hhrnet_rt.runtime.backends.stream.BackendStream`). So GPU preprocessing, inference and anything
after it share one CUDA context, :meth:`TensorRTBackend.run_torch` copies nothing, and the engine's
kernels overlap the upload of the next frame. An execution context is not thread-safe (it holds the
shape and addresses of the call being set up), so calls are serialised by a lock while enqueued.

A file that is not an engine for this TensorRT (truncated, overwritten, another version) is refused with
:class:`~hhrnet_rt.core.errors.EngineMismatchError` saying to rebuild it, whether ``deserialize_cuda_engine``
returns ``None`` or raises; an execution context TensorRT cannot create (out of GPU memory) is a
:class:`~hhrnet_rt.core.errors.BackendUnavailableError`, never a ``None`` that fails later.

Before deserializing, the sidecar (``NAME.json``) is checked against this GPU and TensorRT version
(:func:`hhrnet_rt.artifacts.sidecar.check_engine_compatible`): an engine from another machine fails with
a message that says to rebuild, instead of a TensorRT deserialization error.

Example:
    >>> backend = TensorRTBackend("engines/w32_512-512-fp16.engine")   # doctest: +SKIP
    >>> heatmaps, tags = backend.run(x)                                   # doctest: +SKIP
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np

from hhrnet_rt.artifacts.shape_profile import ShapeProfile, profile_from_dict
from hhrnet_rt.artifacts.sidecar import OUTPUT_NAMES, Sidecar, check_engine_compatible, sidecar_path_for
from hhrnet_rt.core.errors import (
    BackendUnavailableError,
    EngineMismatchError,
    InputError,
    TensorRTUnavailableError,
    option,
    tensorrt_install_hint,
)
from hhrnet_rt.core.inputs import input_file_problem, shown
from hhrnet_rt.core.names import BackendName
from hhrnet_rt.runtime.backends.base import check_batch, describe_common
from hhrnet_rt.runtime.backends.stream import BackendStream
from hhrnet_rt.runtime.backends.torch_cuda import cuda_device

log = logging.getLogger(__name__)

# TensorRT DataType names -> torch dtype names (looked up by name so this table needs no tensorrt import).
_TORCH_DTYPES = {
    "FLOAT": "float32",
    "HALF": "float16",
    "BF16": "bfloat16",
    "INT8": "int8",
    "INT32": "int32",
    "INT64": "int64",
    "BOOL": "bool",
    "UINT8": "uint8",
}


def import_tensorrt(onnx_path: Path | None = None) -> Any:
    """Import ``tensorrt`` or raise :class:`TensorRTUnavailableError` saying how to get it."""
    try:
        import tensorrt as trt
    except ImportError as exc:
        import torch

        ready = f" The ONNX file is ready: {onnx_path}." if onnx_path is not None else ""
        raise TensorRTUnavailableError(
            f"TensorRT is not installed ({exc}).{ready} To build an engine, run on a machine with an NVIDIA "
            f"GPU: {tensorrt_install_hint(torch.version.cuda)}; then run `hhrt build-engine` again."
        ) from None
    return trt


def torch_dtype_name(trt_dtype: Any) -> str:
    """torch dtype name for a TensorRT ``DataType`` (or its name)."""
    key = getattr(trt_dtype, "name", str(trt_dtype).rsplit(".", 1)[-1]).upper()
    if key not in _TORCH_DTYPES:
        raise BackendUnavailableError(f"engine uses tensor type {key}, which this backend cannot bind")
    return _TORCH_DTYPES[key]


def check_input_shape(shape: tuple[int, ...], profile: ShapeProfile) -> None:
    """Raise :class:`InputError` when an input shape is outside the engine's optimisation profile."""
    if len(shape) != 4 or shape[1] != 3:
        raise InputError(f"TensorRT engine input must be (N, 3, H, W), got {tuple(shape)}")
    if not profile.contains(tuple(shape)):
        raise InputError(
            f"input {tuple(shape)} is outside the engine's shape profile min {profile.min} .. max "
            f"{profile.max}; rebuild with `hhrt build-engine --shapes MIN:OPT:MAX` covering it, or use a "
            f"smaller {option('input_size')}"
        )


def deserialize_engine(runtime: Any, data: bytes, path: Path | str) -> Any:
    """``runtime.deserialize_cuda_engine(data)``, or :class:`EngineMismatchError` saying to rebuild.

    TensorRT reports a bad file by returning ``None`` (and logging why) in some versions and by raising
    in others; both mean the same to the user.
    """
    try:
        engine = runtime.deserialize_cuda_engine(data)
    except Exception as exc:  # noqa: BLE001 - any failure to read the file is the same advice
        raise EngineMismatchError(
            f"TensorRT could not deserialize {path} ({type(exc).__name__}: {exc}); it is not an engine for "
            "this TensorRT version and GPU. Rebuild it with `hhrt build-engine`."
        ) from None
    if engine is None:
        raise EngineMismatchError(
            f"TensorRT could not deserialize {path} (its log above says why); the file is damaged or was "
            "written by another TensorRT version. Rebuild it with `hhrt build-engine`."
        )
    return engine


def create_context(engine: Any, path: Path | str) -> Any:
    """``engine.create_execution_context()``; ``None`` (TensorRT's out-of-memory answer) becomes an error."""
    context = engine.create_execution_context()
    if context is None:
        raise BackendUnavailableError(
            f"TensorRT could not create an execution context for {path}: usually the GPU is out of memory "
            "(other processes, or a max shape profile too large for it). Free GPU memory, or rebuild with "
            "smaller `hhrt build-engine --shapes`."
        )
    return context


class TensorRTBackend:
    """Backend protocol implementation over a serialized TensorRT engine.

    Args:
        engine_path: ``NAME.engine``; ``NAME.json`` must sit beside it.
        device: CUDA device the engine runs on.

    Thread safety: ``run`` and ``run_torch`` may be called from several threads; they are serialised by a
    lock while enqueued (one execution context), and run on the backend's own CUDA stream.

    Raises:
        InputError: the engine file does not exist.
        EngineMismatchError: no/invalid sidecar, the engine was built for another GPU or TensorRT, or the
            file is not an engine TensorRT can deserialize.
        BackendUnavailableError: no CUDA device, or no execution context (GPU out of memory).
        TensorRTUnavailableError: ``tensorrt`` is not importable.
    """

    name = BackendName.tensorrt
    tensor_native = True

    def __init__(self, engine_path: str | Path, *, device: str = "cuda:0") -> None:
        if (problem := input_file_problem(engine_path)) is not None:
            raise InputError(
                f"engine file {shown(engine_path)} {problem}; build one with `hhrt build-engine`"
            )
        self.engine_path = Path(engine_path)
        self.sidecar = Sidecar.read(sidecar_path_for(self.engine_path))
        self.precision = self.sidecar.precision
        self.profile = profile_from_dict(self.sidecar.shape_profile)
        self.max_batch = int(self.profile.max[0])  # `hhrt build-engine --max-batch`

        trt = import_tensorrt()
        import torch

        if not torch.cuda.is_available():
            raise BackendUnavailableError("the TensorRT backend needs a CUDA GPU; torch sees none")
        self._torch = torch
        # With an index: run_torch compares tensor devices, and tensors say "cuda:0", never "cuda".
        self._device = cuda_device(device)
        self.device = str(self._device)
        gpu_name = torch.cuda.get_device_name(self._device)
        capability = torch.cuda.get_device_capability(self._device)
        check_engine_compatible(
            self.sidecar, gpu_name=gpu_name, compute_capability=capability, trt_version=trt.__version__
        )

        self._logger = trt.Logger(trt.Logger.WARNING)
        with torch.cuda.device(self._device):
            self._runtime = trt.Runtime(self._logger)
            self._engine = deserialize_engine(self._runtime, self.engine_path.read_bytes(), self.engine_path)
            self._context = create_context(self._engine, self.engine_path)
        names = [self._engine.get_tensor_name(i) for i in range(self._engine.num_io_tensors)]
        inputs = [n for n in names if self._engine.get_tensor_mode(n) == trt.TensorIOMode.INPUT]
        self._outputs = [n for n in names if n not in inputs]
        if len(inputs) != 1 or set(self._outputs) != set(OUTPUT_NAMES):
            raise EngineMismatchError(
                f"engine {self.engine_path} has inputs {inputs} and outputs {self._outputs}; expected one "
                f"input and outputs {', '.join(OUTPUT_NAMES)}. Rebuild it with `hhrt build-engine`."
            )
        self._input = inputs[0]
        self._dtypes = {n: getattr(torch, torch_dtype_name(self._engine.get_tensor_dtype(n))) for n in names}
        self.gpu_name, self.trt_version = gpu_name, trt.__version__
        self._stream = BackendStream(self._device)

    def run_torch(self, x: Any) -> tuple[Any, Any]:
        """Run on a CUDA tensor ``(N, 3, h, w)`` float32; returns CUDA ``(heatmaps, tags)`` (engine dtype).

        Enqueued on the backend's stream; the results are ready for any later work on the caller's
        current stream. Thread-safe: calls are serialised by a lock while they are enqueued.
        """
        if not (x.is_cuda and x.device == self._device):
            raise InputError(f"run_torch needs a tensor on {self._device}, got one on {x.device}")
        check_input_shape(tuple(x.shape), self.profile)
        return self._stream.call(self._enqueue, x)

    def _enqueue(self, x: Any) -> tuple[Any, Any]:
        """Bind ``x`` and new output tensors and enqueue the engine; runs on the backend stream, locked."""
        torch = self._torch
        x = x.to(self._dtypes[self._input]).contiguous()
        ctx = self._context
        if not ctx.set_input_shape(self._input, tuple(x.shape)):
            # TensorRT returns False (and logs) for a shape outside the profile; going on would leave -1
            # dims in the output shapes and fail in torch.empty with a message about neither.
            raise InputError(
                f"TensorRT refused the input shape {tuple(x.shape)}: it is outside the engine's profile "
                f"{self.profile.as_dict()}; rebuild the engine with {option('shapes')} covering it"
            )
        ctx.set_tensor_address(self._input, x.data_ptr())
        outputs = {}
        for name in self._outputs:
            shape = tuple(ctx.get_tensor_shape(name))  # concrete once the input shape is set
            out = torch.empty(shape, dtype=self._dtypes[name], device=self._device)
            ctx.set_tensor_address(name, out.data_ptr())
            outputs[name] = out
        # x may be a converted copy made here; freed on return, its memory must not be reused before the
        # engine has read it: the allocator orders reuse on the stream it was allocated on (this one).
        stream = self._stream.stream
        if stream is None:  # a CPU device has no stream, and TensorRT runs on CUDA devices only
            raise BackendUnavailableError(f"the TensorRT backend runs on a CUDA device, not {self._device}")
        if not ctx.execute_async_v3(stream.cuda_stream):
            raise BackendUnavailableError(
                f"TensorRT failed to run {self.engine_path} on input {tuple(x.shape)}"
            )
        heatmaps, tags = (outputs[name] for name in OUTPUT_NAMES)
        return heatmaps, tags

    def run(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Backend protocol: numpy ``(N, 3, h, w)`` float32 in, numpy float32 ``(heatmaps, tags)`` out."""
        torch = self._torch
        # Pinned host memory: the upload is a real asynchronous DMA.
        xt = torch.from_numpy(check_batch(x)).pin_memory().to(self._device, non_blocking=True)
        heatmaps, tags = self.run_torch(xt)
        # .cpu() runs on the caller's stream, which waits for the backend's: the arrays are complete.
        return heatmaps.float().cpu().numpy(), tags.float().cpu().numpy()

    def describe(self) -> dict[str, Any]:
        return describe_common(
            self,
            engine=str(self.engine_path),
            gpu=self.gpu_name,
            tensorrt=self.trt_version,
            shape_profile=self.sidecar.shape_profile,
            input_size=self.sidecar.input_size,
            flip=self.sidecar.flip,
        )
