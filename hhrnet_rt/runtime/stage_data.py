"""What passes between the estimator's stages (:class:`Prepared`, :class:`Maps`) and where decode runs.

``prepare -> Prepared -> infer -> Maps -> decode``: the video pipeline hands these between threads, one
per frame. Kept apart from :mod:`hhrnet_rt.runtime.estimator` so the data and the rule that places the decode
(:func:`choose_decode_on`) have one home that the estimator, the pipeline and the benchmarks share.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from hhrnet_rt.core.errors import InputError
from hhrnet_rt.runtime.preprocess import Affine


@dataclass(frozen=True, eq=False)
class Prepared:
    """One image ready for the network.

    Attributes:
        inputs: ``(scale, x (1, 3, h, w) float32)`` per test scale, in the official processing order
            (descending scale); ``x`` is a numpy array, or a torch tensor on the backend's device when
            the frame was preprocessed there.
        affine: the way back from map pixels to original-image pixels (map size = ``affine.size``).
        image_hw: (H, W) of the original image.
        ready: CUDA event recorded after device preprocessing (``None`` otherwise).
    """

    inputs: tuple[tuple[float, Any], ...]
    affine: Affine
    image_hw: tuple[int, int]
    ready: Any = None


@dataclass(eq=False)
class Maps:
    """Aggregated network output for one image: ``heatmaps (K, H, W)`` and ``tags (K, H, W, L)`` float32.

    Attributes:
        heatmaps, tags: numpy arrays (host decode), or torch tensors on the backend's device (device
            decode). Tags are the ``(K, H, W, L)`` view of planar ``(K, L, H, W)`` memory
            (:mod:`hhrnet_rt.core.tag_layout`), which the decoders read without a copy.
        infer_d2h_bytes: bytes ``infer`` copied device -> host for this frame (the maps, on the host path
            of a CUDA backend; 0 on a CPU backend, where nothing crosses).
        decode_d2h_bytes: bytes the device decode copied for this frame; set by ``decode``.
        ready: CUDA event after the maps were computed (device decode on CUDA; ``None`` otherwise): the
            decoding thread's stream waits for it.
    """

    heatmaps: Any
    tags: Any
    infer_d2h_bytes: int = 0
    decode_d2h_bytes: int = 0
    ready: Any = None

    @property
    def d2h_bytes(self) -> int:
        """Bytes copied device -> host for this frame (complete once ``decode`` has run)."""
        return self.infer_d2h_bytes + self.decode_d2h_bytes

    @property
    def on_device(self) -> bool:
        """Whether the maps are torch tensors for the device decode (else host numpy arrays)."""
        return not isinstance(self.heatmaps, np.ndarray)


DECODE_ON = ("auto", "device", "host")


def choose_decode_on(decode_on: str, backend_device: str) -> str:
    """Resolve a ``decode_on`` request to "device" or "host": "auto" decodes where the maps are.

    CUDA backends: "device" (copying 70-100 MB of maps per frame to the host costs more than the whole
    network); CPU backends: "host" (the Numba decoder over full maps is the fastest on a CPU).

    Raises:
        InputError: ``decode_on`` is not "auto", "device" or "host".
    """
    if not isinstance(decode_on, str) or decode_on not in DECODE_ON:
        raise InputError(f"decode_on must be 'auto', 'device' or 'host', got {decode_on!r}")
    if decode_on != "auto":
        return decode_on
    return "device" if str(backend_device).startswith("cuda") else "host"
