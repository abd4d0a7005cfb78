"""The estimator the model options describe (``hhrt video``, ``webcam``, ``image``, ``serve``, ``--ray``).

The options become one :class:`~hhrnet_rt.runtime.config.EstimatorConfig` (:func:`model_config`); a
local run resolves it once and prints what :func:`~hhrnet_rt.runtime.config.resolve` decided, so the
``backend:`` line is the estimator's own ``describe()["reason"]`` (:func:`make_estimator`); Serve
replicas and Ray workers get the same config with its paths made absolute (:func:`for_workers`) and
resolve it on their own node.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import replace
from pathlib import Path
from typing import Any

import typer

from hhrnet_rt.cli import progress
from hhrnet_rt.cli.options import BackendName, DecodeOn, Precision
from hhrnet_rt.cli.remote import ServerOptions, remote_estimator
from hhrnet_rt.core.errors import WeightsError
from hhrnet_rt.core.inputs import check_input_file, is_regular_file
from hhrnet_rt.model.download import NAMED_WEIGHTS, cache_dir, fetch_named, needs_download
from hhrnet_rt.runtime.config import EstimatorConfig, resolve
from hhrnet_rt.runtime.estimator import PoseEstimator
from hhrnet_rt.runtime.preprocess import DEFAULT_MAX_ASPECT

#: Without --weights and --engine (the help of --weights says so).
DEFAULT_WEIGHTS = "w32_512"


def model_config(
    *, weights: str | None, backend: BackendName, engine: Path | None, precision: Precision | None,
    device: str | None, input_size: int | None, flip: bool | None, fast: bool, refine: bool,
    decode_on: DecodeOn, threads: int | None, max_aspect: float = DEFAULT_MAX_ASPECT,
) -> EstimatorConfig:  # fmt: skip
    """The model options as one config, with the CLI's defaults; nothing is checked or loaded here.

    ``--threads`` is both torch's CPU threads and ONNX Runtime's / OpenVINO's intra-op threads.
    """
    if weights is None and engine is None:
        weights = DEFAULT_WEIGHTS
    return EstimatorConfig(
        # A local file is a file even when its name is also that of named weights.
        weights=Path(weights) if weights is not None and is_regular_file(weights) else weights,
        backend=backend.value, engine=engine, device=device, input_size=input_size, flip=flip, fast=fast,
        refine=refine, decode_on=decode_on.value, precision=precision.value if precision is not None else None,
        onnx_threads=threads, torch_threads=threads, max_aspect=max_aspect,
    )  # fmt: skip


def make_estimator(config: EstimatorConfig) -> PoseEstimator:
    """Build the estimator ``config`` describes, saying which backend runs and why before it loads, and
    each loading step as it starts (a one-time ONNX export or decoder compile is said as such)."""
    resolution = resolve(config)
    progress.note(f"backend: [bold]{resolution.backend}[/] on {resolution.device} ({resolution.reason})")
    download_before_spinner(config.weights)
    with progress.step("loading the model", done="model loaded") as loading:
        estimator = PoseEstimator.from_config(resolution, on_step=lambda text: loading.update(text))
    facts = estimator.describe()
    keys = ("precision", "input_size", "flip", "preprocess", "decode_on")
    shown = ", ".join(f"{k} {facts[k]}" for k in keys if k in facts)
    if shown:
        progress.note(f"model: {shown}")
    return estimator


def load_model(ctx: typer.Context, config: EstimatorConfig, server: ServerOptions | None) -> Any:
    """The pipeline's stages: the local estimator, or with ``--server`` those of the server's model."""
    if server is not None:
        return remote_estimator(ctx, server)
    return make_estimator(config)


def for_workers(config: EstimatorConfig) -> EstimatorConfig:
    """``config`` as Serve replicas and Ray workers get it (they resolve it on their own node).

    Local files become absolute paths (a worker does not run in this directory) and are checked here, so
    a typo fails before a cluster starts; named weights are downloaded here (replicas and workers on this
    machine then find them in the cache).
    """
    engine = config.engine
    if engine is not None:
        engine = check_input_file(engine, "engine file").absolute()
    weights = config.weights
    if isinstance(weights, str | os.PathLike) and os.fspath(weights) not in ("random", *NAMED_WEIGHTS):
        weights = check_input_file(weights, "weights file", error=WeightsError).absolute()
    download_before_spinner(weights)
    return replace(config, weights=weights, engine=engine)


def download_before_spinner(weights: object) -> None:
    """A first use of named weights downloads them here, with their own progress bar, rather than under
    the loading spinner (two live displays on one terminal overwrite each other)."""

    if isinstance(weights, str) and weights in NAMED_WEIGHTS and needs_download(weights):
        progress.note(f"downloading the {weights} weights (once; kept in {cache_dir()})")
        fetch_named(weights, progress=progress.live() and not progress.quiet())


def warm_up(estimator: Any, sources: Iterable[Any], batch: int = 1) -> None:
    """CUDA graph capture, cuDNN autotuning and lazy inits run here, once per frame size of the sources
    (and for a full batch of that size when ``batch`` > 1: kernels are chosen per batch shape), so that
    the first timed frames do not pay them (a camera that reports no size: 640x480).

    A failure here is only a warning: the run meets the same problem on its first frame and reports it
    with the stage and frame it happened in (the one message the user gets for a failed run).
    """
    import numpy as np

    sizes = []
    for source in sources:
        w, h = getattr(source, "size", None) or (0, 0)
        hw = (h, w) if w > 0 and h > 0 else (480, 640)
        if hw not in sizes:
            sizes.append(hw)
    try:
        with progress.step("warming up"):
            for hw in sizes:
                estimator.warmup(hw)
                if batch > 1 and hasattr(estimator, "infer_batch"):
                    prepared = estimator.prepare(np.zeros((*hw, 3), np.uint8))
                    estimator.infer_batch([prepared] * batch)
    except Exception as exc:
        progress.warn(
            f"warm-up failed ({type(exc).__name__}: {exc}); the first frames will include one-off setup time"
        )
