"""What building an estimator will spend its time on, said before it happens.

A first run is slow for reasons a user cannot guess: the ONNX export of the network (ONNX Runtime and
OpenVINO run an exported file, cached per weights and settings) and Numba compiling the decoder (cached on
disk). Both happen once; a warm start skips them. :class:`~hhrnet_rt.runtime.estimator.PoseEstimator`
reports each step to an ``on_step`` callback (the CLI shows it with the elapsed time) with the texts
below, choosing the one-time texts only when the cache does not hold the result yet.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from hhrnet_rt.core.names import BackendName

#: ``on_step(text)``: called as each step starts.
OnStep = Callable[[str], None]

READING_WEIGHTS = "reading the weights"
EXPORTING = "one-time: exporting the network to ONNX (cached for these weights and settings; ~20-60 s)"
LOADING_BACKEND = "loading the {backend} backend"
COMPILING = "one-time: compiling the decoder with Numba (cached on disk; ~30-60 s)"
LOADING_DECODER = "loading the decoder"

_EXPORTING_BACKENDS = (BackendName.onnxruntime.value, BackendName.openvino.value)


def ignore(text: str) -> None:
    """The ``on_step`` of a caller that does not report progress."""


def backend_step(backend: str, graph: Any, engine: Any, cache_dir: Any) -> str:
    """The text of the backend step: the one-time export when an ONNX Runtime / OpenVINO backend will
    export ``graph`` because its cache does not hold it yet."""
    if backend in _EXPORTING_BACKENDS and engine is None and graph is not None:
        from hhrnet_rt.runtime.backends.onnx_cache import cached_export_path

        if not cached_export_path(graph, cache_dir).is_file():
            return EXPORTING
    return LOADING_BACKEND.format(backend=backend)


def decoder_step() -> str:
    """The text of the decoder step: the one-time compile when Numba's cache lacks the kernels."""
    from hhrnet_rt.decode.cache import kernels_cached

    return LOADING_DECODER if kernels_cached() else COMPILING
