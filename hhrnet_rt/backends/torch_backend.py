"""PyTorch backend: runs the PoseGraph module eagerly in fp32 (the CPU; any torch device works).

:func:`hhrnet_rt.backends.create_backend` uses it for the CPU; CUDA devices get ``TorchCudaBackend``
(``backends/torch_cuda.py``: fp16, channels_last, CUDA graphs). Besides the numpy ``run`` it has the
tensor-in/tensor-out ``run_torch`` of the CUDA backends, so the estimator's device-preprocessing path
(``PoseEstimator(device_preprocess=True)``) can be exercised on a CPU-only machine.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from hhrnet_rt.backends.base import check_batch


class TorchBackend:
    """Eager PyTorch inference of a :class:`~hhrnet_rt.graph.PoseGraph`.

    Args:
        graph: the module to run (moved to ``device`` and put in eval mode).
        device: a torch device string.

    Thread safety: ``run`` uses ``torch.inference_mode`` (thread-local) and the module keeps no state
    between calls, so it can be called from any thread.
    """

    name = "torch"

    def __init__(self, graph: nn.Module, *, device: str = "cpu") -> None:
        self._device = torch.device(device)
        self.device = str(self._device)
        self.graph = graph.to(self._device).eval()
        params = list(self.graph.parameters())
        self.precision = {torch.float16: "fp16", torch.bfloat16: "bf16"}.get(
            params[0].dtype if params else torch.float32, "fp32"
        )

    def run_torch(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(N, 3, h, w)`` float32 tensor in, float32 ``(heatmaps, tags)`` tensors on this device out."""
        with torch.inference_mode():
            heatmaps, tags = self.graph(x.to(self._device, torch.float32))
            return heatmaps.float(), tags.float()

    def run(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        x = check_batch(x)
        with torch.inference_mode():
            t = torch.from_numpy(x)  # shares memory on the CPU; no copy
            if self._device.type != "cpu":
                t = t.to(self._device)
            heatmaps, tags = self.graph(t)
            return heatmaps.float().cpu().numpy(), tags.float().cpu().numpy()

    def describe(self) -> dict:
        return {
            "name": self.name,
            "device": self.device,
            "precision": self.precision,
            "torch": torch.__version__,
            "threads": torch.get_num_threads() if self._device.type == "cpu" else None,
        }
