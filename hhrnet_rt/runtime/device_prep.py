"""Preprocessing on the inference device: the estimator's path when the backend runs on CUDA.

With one test scale and a backend that takes torch tensors (``TorchCudaBackend``, ``TensorRTBackend``),
:class:`~hhrnet_rt.runtime.estimator.PoseEstimator` hands frames to :class:`DevicePreprocessor`:

* on the CPU: validation (``as_bgr_u8``) and the official resize plan -- the :class:`Affine` record
  (center, scale, size, matrices) is computed exactly as :func:`~hhrnet_rt.runtime.preprocess.resize_align`
  computes it, so the way back to image pixels is unchanged;
* on the device: the uint8 BGR frame is uploaded (pinned memory, asynchronous), warped with
  ``grid_sample`` (the sampling grid is cached per frame size) and normalised -- all on the
  preprocessor's own CUDA stream, so the upload and warp of frame n+1 overlap the network's compute of
  frame n, which the CUDA backends run on *their* stream (:mod:`hhrnet_rt.runtime.backends.stream`);
* the backend's ``run_torch`` consumes the tensor on the device; the maps stay there for the device
  decode, or come back to the host for the Numba decode with
  :func:`~hhrnet_rt.runtime.device_transfer.maps_to_host` (made contiguous on the device, then one copy
  each of heatmaps and tags).

The warp is not bit-exact with ``cv2.warpAffine`` (one grey level here and there; see
:mod:`hhrnet_rt.runtime.warp_torch`). Every torch device works, "cpu" included, which is how the tests
check this path without a GPU.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from hhrnet_rt.core.errors import InputError
from hhrnet_rt.decode.device_io import upload
from hhrnet_rt.runtime.preprocess import Affine, check_resized, multi_scale_size
from hhrnet_rt.runtime.warp_torch import normalize_torch, sampling_grid, warp_affine_torch


def plan_affine(image_hw: tuple[int, int], input_size: int) -> Affine:
    """The single-scale :class:`Affine` of :func:`~hhrnet_rt.runtime.preprocess.resize_align`, without warping."""
    size, center, scale = multi_scale_size(image_hw, input_size, 1.0, 1.0)
    check_resized(image_hw, size, input_size)
    return Affine.build(center, scale, size)


class DevicePreprocessor:
    """Official single-scale resize-align + normalisation of BGR uint8 frames on a torch device.

    Args:
        input_size: network input short side (a multiple of 64).
        device: torch device ("cuda:0", "cpu", ...).

    Calling it is thread-safe: the state is a one-entry grid cache replaced atomically and the upload
    stream, on which calls from several threads are simply enqueued one after the other.

    Example:
        >>> prep = DevicePreprocessor(512, "cuda:0")                    # doctest: +SKIP
        >>> x, affine, ready = prep(frame_bgr)                           # x: (1, 3, 512, w) on cuda:0
    """

    def __init__(self, input_size: int, device: Any) -> None:
        import torch

        self.input_size = int(input_size)
        self.device = torch.device(device)
        self._grid: tuple[tuple, Any] | None = None
        # Its own stream (made at the first frame, so building one needs no GPU): not the legacy default
        # stream, which would serialise the upload with everything else.
        self._stream: Any = None

    def __call__(self, image_bgr: np.ndarray) -> tuple[Any, Affine, Any]:
        """``(x (1, 3, h, w) float32 on the device, Affine, ready)`` for one (H, W, 3) uint8 BGR frame.

        ``ready`` is a CUDA event recorded after the work (``None`` on the CPU): a consumer on another
        stream waits for it (:func:`run_on_device` does).
        """
        import torch

        shape_ok = isinstance(image_bgr, np.ndarray) and image_bgr.ndim == 3 and image_bgr.shape[2] == 3
        if not shape_ok or image_bgr.dtype != np.uint8:
            shape = getattr(image_bgr, "shape", type(image_bgr).__name__)
            dtype = getattr(image_bgr, "dtype", "")
            raise InputError(
                f"device preprocessing expects an (H, W, 3) uint8 BGR frame, got {shape} {dtype}"
            )
        hw = (int(image_bgr.shape[0]), int(image_bgr.shape[1]))
        affine = plan_affine(hw, self.input_size)
        if self.device.type != "cuda":
            return self._upload_and_warp(image_bgr, hw, affine), affine, None
        if self._stream is None:  # two threads racing here make two streams; either one is fine
            self._stream = torch.cuda.Stream(self.device)
        stream = self._stream
        # No wait for the caller's stream: the inputs come from the host, and waiting would tie the upload
        # of this frame to whatever is queued there (e.g. the copy of the last frame's maps to the host).
        # The memory is allocated on this stream; the consumer waits for ``ready`` and marks its own use
        # with record_stream (run_on_device, BackendStream.call).
        with torch.cuda.stream(stream):
            x = self._upload_and_warp(image_bgr, hw, affine)
            ready = torch.cuda.Event()
            ready.record(stream)
        return x, affine, ready

    def _upload_and_warp(self, image_bgr: np.ndarray, hw: tuple[int, int], affine: Affine) -> Any:
        import torch

        key = (hw, affine.size, affine.forward.tobytes())
        cached = self._grid
        if cached is None or cached[0] != key:
            cached = (key, sampling_grid(affine.forward, hw, affine.size, self.device))
            self._grid = cached
        with torch.inference_mode():
            # Pinned memory makes the upload an asynchronous DMA (device_io.upload); the caching host
            # allocator keeps the pinned block until the copy has run, then reuses it for a later frame.
            frame = upload(image_bgr, self.device)
            return normalize_torch(warp_affine_torch(frame, affine.forward, affine.size, grid=cached[1]))


def device_preprocessor_for(
    backend: Any, requested: bool | None, single: bool, input_size: int
) -> DevicePreprocessor | None:
    """The estimator's choice: a :class:`DevicePreprocessor` on ``backend.device``, or ``None`` (numpy).

    ``requested=None`` turns it on for tensor-native backends (``Backend.tensor_native``: torch,
    TensorRT) on a CUDA device with one test scale; ``True`` forces it (any device, for testing on the
    CPU) and refuses what cannot work.
    """
    capable = backend.tensor_native
    if requested is None:
        requested = capable and single and str(backend.device).startswith("cuda")
    elif requested and not (capable and single):
        raise InputError(
            "device preprocessing needs one test scale and a torch or TensorRT backend (got backend "
            f"{backend.name}, {'one scale' if single else 'several scales'}); use device_preprocess=False"
        )
    if not requested:
        return None
    return DevicePreprocessor(input_size, backend.device)


def prepare_on_gpu(image_bgr: np.ndarray, input_size: int, *, device: str = "cuda:0") -> tuple[Any, Any]:
    """Upload a BGR uint8 frame, warp and normalise it on ``device``; returns ``(x (1,3,h,w), Affine)``.

    One-off convenience over :class:`hhrnet_rt.runtime.device_prep.DevicePreprocessor` (which the estimator
    keeps, with its cached sampling grid); any torch device works, "cpu" included.
    """
    x, affine, _ready = DevicePreprocessor(input_size, device)(image_bgr)
    return x, affine
