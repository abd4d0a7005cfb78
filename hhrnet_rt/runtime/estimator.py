"""PoseEstimator: image -> preprocess -> backend (PoseGraph) -> decode -> back-projection -> Poses.

The three stages are separate methods so the video pipeline can run each in its own thread:
``prepare`` (validation, resize, normalise), ``infer`` (the backend; torch, ONNX Runtime and TensorRT
release the GIL) and ``decode`` (Numba, ``nogil``, or torch ops on the device). Each has a batch form
(``prepare_batch``, ``infer_batch``, ``decode_batch``, and ``predict_batch``): ``infer_batch`` runs the
frames of one input shape as one backend call (:mod:`hhrnet_rt.runtime.batch_infer`).

Thread safety: none of the stages mutates the estimator's settings, and ``decode`` writes only into the
:class:`Maps` of its own frame. Whether ``infer`` may run in several threads at once is the backend's
business: see the backend (the CUDA backends serialise their calls with a lock of their own and say so;
the torch CPU and ONNX Runtime backends are re-entrant).

What runs where:
    ``prepare``: CPU backends (torch cpu, ONNX Runtime), and several test scales on any backend: OpenCV
    warp and numpy normalisation on the CPU (bit-exact with the official code). CUDA backends (torch
    cuda, TensorRT) with one scale (``device_preprocess`` on by default there): the :class:`Affine` is
    computed on the CPU, the uint8 frame is uploaded and warped + normalised on the GPU
    (:mod:`hhrnet_rt.runtime.device_prep`; +-1 grey level against OpenCV).
    ``infer``: the backend runs :class:`~hhrnet_rt.model.graph.PoseGraph` (the flip test as one batch of 2N);
    several scales are aggregated with :func:`~hhrnet_rt.model.graph.project_and_aggregate` in torch, on the
    backend's device. Backends with ``run_torch`` (torch, TensorRT) keep the maps as device tensors;
    ONNX Runtime returns numpy arrays, wrapped as CPU tensors without a copy (its ``run_torch``).
    ``decode`` (``decode_on``; "auto" = "device" on CUDA backends, "host" on CPU backends):
    "host": ``infer`` makes the maps contiguous on the device and copies them to the host once
    (12 x K x H x W bytes with flip: 73.5 MB for a 640x480 frame at input 512; nothing crosses on a CPU
    backend), and the Numba decoder reads them there. "device": the maps never leave the device;
    :func:`hhrnet_rt.decode.device.parse_on_device` does NMS, top-k and refine's dense search there and
    copies only candidates (tens of KB) to the host for the grouping. Both give the same poses.
    :attr:`Maps.d2h_bytes` says what crossed for a frame. The way back to image pixels runs on the CPU.

Example:
    >>> est = PoseEstimator("w32_512", backend="auto")                  # doctest: +SKIP
    >>> poses = est.predict(cv2.imread("people.jpg"))                   # doctest: +SKIP
    >>> poses.keypoints.shape                                            # (P, 17, 3): x, y, score
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import numpy as np

from hhrnet_rt.core.errors import InputError
from hhrnet_rt.core.sizes import check_input_size
from hhrnet_rt.decode.params import DecodeParams
from hhrnet_rt.model.spec import probe_num_joints
from hhrnet_rt.poses import Poses
from hhrnet_rt.runtime.backends import create_backend
from hhrnet_rt.runtime.batch_infer import group_by_shape, split_maps, stack_inputs
from hhrnet_rt.runtime.config import EstimatorConfig, Resolution, resolve
from hhrnet_rt.runtime.device_prep import device_preprocessor_for
from hhrnet_rt.runtime.device_transfer import run_on_device, take_over
from hhrnet_rt.runtime.engine_checks import check_outputs, check_weights_match
from hhrnet_rt.runtime.load_steps import READING_WEIGHTS, OnStep, backend_step, decoder_step, ignore
from hhrnet_rt.runtime.preprocess import (
    DEFAULT_MAX_ASPECT,
    Affine,
    as_bgr_u8,
    check_aspect,
    check_image_hw,
    multi_scale_size,
    normalize,
    resize_align,
)
from hhrnet_rt.runtime.stage_data import DECODE_ON, Maps, Prepared, choose_decode_on

__all__ = [
    "DECODE_ON",
    "EstimatorConfig",
    "Maps",
    "PoseEstimator",
    "Prepared",
    "check_input_size",
    "choose_decode_on",
]


class PoseEstimator:
    """Multi-person 2D pose estimation with HigherHRNet and the official test-time pipeline.

    Args:
        weights: named weights ("w32_512", ...), a checkpoint path, a state dict, an ``nn.Module``
            (e.g. :class:`~hhrnet_rt.model.higherhrnet.HigherHRNet`), or "random" (random-init W32-512). ``None``
            with an ``engine`` (the file is self-contained); given with one, they must be the weights the
            file was built from (compared by digest), else InputError.
        input_size: short side of the network input; a multiple of 64. ``None``: the engine's; else 640
            for the ``*_640`` named weights (their test size), else 512.
        flip: official flip test (mirrored second pass, 2-D tags). ``None``: on, or as the engine was
            built; an explicit value that contradicts the engine is an InputError.
        scales: test scales (official TEST.SCALE_FACTOR); several scales need 1.0 among them.
        adjust, refine: official decoding steps.
        backend: "torch", "onnxruntime", "tensorrt" or "auto" (see :func:`~hhrnet_rt.runtime.backends.choose_backend`).
        device: "cpu", "cuda", "cuda:N" or ``None`` (the backend chooses).
        precision: "fp32", "fp16", "int8" or ``None`` (default): fp32, or the precision of a given
            engine / ``.onnx`` file. torch on CUDA runs fp32 or fp16 (opt-in); torch on the CPU fp32
            only; ONNX Runtime and TensorRT run the precision of their file, and an explicit request
            that differs from it is an error (see :func:`~hhrnet_rt.runtime.backends.create_backend`).
        engine: TensorRT engine file (tensorrt/auto), or an ``.onnx`` file to run with ONNX Runtime; its
            settings are read by :mod:`hhrnet_rt.artifacts.engine_settings` (ONNX Runtime runs an engine's ``.onnx``
            sibling when TensorRT is not chosen).
        device_preprocess: resize/normalise on the backend's device (see the module docstring).
            ``None`` (default): on for CUDA backends with one test scale. ``False``: always OpenCV/numpy
            (bit-exact with the official preprocessing). ``True``: force it; needs one scale and a torch
            or TensorRT backend (on torch CPU it runs the torch warp on the CPU, for testing).
        decode_params: :class:`~hhrnet_rt.decode.params.DecodeParams` (official values by default).
        decode_on: where the map-sized decode work runs (see the module docstring): "auto" (default:
            "device" on CUDA backends, "host" on CPU backends), "device" (any backend; with ONNX
            Runtime its numpy outputs are wrapped as CPU tensors, no copy, so it works but gains nothing
            there) or "host" (the Numba decoder over maps copied to the host once).
        onnx_threads: ONNX Runtime intra-op threads (``None``: its default).
        onnx_cache_dir: where the ONNX Runtime backend caches exported graphs.
        max_aspect: an image whose network input would exceed ``max_aspect`` x ``input_size``² (aspect
            ratios over 4:1 by default) is refused with :class:`~hhrnet_rt.core.errors.ImageShapeError`
            before any work: a 1x500 strip would otherwise cost gigabytes.

    The keywords are the fields of :class:`~hhrnet_rt.runtime.config.EstimatorConfig`, and
    :func:`~hhrnet_rt.runtime.config.resolve` decides what they mean (kept as ``resolution``);
    :meth:`from_config` builds the same estimator from a config. Weights given as a state dict or a
    module work here, but such a config does not pickle (names and paths do: Ray and Serve need that).
    """

    def __init__(
        self,
        weights=None,
        *,
        input_size: int | None = None,
        flip: bool | None = None,
        scales: Sequence[float] = (1.0,),
        adjust: bool = True,
        refine: bool = True,
        backend: str = "torch",
        device: str | None = "cpu",
        engine: str | os.PathLike | None = None,
        precision: str | None = None,
        device_preprocess: bool | None = None,
        decode_params: DecodeParams | None = None,
        decode_on: str = "auto",
        onnx_threads: int | None = None,
        onnx_cache_dir: str | os.PathLike | None = None,
        max_aspect: float = DEFAULT_MAX_ASPECT,
    ) -> None:
        config = EstimatorConfig(
            weights=weights, input_size=input_size, flip=flip, scales=scales, adjust=adjust, refine=refine,
            backend=backend, device=device, engine=engine, precision=precision,
            device_preprocess=device_preprocess, decode_params=decode_params, decode_on=decode_on,
            onnx_threads=onnx_threads, onnx_cache_dir=onnx_cache_dir, max_aspect=max_aspect,
        )  # fmt: skip
        self._build(resolve(config))

    @classmethod
    def from_config(cls, config: EstimatorConfig | Resolution, *, on_step: OnStep = ignore) -> PoseEstimator:
        """The estimator ``config`` describes: ``PoseEstimator.from_config(EstimatorConfig(**kw))`` is
        ``PoseEstimator(**kw)``, and also applies ``fast`` and ``torch_threads``.

        A :class:`~hhrnet_rt.runtime.config.Resolution` is built as it is, without resolving again (the
        CLI resolves first, to say which backend runs before the model loads). ``on_step(text)`` is
        called as each step of the build starts, with the texts of :mod:`hhrnet_rt.runtime.load_steps`
        (a one-time ONNX export or decoder compile is said as such).

        Example:
            >>> config = EstimatorConfig(weights="w32_512", backend="auto", fast=True)  # doctest: +SKIP
            >>> PoseEstimator.from_config(config).describe()["input_size"]             # doctest: +SKIP
            384
        """
        estimator = cls.__new__(cls)
        estimator._build(config if isinstance(config, Resolution) else resolve(config), on_step)
        return estimator

    def _build(self, resolution: Resolution, on_step: OnStep = ignore) -> None:
        """Load the network (or only compare weights with the file), create the backend, settle the stages."""
        from hhrnet_rt.model.graph import PoseGraph  # torch: only when an estimator is built
        from hhrnet_rt.model.weights import load_network

        self.resolution = resolution  # what describe() reports
        cfg = resolution.config
        if cfg.torch_threads is not None:
            import torch

            torch.set_num_threads(cfg.torch_threads)  # process-wide: torch has no per-model thread count
        self.input_size, self.flip, self.scales = resolution.input_size, resolution.flip, resolution.scales
        self.adjust, self.refine = bool(cfg.adjust), bool(cfg.refine)
        self.max_aspect = cfg.max_aspect
        self.decode_params = cfg.decode_params or DecodeParams()
        self.backend_reason = resolution.reason
        self.decode_on = resolution.decode_on
        single = self._project = resolution.single_scale
        settings = resolution.engine_settings
        if settings is not None:
            # With a file no network is built (weights, if given, are only compared with the file's).
            self.graph, self.num_joints = None, settings.num_joints
            self._project = settings.project
            self.weights_label = f"built into {settings.path} (settings from {settings.origin})"
            if cfg.weights is not None:
                on_step(READING_WEIGHTS)
                network, label = load_network(cfg.weights)
                check_weights_match(settings, network, f"the weights {label}")
        else:
            assert cfg.weights is not None, "resolve() refuses a config with neither weights nor a file"
            on_step(READING_WEIGHTS)
            network, self.weights_label = load_network(cfg.weights)
            num_joints = getattr(getattr(network, "spec", None), "num_joints", None)
            self.num_joints = int(num_joints) if num_joints is not None else probe_num_joints(network)
            # The graph projects to the input size itself only for the plain single-scale case; otherwise
            # it returns 1/2-resolution maps and project_and_aggregate projects them to the base size.
            try:
                self.graph = PoseGraph(network, flip=self.flip, project=single, num_joints=self.num_joints)
            except ValueError as exc:  # e.g. no known flip permutation for this joint count
                raise InputError(str(exc)) from None
            self.graph.eval()
        on_step(backend_step(resolution.backend, self.graph, resolution.engine, cfg.onnx_cache_dir))
        self.backend = create_backend(
            resolution.backend,
            self.graph,
            device=resolution.device,
            precision=cfg.precision,
            engine=resolution.engine,
            onnx_threads=cfg.onnx_threads,
            example_hw=(self.input_size, self.input_size),
            cache_dir=cfg.onnx_cache_dir,
        )
        if settings is not None:
            self.num_joints = check_outputs(settings, self.backend)
        self._device_prep = device_preprocessor_for(
            self.backend, cfg.device_preprocess, single, self.input_size
        )
        from hhrnet_rt import decode

        self._parse = decode.parse
        on_step(decoder_step())
        decode.warmup()

    # -- stages --------------------------------------------------------------------------------------

    def check_shape(self, image_hw: tuple[int, int]) -> None:
        """Raise :class:`~hhrnet_rt.core.errors.ImageShapeError` if an image of this (height, width) would
        make a network input over the ``max_aspect`` bound (a server checks before batching)."""
        check_aspect(image_hw, self.input_size, self.max_aspect)

    def prepare(self, image_bgr: np.ndarray) -> Prepared:
        """Validate and convert the image, resize-align and normalise it (one warp + one lookup per scale).

        On the device path the warp and normalisation run on the backend's device and ``inputs`` holds
        a device tensor; the :class:`Affine` is computed on the CPU either way.
        """
        image = as_bgr_u8(image_bgr)
        hw = (int(image.shape[0]), int(image.shape[1]))
        self.check_shape(hw)
        if self._device_prep is not None:
            x, affine, ready = self._device_prep(image)
            return Prepared(((1.0, x),), affine, hw, ready)
        if self.scales == (1.0,):
            resized, affine = resize_align(image, self.input_size)
            return Prepared(((1.0, normalize(resized, bgr=True)),), affine, hw)
        min_scale = min(self.scales)
        base_size, _, _ = multi_scale_size(hw, self.input_size, 1.0, min_scale)
        inputs = []
        for s in self.scales:
            resized, affine_s = resize_align(image, self.input_size, s, min_scale)
            inputs.append((s, normalize(resized, bgr=True)))
        # Official get_final_preds uses center/scale of the *last* resize (smallest scale) with the size
        # of the aggregated maps (the scale-1.0 base size).
        affine = Affine.build(affine_s.center, affine_s.scale, base_size)
        return Prepared(tuple(inputs), affine, hw)

    def infer(self, prepared: Prepared) -> Maps:
        """Run the backend (and, for several scales, the official cross-scale aggregation).

        Returns host arrays (``decode_on="host"``: one copy from the device, made contiguous there first)
        or tensors left on the backend's device (``decode_on="device"``).
        """
        return self.infer_batch([prepared])[0]

    def infer_batch(self, prepared: Sequence[Prepared]) -> list[Maps]:
        """:meth:`infer` for several frames: one backend call per input shape (and test scale).

        Frames are grouped by the shape of their network inputs (:mod:`hhrnet_rt.runtime.batch_infer`: the
        official preprocessing gives each aspect ratio its own shape, and letterboxing would change the
        maps); the result is in the order of ``prepared``, one :class:`Maps` per frame.
        """

        prepared = list(prepared)
        out: list[Maps | None] = [None] * len(prepared)
        limit = self.backend.max_batch or len(prepared) or 1  # a TensorRT engine's profile caps the batch
        for group in group_by_shape(prepared):
            for start in range(0, len(group), limit):
                indices = group[start : start + limit]
                for i, maps in zip(indices, self._infer_group([prepared[i] for i in indices]), strict=True):
                    out[i] = maps
        return out  # type: ignore[return-value]

    def _infer_group(self, frames: list[Prepared]) -> list[Maps]:
        """Frames whose inputs have the same shapes: stack, run, aggregate, split per frame."""
        import torch

        def run(scale_index: int) -> tuple[Any, Any]:
            return run_on_device(self.backend, stack_inputs(frames, scale_index, self.backend.device))

        if self._project:
            heatmaps, tags = run(0)
        else:
            from hhrnet_rt.model.graph import project_and_aggregate

            per_scale = [(s, *run(j)) for j, (s, _) in enumerate(frames[0].inputs)]
            w, h = frames[0].affine.size
            with torch.inference_mode():
                heatmaps, tags = project_and_aggregate(per_scale, (h, w))
        return split_maps(heatmaps, tags, len(frames), on_device=self.decode_on == "device")

    def decode(self, maps: Maps, prepared: Prepared) -> Poses:
        """Group joints into people and map them back to original-image pixels.

        On the device path this also sets ``maps.decode_d2h_bytes`` (what crossed to the host).
        """
        if maps.on_device:
            from hhrnet_rt.decode.device import parse_on_device

            take_over(maps.ready, maps.heatmaps, maps.tags)
            result = parse_on_device(
                maps.heatmaps, maps.tags, params=self.decode_params, adjust=self.adjust, refine=self.refine
            )
            grouped, scores = result.grouped, result.scores
            maps.decode_d2h_bytes = int(result.d2h_bytes)
        else:
            grouped, scores = self._parse(
                maps.heatmaps, maps.tags, params=self.decode_params, adjust=self.adjust, refine=self.refine
            )
        k = maps.heatmaps.shape[0]
        grouped = np.asarray(grouped, np.float32)
        if grouped.ndim != 3:  # an official-style empty result has shape (0,)
            grouped = grouped.reshape(0, k, 3)
        keypoints = np.empty((grouped.shape[0], k, 3), np.float32)
        # Official get_final_preds: inverse affine on x, y; the score column is carried through.
        keypoints[..., :2] = prepared.affine.to_image(grouped[..., :2])
        keypoints[..., 2] = grouped[..., 2]
        return Poses(keypoints=keypoints, scores=np.asarray(scores, np.float32).reshape(-1))

    def predict(self, image_bgr: np.ndarray) -> Poses:
        """Poses of everyone in one BGR image (as ``cv2.imread`` gives it)."""
        prepared = self.prepare(image_bgr)
        return self.decode(self.infer(prepared), prepared)

    def prepare_batch(self, images: Sequence[np.ndarray]) -> list[Prepared]:
        """:meth:`prepare` for each image (preprocessing is per image; the batch forms exist so the three
        stages can be called on lists alike)."""
        return [self.prepare(image) for image in images]

    def decode_batch(self, maps: Sequence[Maps], prepared: Sequence[Prepared]) -> list[Poses]:
        """:meth:`decode` for each frame (grouping is per image)."""
        if len(maps) != len(prepared):
            raise InputError(f"decode_batch got {len(maps)} maps for {len(prepared)} prepared frames")
        return [self.decode(m, p) for m, p in zip(maps, prepared, strict=True)]

    def predict_batch(self, images: Sequence[np.ndarray]) -> list[Poses]:
        """Poses of everyone in each BGR image, with one backend call per input shape.

        Equal to ``[self.predict(im) for im in images]`` (up to the convolution kernels the backend picks
        for the batch size: see :mod:`hhrnet_rt.runtime.batch_infer`). Images of any sizes may be mixed.
        """
        images = list(images)
        if not images:
            return []
        prepared = self.prepare_batch(images)
        return self.decode_batch(self.infer_batch(prepared), prepared)

    def warmup(self, image_hw: Sequence[int] = (480, 640)) -> None:
        """Run prepare -> infer -> decode on a synthetic frame of ``image_hw`` (height, width), untimed.

        The first frames of a size pay one-off costs that do not belong in a latency figure: CUDA graph
        capture and cuDNN autotuning (per input shape), the caching allocator growing, lazy inits. CUDA
        backends run the frame 3 times (capture happens on the first call; the others settle the
        allocator and the device decode); CPU backends once. ``hhrt video`` / ``webcam`` call it with the
        source's frame size before the first timed frame.

        Raises:
            InputError: ``image_hw`` is not two positive integers, or gives an unusable network input.
        """
        h, w = check_image_hw(image_hw)
        # Smooth noise, not zeros: the decode then has candidates to group, like a real frame.
        rng = np.random.default_rng(0)
        frame = np.repeat(np.repeat(rng.integers(0, 256, (h // 8 + 1, w // 8 + 1, 3), np.uint8), 8, 0), 8, 1)
        frame = np.ascontiguousarray(frame[:h, :w])
        runs = 3 if str(self.backend.device).startswith("cuda") else 1
        for _ in range(runs):
            self.predict(frame)

    def describe(self) -> dict:
        """Backend, device, precision, sizes and settings, and why this backend was chosen."""
        info = self.backend.describe()
        return {
            "backend": self.backend.name,
            "device": self.backend.device,
            "precision": self.backend.precision,
            "preprocess": (
                f"torch on {self._device_prep.device} (uint8 upload, grid_sample warp)"
                if self._device_prep is not None
                else "OpenCV + numpy on the CPU"
            ),
            "reason": self.resolution.reason,
            "weights": self.weights_label,
            "input_size": self.resolution.input_size,
            "flip": self.resolution.flip,
            "scales": list(self.resolution.scales),
            "adjust": self.adjust,
            "refine": self.refine,
            "decode_on": self.resolution.decode_on,
            "num_joints": self.num_joints,
            "backend_details": info,
        }
