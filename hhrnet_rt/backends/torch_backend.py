"""PyTorch backend: runs the PoseGraph module eagerly (CPU here; any torch device works, with copies).

CUDA hook: :func:`hhrnet_rt.backends.create_backend` prefers ``TorchCudaBackend`` from
``hhrnet_rt/backends/torch_cuda.py`` (helper "engines": device-side pre/post-processing, streams) for
CUDA devices when that module exists; this class stays the generic fallback.
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
