"""Device semantics on the CPU: run hhrnet-rt's CUDA code paths with CPU tensors that behave like GPU
tensors where it matters, and count what a GPU would pay for.

    with device_semantics() as ledger:
        est = PoseEstimator(weights, backend="torch", device="cuda")   # TorchCudaBackend, fake cuda:0
        est.warmup((480, 640))
        ledger.reset()
        for frame in frames:
            est.predict(frame)
        ledger.assert_budget(frames=len(frames))

Inside, ``torch.cuda`` reports one GPU ("device-semantics CPU", sm 9.0) and its streams, events, graphs
and pinned memory are stand-ins (:mod:`.fake_cuda`); tensors made "on cuda" are :class:`DeviceTensor` s
that refuse host conversions and record every read, upload and synchronisation (:mod:`.mode`) in the
:class:`Ledger` (:mod:`.ledger`). The mode is pushed in the calling thread and in every thread started
inside the block (the pipeline's), since torch function modes are per thread. The declared transfer
points are hhrnet_rt/decode/device_io.py's ``TRANSFER_POINTS``.

What it cannot show: timing, real asynchrony (everything has run when a call returns, so a missing
``wait_event`` goes unnoticed), kernel numerics (they are the CPU's). The GPU check measures those.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator

import torch

from .fake_cuda import DEVICE, CaptureError, State, cuda_functions
from .ledger import READ_BYTES_PER_FRAME, READS_PER_FRAME, Ledger
from .mode import DeviceMode, DeviceSemanticsError, DeviceTensor, plain

__all__ = [
    "DEVICE",
    "READS_PER_FRAME",
    "READ_BYTES_PER_FRAME",
    "CaptureError",
    "DeviceSemanticsError",
    "DeviceTensor",
    "Ledger",
    "device_semantics",
    "plain",
]


def _record_stream(state: State):
    def record_stream(self: torch.Tensor, stream: object) -> None:
        from .fake_cuda import FakeStream

        if not isinstance(self, DeviceTensor):
            raise RuntimeError("record_stream of a host tensor: only CUDA tensors have streams")
        if not isinstance(stream, FakeStream):
            raise TypeError(f"record_stream needs a stream, got {type(stream).__name__}")

    return record_stream


@contextlib.contextmanager
def device_semantics() -> Iterator[Ledger]:
    """The session (see the module docstring); yields its :class:`Ledger`."""
    if torch.cuda.is_available():
        raise RuntimeError("device semantics stand in for a GPU; this machine has one: run the gpu tests")
    ledger = Ledger()
    state = State(ledger)
    mode = DeviceMode(state)
    saved = {name: getattr(torch.cuda, name) for name in cuda_functions(state)}
    run = threading.Thread.run

    def run_in_mode(thread: threading.Thread) -> None:
        with mode:
            run(thread)

    overwrite = torch.__future__.get_overwrite_module_params_on_conversion()
    try:
        for name, value in cuda_functions(state).items():
            setattr(torch.cuda, name, value)
        torch.Tensor.record_stream = _record_stream(state)  # type: ignore[method-assign]
        threading.Thread.run = run_in_mode  # type: ignore[method-assign]
        # Module.to(cuda) then replaces each parameter by a DeviceTensor instead of assigning .data
        # (which would keep the plain CPU Parameter): the module's weights are "on the device".
        torch.__future__.set_overwrite_module_params_on_conversion(True)
        with mode:
            yield ledger
    finally:
        torch.__future__.set_overwrite_module_params_on_conversion(overwrite)
        threading.Thread.run = run  # type: ignore[method-assign]
        del torch.Tensor.record_stream
        for name, value in saved.items():
            setattr(torch.cuda, name, value)
