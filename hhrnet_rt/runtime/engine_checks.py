"""Checks that meet a built file (:class:`~hhrnet_rt.artifacts.engine_settings.EngineSettings`) with the
runtime: whether the backend's outputs are pose maps, whether given weights are the file's. (Which file
a backend runs is decided before anything runs: :mod:`hhrnet_rt.artifacts.runnable`.)
"""

from __future__ import annotations

from typing import Any

import numpy as np

from hhrnet_rt.artifacts.engine_settings import EngineSettings
from hhrnet_rt.core.errors import BackendUnavailableError, InputError, option
from hhrnet_rt.core.tag_layout import interleaved_problem
from hhrnet_rt.model.digest import state_dict_digest


def check_outputs(settings: EngineSettings, backend: Any) -> int:
    """Run one small zero batch, refuse a file whose outputs are not K-joint pose maps; returns K.

    ONNX exports declare the joint axis symbolically, so only a run shows the count (and gives it for a
    bare export that records none); the smallest shape the file accepts keeps it cheap (a warm-up too).
    """
    h, w = (
        settings.shape_profile["min"][2:]
        if settings.kind == "engine" and settings.shape_profile
        else (64, 64)
    )
    try:
        heatmaps, tags = backend.run(np.zeros((1, 3, h, w), np.float32))
    except InputError:
        raise
    except Exception as exc:  # noqa: BLE001 - a runtime's own error types; the file is what is wrong
        if _out_of_memory(exc):  # the device, not the file: it would run where memory is free
            raise BackendUnavailableError(
                f"out of memory running {settings.path} on a {h}x{w} test input ({type(exc).__name__}: "
                f"{exc}); free GPU memory (other processes, a smaller {option('max_batch')} build) or run on "
                f"another device"
            ) from None
        raise InputError(
            f"{settings.path} failed on a {h}x{w} test input ({type(exc).__name__}: {exc})"
        ) from None
    k = settings.num_joints
    got = heatmaps.shape[1] if heatmaps.ndim == 4 else None
    if got is None or (k is not None and got != k) or tags.ndim != 5 or tags.shape[1] != got:
        what = f"a {k}-joint pose graph" if k is not None else "a pose graph"
        raise InputError(
            f"{settings.path} is not {what}: it returns heatmaps {tuple(heatmaps.shape)} and "
            f"tags {tuple(tags.shape)} for a {h}x{w} input (settings from {settings.origin})"
        )
    layout = interleaved_problem(heatmaps.shape, tags.shape)
    if layout is not None:
        raise InputError(f"{settings.path} cannot be used: {layout}")
    return int(got)


def _out_of_memory(exc: BaseException) -> bool:
    """Whether a runtime's exception says memory ran out (torch's OutOfMemoryError, ONNX Runtime's and
    TensorRT's "out of memory" / "Failed to allocate memory" texts, MemoryError)."""
    text = f"{type(exc).__name__} {exc}".lower()
    return isinstance(exc, MemoryError) or any(
        marker in text for marker in ("outofmemory", "out of memory", "failed to allocate memory")
    )


def check_weights_match(settings: EngineSettings, network: Any, label: str) -> None:
    """Refuse weights given with a file unless their tensors are the ones the file was built from.

    ``network`` is the module the weights build; its state-dict digest is compared with the one the
    file records. A file that records none cannot show a match, so the weights are refused.
    """
    if settings.weights_sha256 is None:
        raise InputError(
            f"{settings.path} does not record which weights it was built from ({settings.origin}), so "
            f"{label} cannot be shown to match it: the file carries its own weights, drop {option('weights')}"
        )
    if state_dict_digest(network) != settings.weights_sha256:
        built = f" (built from {settings.weights})" if settings.weights else ""
        raise InputError(
            f"{label} are not the weights {settings.path} was built from{built}: the file carries its own "
            f"weights, drop {option('weights')} (or rebuild the file from these weights with `hhrt build-engine`)"
        )
