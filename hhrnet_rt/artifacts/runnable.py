"""Which file of a build each backend runs: never silently ignored, never the wrong kind.

Plain rules over what a file records (:class:`~hhrnet_rt.artifacts.engine_settings.EngineSettings`) and a
backend's name, so the configuration (:func:`hhrnet_rt.runtime.config.resolve`) decides it before any
backend or network is built.
"""

from __future__ import annotations

from pathlib import Path

from hhrnet_rt.artifacts.engine_settings import EngineSettings
from hhrnet_rt.core.errors import InputError, option


def file_for_backend(settings: EngineSettings, backend: str, *, single_scale: bool = True) -> Path:
    """The file ``backend`` runs for an --engine: never silently ignored, never the wrong kind.

    ONNX Runtime runs an ``.onnx`` itself, or an engine's ``.onnx`` sibling (hash-checked against the
    sidecar); OpenVINO runs the same, and its own ``.xml`` IR, which nothing else runs; TensorRT runs
    ``.engine`` files only; torch cannot run a file.
    """
    if backend == "torch":
        raise InputError(
            f"the torch backend runs a network built from {option('weights')} and cannot run {settings.path}; "
            f"use {option('backend', 'onnxruntime')} (an .onnx file) or {option('backend', 'tensorrt')} (an "
            f".engine file), or drop {option('engine')}"
        )
    if not single_scale and settings.project:
        raise InputError(
            f"{settings.path} projects its maps to one input size, so it cannot run several test scales; "
            f"use {option('weights')} for multi-scale testing"
        )
    if settings.kind == "openvino":
        if backend != "openvino":
            raise InputError(
                f"{settings.path} is an OpenVINO model, which only {option('backend', 'openvino')} runs; "
                f"use that, or pass an .onnx / .engine file for {backend}"
            )
        return settings.path
    if backend == "tensorrt":
        if settings.kind != "engine":
            raise InputError(
                f"{settings.path} is an ONNX file; TensorRT runs the .engine built from it by `hhrt build-engine`"
            )
        return settings.path
    if settings.onnx_path is None:
        runtime = "OpenVINO" if backend == "openvino" else "ONNX Runtime"
        raise InputError(
            f"{settings.path} is a TensorRT engine, which {runtime} cannot run, and the .onnx it was built "
            f"from is not beside it; pass that .onnx file with {option('engine')}, or run on a CUDA GPU with "
            "TensorRT"
        )
    return settings.onnx_path
