"""PyTorch backend: runs the PoseGraph module eagerly in fp32 (the CPU; any torch device works).

:func:`hhrnet_rt.runtime.backends.create_backend` uses it for the CPU; CUDA devices get ``TorchCudaBackend``
(``backends/torch_cuda.py``: fp16, channels_last, CUDA graphs). Besides the numpy ``run`` it has the
tensor-in/tensor-out ``run_torch`` of the CUDA backends, so the estimator's device-preprocessing path
(``PoseEstimator(device_preprocess=True)``) and the device decode (``decode_on="device"``) can be exercised
on a CPU-only machine. ``channels_last=True`` gives its outputs the strides of the CUDA backend's default
NHWC layout, so the tests can check on the CPU that no strided map reaches the host decoder.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import nn

from hhrnet_rt.core.names import BackendName
from hhrnet_rt.runtime.backends.base import check_batch, describe_common
from hhrnet_rt.runtime.device_transfer import maps_to_host


class TorchBackend:
    """Eager PyTorch inference of a :class:`~hhrnet_rt.model.graph.PoseGraph`.

    Args:
        graph: the module to run (moved to ``device`` and put in eval mode).
        device: a torch device string.
        channels_last: run in the NHWC memory format (as ``TorchCudaBackend`` does by default); the
            outputs are then strided, not C-contiguous.

    Thread safety: ``run`` uses ``torch.inference_mode`` (thread-local) and the module keeps no state
    between calls, so it can be called from any thread.
    """

    name = BackendName.torch
    tensor_native = True
    max_batch = None  # any batch

    def __init__(self, graph: nn.Module, *, device: str = "cpu", channels_last: bool = False) -> None:
        self._device = torch.device(device)
        self.device = str(self._device)
        self._memory_format = torch.channels_last if channels_last else torch.contiguous_format
        # Module.to takes memory_format (documented, and what channels_last needs); torch's overloads omit it.
        moved = graph.to(self._device, memory_format=self._memory_format)  # type: ignore[call-overload]
        self.graph = moved.eval()
        params = list(self.graph.parameters())
        self.precision = {torch.float16: "fp16", torch.bfloat16: "bf16"}.get(
            params[0].dtype if params else torch.float32, "fp32"
        )

    def run_torch(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(N, 3, h, w)`` float32 tensor in, float32 ``(heatmaps, tags)`` tensors on this device out."""
        with torch.inference_mode():
            x = x.to(self._device, torch.float32).contiguous(memory_format=self._memory_format)
            heatmaps, tags = self.graph(x)
            return heatmaps.float(), tags.float()

    def run(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        # from_numpy shares memory on the CPU; no copy. maps_to_host: contiguous where the maps are.
        heatmaps, tags = self.run_torch(torch.from_numpy(check_batch(x)))
        host_heatmaps, host_tags, _ = maps_to_host(heatmaps, tags)
        return host_heatmaps, host_tags

    def describe(self) -> dict[str, Any]:
        return describe_common(
            self,
            torch=torch.__version__,
            threads=torch.get_num_threads() if self._device.type == "cpu" else None,
            channels_last=self._memory_format is torch.channels_last,
        )
