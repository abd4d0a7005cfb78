"""TensorRT backend: runs an engine built by ``hhrt build-engine`` on torch CUDA tensors (no pycuda).

Device memory and the stream are torch's: the input tensor's ``data_ptr()`` and freshly allocated torch
output tensors are bound with ``set_tensor_address`` and the engine is enqueued on
``torch.cuda.current_stream()``. So GPU preprocessing, inference and anything after it share one CUDA
context and one stream, and :meth:`TensorRTBackend.run_torch` copies nothing.

Before deserializing, the sidecar (``NAME.json``) is checked against this GPU and TensorRT version
(:func:`hhrnet_rt.export.sidecar.check_engine_compatible`): an engine from another machine fails with
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

from hhrnet_rt.errors import BackendUnavailableError, EngineMismatchError, InputError
from hhrnet_rt.export.sidecar import Sidecar, check_engine_compatible, sidecar_path_for
from hhrnet_rt.export.tensorrt_build import ShapeProfile, profile_from_dict
from hhrnet_rt.inputs import input_file_problem, shown

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
            "smaller --input-size"
        )


class TensorRTBackend:
    """Backend protocol implementation over a serialized TensorRT engine.

    Args:
        engine_path: ``NAME.engine``; ``NAME.json`` must sit beside it.
        device: CUDA device the engine runs on.

    Raises:
        InputError: the engine file does not exist.
        EngineMismatchError: no/invalid sidecar, or the engine was built for another GPU or TensorRT.
        TensorRTUnavailableError: ``tensorrt`` is not importable.
        BackendUnavailableError: no CUDA device.
    """

    name = "tensorrt"

    def __init__(self, engine_path: str | Path, *, device: str = "cuda:0") -> None:
        if (problem := input_file_problem(engine_path)) is not None:
            raise InputError(
                f"engine file {shown(engine_path)} {problem}; build one with `hhrt build-engine`"
            )
        self.engine_path = Path(engine_path)
        self.sidecar = Sidecar.read(sidecar_path_for(self.engine_path))
        self.precision = self.sidecar.precision
        self.profile = profile_from_dict(self.sidecar.shape_profile)

        from hhrnet_rt.export.tensorrt_build import import_tensorrt

        trt = import_tensorrt()
        import torch

        if not torch.cuda.is_available():
            raise BackendUnavailableError("the TensorRT backend needs a CUDA GPU; torch sees none")
        from hhrnet_rt.backends.torch_cuda import cuda_device

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
            self._engine = self._runtime.deserialize_cuda_engine(self.engine_path.read_bytes())
            if self._engine is None:
                raise EngineMismatchError(
                    f"TensorRT could not deserialize {self.engine_path} (see its log above); "
                    "rebuild it with `hhrt build-engine`"
                )
            self._context = self._engine.create_execution_context()
        names = [self._engine.get_tensor_name(i) for i in range(self._engine.num_io_tensors)]
        inputs = [n for n in names if self._engine.get_tensor_mode(n) == trt.TensorIOMode.INPUT]
        self._outputs = [n for n in names if n not in inputs]
        if len(inputs) != 1 or set(self._outputs) != {"heatmaps", "tags"}:
            raise EngineMismatchError(
                f"engine {self.engine_path} has inputs {inputs} and outputs {self._outputs}; expected one "
                "input and outputs heatmaps, tags. Rebuild it with `hhrt build-engine`."
            )
        self._input = inputs[0]
        self._dtypes = {n: getattr(torch, torch_dtype_name(self._engine.get_tensor_dtype(n))) for n in names}
        self.gpu_name, self.trt_version = gpu_name, trt.__version__

    def run_torch(self, x: Any) -> tuple[Any, Any]:
        """Run on a CUDA tensor ``(N, 3, h, w)`` float32; returns CUDA ``(heatmaps, tags)`` (engine dtype).

        Enqueued on the current torch stream; results are ready for any later work on that stream.
        """
        torch = self._torch
        if not (x.is_cuda and x.device == self._device):
            raise InputError(f"run_torch needs a tensor on {self._device}, got one on {x.device}")
        check_input_shape(tuple(x.shape), self.profile)
        x = x.to(self._dtypes[self._input]).contiguous()
        ctx = self._context
        ctx.set_input_shape(self._input, tuple(x.shape))
        ctx.set_tensor_address(self._input, x.data_ptr())
        outputs = {}
        for name in self._outputs:
            shape = tuple(ctx.get_tensor_shape(name))  # concrete once the input shape is set
            out = torch.empty(shape, dtype=self._dtypes[name], device=self._device)
            ctx.set_tensor_address(name, out.data_ptr())
            outputs[name] = out
        stream = torch.cuda.current_stream(self._device)
        if not ctx.execute_async_v3(stream.cuda_stream):
            raise BackendUnavailableError(
                f"TensorRT failed to run {self.engine_path} on input {tuple(x.shape)}"
            )
        return outputs["heatmaps"], outputs["tags"]

    def run(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Backend protocol: numpy ``(N, 3, h, w)`` float32 in, numpy float32 ``(heatmaps, tags)`` out."""
        from hhrnet_rt.backends.base import check_batch

        torch = self._torch
        xt = torch.from_numpy(check_batch(x)).to(self._device, non_blocking=True)
        heatmaps, tags = self.run_torch(xt)
        # .cpu() waits for the stream, so the numpy arrays are complete.
        return heatmaps.float().cpu().numpy(), tags.float().cpu().numpy()

    def describe(self) -> dict[str, Any]:
        return {
            "backend": self.name,
            "device": self.device,
            "precision": self.precision,
            "engine": str(self.engine_path),
            "gpu": self.gpu_name,
            "tensorrt": self.trt_version,
            "shape_profile": self.sidecar.shape_profile,
            "input_size": self.sidecar.input_size,
            "flip": self.sidecar.flip,
        }
