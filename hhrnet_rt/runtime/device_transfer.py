"""Device tensors between the estimator's stages: run on the device, hand maps over between threads'
CUDA streams, and copy them to the host once when the host decodes them.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from hhrnet_rt.decode.device_io import to_host


def run_on_device(backend: Any, x: Any, ready: Any = None) -> tuple[Any, Any]:
    """``backend.run_torch`` on a device tensor; returns the ``(heatmaps, tags)`` tensors, still on the device.

    Waits for ``ready`` (the preprocessing event) on the current stream first, so preprocessing and
    inference may run in different threads with different current streams. Nothing is copied to the
    host here: the estimator either decodes on the device or calls :func:`maps_to_host`.
    """
    if ready is not None:
        import torch

        stream = torch.cuda.current_stream(x.device)
        stream.wait_event(ready)
        x.record_stream(stream)  # the caching allocator must not reuse x before this stream is done
    return backend.run_torch(x)


def maps_to_host(heatmaps: Any, tags: Any) -> tuple[np.ndarray, np.ndarray, int]:
    """Host float32 ``(heatmaps, tags)`` C-contiguous arrays of torch tensors, and the bytes copied.

    Contiguity is made where the tensors are: a channels_last graph's outputs are strided, and copying
    them as they are would hand the decoder a strided array that it transposes on the CPU (a second
    full-map copy). So: ``.contiguous()`` on the device, then one copy each. On the CPU nothing crosses
    (0 bytes; ``.numpy()`` shares the memory of an already contiguous tensor). Pass the graph's planar
    tags (N, K, L, H, W), not their per-pixel view: contiguous, that view would be an interleaving copy.
    """
    out, nbytes = [], 0
    for t in (heatmaps, tags):
        t = t.float().contiguous()
        if t.device.type != "cpu":
            nbytes += t.numel() * t.element_size()
        out.append(to_host(t))  # waits for the current stream: the array is complete when returned
    return out[0], out[1], nbytes


def hand_over(*tensors: Any) -> Any:
    """An event marking ``tensors`` (made on this thread's current stream) complete; ``None`` off CUDA.

    The estimator's ``infer`` records it for maps that stay on the device, and :func:`take_over` makes
    the decoding thread's stream wait for it.
    """
    cuda = [t for t in tensors if getattr(t, "is_cuda", False)]
    if not cuda:
        return None
    import torch

    event = torch.cuda.Event()
    event.record(torch.cuda.current_stream(cuda[0].device))
    return event


def take_over(event: Any, *tensors: Any) -> None:
    """Make this thread's current stream wait for ``event`` before it reads ``tensors`` (see :func:`hand_over`)."""
    if event is None:
        return
    import torch

    for t in tensors:
        stream = torch.cuda.current_stream(t.device)
        stream.wait_event(event)
        t.record_stream(stream)  # not reused by the allocator before this stream has read it
