"""The declared transfer points: the only places where hhrnet-rt moves data between host and device memory.

Every device -> host read blocks the calling thread until the GPU has caught up with its stream, and every
host -> device upload from pageable memory does too (CUDA stages it through a pinned buffer and waits). A
real-time pipeline can afford a few small reads per frame and no blocking upload, so the code never
converts a device tensor to a host value anywhere else: :func:`to_host` is the one read, :func:`upload`
the one upload (pinned memory + ``non_blocking``: an asynchronous DMA; the caching host allocator keeps
the pinned block until the copy has run, then reuses it).

:data:`TRANSFER_POINTS` lists them: the device-semantics tests (tests/device_semantics) run the CUDA code
paths on the CPU and refuse any host conversion of a device tensor (``.numpy()``, ``.item()``,
``.tolist()``, ``np.asarray``) and count any read that does not come from one of these functions.

On the CPU both are (nearly) free: :func:`to_host` of a CPU tensor shares its memory, :func:`upload` to
the CPU is ``torch.from_numpy``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    import torch


def to_host(tensor: torch.Tensor) -> np.ndarray:
    """``tensor`` as a host numpy array: one device -> host copy (it waits for the current stream), or
    the tensor's own memory when it already is on the CPU. The strides are kept (make the tensor
    contiguous on the device first when the caller needs a C-contiguous array)."""
    if tensor.device.type == "cpu":
        return tensor.numpy()
    return tensor.cpu().numpy()


def upload(array: np.ndarray, device: Any) -> torch.Tensor:
    """``array`` on ``device`` without blocking the host: pinned memory and ``non_blocking`` on CUDA.

    The copy is ordered on the current stream, so any later work on that stream sees it; the array may
    be changed or freed as soon as this returns (the copy reads the pinned staging block, not ``array``).
    """
    import torch  # here, not at import: the CLI starts without loading torch

    host_array = np.ascontiguousarray(array)
    if not host_array.flags.writeable:  # a tensor is writable: copy rather than alias read-only memory
        host_array = host_array.copy()
    host = torch.from_numpy(host_array)
    device = torch.device(device)
    if device.type == "cpu":
        return host
    return host.pin_memory().to(device, non_blocking=True)


#: The functions allowed to move data between host and device (see the module docstring).
TRANSFER_POINTS = (to_host, upload)
