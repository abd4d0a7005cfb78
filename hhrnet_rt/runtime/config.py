"""One estimator configuration (:class:`EstimatorConfig`), resolved once (:func:`resolve`).

Every way of building a :class:`~hhrnet_rt.runtime.estimator.PoseEstimator` goes through here: its keyword
arguments, ``hhrt video`` / ``webcam`` / ``image`` (:mod:`hhrnet_rt.cli.estimator`), the ``hhrt serve``
replicas and the Ray video workers. :func:`resolve` is the one place that decides what an incomplete
configuration means: the ``--fast`` preset, the input size of named weights, what an engine file
records, the backend and device (and the sentence saying why), which file that backend runs. So the
``backend:`` line the CLI prints and ``describe()["reason"]`` come from the same :class:`Resolution`.

Example:
    >>> config = EstimatorConfig(weights="w32_640", backend="auto")
    >>> resolution = resolve(config)              # doctest: +SKIP
    >>> resolution.input_size, resolution.backend  # doctest: +SKIP
    (640, 'onnxruntime')
    >>> PoseEstimator.from_config(resolution)     # doctest: +SKIP
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from hhrnet_rt.artifacts.engine_settings import EngineSettings, read_engine_settings, resolve_options
from hhrnet_rt.artifacts.runnable import file_for_backend
from hhrnet_rt.core.errors import InputError
from hhrnet_rt.core.inputs import check_input_file
from hhrnet_rt.core.names import check_precision
from hhrnet_rt.core.sizes import check_input_size
from hhrnet_rt.decode.params import DecodeParams
from hhrnet_rt.model.spec import ModelSpec
from hhrnet_rt.runtime.backends import choose_backend
from hhrnet_rt.runtime.preprocess import DEFAULT_MAX_ASPECT
from hhrnet_rt.runtime.stage_data import choose_decode_on

if TYPE_CHECKING:
    from torch import nn

    Weights = str | os.PathLike[str] | Mapping[str, Any] | nn.Module | None

#: ``--fast``: the input size of the laptop preset (and no flip test).
FAST_INPUT_SIZE = 384
#: The input size when neither the caller, nor a file, nor named weights say otherwise.
DEFAULT_INPUT_SIZE = 512


@dataclass(frozen=True, kw_only=True)
class EstimatorConfig:
    """Everything a :class:`~hhrnet_rt.runtime.estimator.PoseEstimator` is built from.

    The fields are the estimator's keyword arguments with the same defaults (see its docstring), plus two
    that the command line adds:

    Attributes:
        fast: the laptop preset: input :data:`FAST_INPUT_SIZE` unless ``input_size`` is given, and no
            flip test.
        torch_threads: ``torch.set_num_threads`` when the estimator is built (process-wide: torch has no
            per-model thread count); ``None`` leaves torch's setting alone.
        max_aspect: images whose network input would exceed ``max_aspect`` x ``input_size``² are refused
            (:func:`~hhrnet_rt.runtime.preprocess.check_aspect`); the default allows aspect ratios to 4:1.

    A configuration with weights given by name or path pickles (it travels to Ray workers and Serve
    replicas, which build their estimator from it on their own node); one holding a state dict or an
    ``nn.Module`` works locally but pickles the tensors with it, or not at all.
    """

    weights: Weights = None
    input_size: int | None = None
    flip: bool | None = None
    scales: Sequence[float] = (1.0,)
    adjust: bool = True
    refine: bool = True
    backend: str = "torch"
    device: str | None = "cpu"
    engine: str | os.PathLike[str] | None = None
    precision: str | None = None
    device_preprocess: bool | None = None
    decode_params: DecodeParams | None = None
    decode_on: str = "auto"
    onnx_threads: int | None = None
    onnx_cache_dir: str | os.PathLike[str] | None = None
    fast: bool = False
    torch_threads: int | None = None
    max_aspect: float = DEFAULT_MAX_ASPECT

    def __post_init__(self) -> None:
        if not self.max_aspect >= 1.0:  # also NaN
            raise InputError(f"max_aspect must be at least 1 (a square input), got {self.max_aspect}")
        if isinstance(self.scales, list):  # frozen means frozen: no list to change behind the config's back
            object.__setattr__(self, "scales", tuple(self.scales))


@dataclass(frozen=True)
class Resolution:
    """What a configuration means here, decided once by :func:`resolve`.

    Attributes:
        config: the configuration as given.
        input_size, flip, scales: what the network runs (sizes checked, scales sorted as officially).
        backend, device, reason: :func:`~hhrnet_rt.runtime.backends.choose_backend`'s answer.
        engine: the file the backend runs (an engine's ``.onnx`` sibling for ONNX Runtime), or ``None``:
            a network is built from the weights.
        engine_settings: what the given engine file records, or ``None`` without one.
        decode_on: "device" or "host".
    """

    config: EstimatorConfig
    input_size: int
    flip: bool
    scales: tuple[float, ...]
    backend: str
    device: str
    reason: str
    engine: Path | None
    engine_settings: EngineSettings | None = field(repr=False)
    decode_on: str

    @property
    def single_scale(self) -> bool:
        """One test scale (1.0): the graph projects to the input size itself, device preprocessing can run."""
        return self.scales == (1.0,)


def resolve(config: EstimatorConfig) -> Resolution:
    """Decide once what ``config`` means on this machine (nothing is loaded or built here).

    The caller's own arguments are checked first (cheap), then the engine path, the backend (the order
    the command line has always met them in), then what the engine file records.

    Raises:
        InputError: a bad precision, ``decode_on``, input size, scale list or engine path; neither weights
            nor an engine; options that contradict the engine file; a file the backend cannot run.
        BackendUnavailableError, TensorRTUnavailableError: the backend cannot run here
            (:func:`~hhrnet_rt.runtime.backends.choose_backend`).
        EngineMismatchError: an engine file whose sidecar does not fit it.
    """
    check_precision(config.precision)
    choose_decode_on(config.decode_on, "cpu")  # validates; the chosen device decides "auto" below
    input_size = None if config.input_size is None else check_input_size(config.input_size)
    scales = check_scales(config.scales)
    engine = config.engine
    if engine is not None:
        check_input_file(engine, "engine file")  # a FIFO or an over-long name, said as such
    elif config.weights is None:
        raise InputError("PoseEstimator needs weights (a name, file, state dict or module) or an engine file")
    name, device, reason = choose_backend(config.backend, engine=engine, device=config.device)
    if name == "tensorrt" and scales != (1.0,):
        raise InputError("several test scales are supported on the torch and onnxruntime backends only")
    flip = config.flip
    if config.fast:
        input_size, flip = (FAST_INPUT_SIZE if input_size is None else input_size), False
    settings = None
    if engine is not None:  # the file decides flip and size unless they were given (and then must agree)
        settings = read_engine_settings(engine)
        flip, input_size = resolve_options(settings, flip=flip, input_size=input_size)
    elif input_size is None:
        input_size = preset_input_size(config.weights)
    return Resolution(
        config=config,
        input_size=check_input_size(input_size),
        flip=True if flip is None else bool(flip),
        scales=scales,
        backend=name,
        device=device,
        reason=reason,
        engine=file_for_backend(settings, name, single_scale=scales == (1.0,)) if settings else None,
        engine_settings=settings,
        decode_on=choose_decode_on(config.decode_on, device),
    )


def preset_input_size(weights: object) -> int:
    """The released models' test size for named weights (640 for ``*_640``), else :data:`DEFAULT_INPUT_SIZE`.

    A name that is also a file here is the file (as :func:`hhrnet_rt.model.weights.load_network` reads it).
    """
    if isinstance(weights, str) and not os.path.lexists(weights):
        try:
            return ModelSpec.preset(weights).input_size
        except ValueError:
            pass
    return DEFAULT_INPUT_SIZE


def check_scales(scales: Sequence[float]) -> tuple[float, ...]:
    """The test scales in the official processing order (descending), or an InputError saying what is wrong."""
    try:
        out = tuple(float(s) for s in scales)
    except (TypeError, ValueError):
        raise InputError(f"scales must be a sequence of numbers, got {scales!r}") from None
    if not out or any(not np.isfinite(s) or s <= 0 for s in out):
        raise InputError(f"scales must be positive numbers, got {scales!r}")
    if len(set(out)) != len(out):
        raise InputError(f"scales contain duplicates: {scales!r}")
    if len(out) > 1 and 1.0 not in out:
        raise InputError(
            f"with several scales, 1.0 must be one of them (the official code takes the tags from scale "
            f"1.0 only), got {scales!r}"
        )
    return tuple(sorted(out, reverse=True))
