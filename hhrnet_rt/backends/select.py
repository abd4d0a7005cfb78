"""Which backend to use: ``choose_backend("auto"|"tensorrt"|"torch"|"onnxruntime", engine=, device=)``.

``auto`` prefers TensorRT (an engine was given, a GPU and the tensorrt package are present), then torch on
CUDA, then ONNX Runtime on the CPU, and always says why in one sentence that the CLI prints.
The availability probes are module functions so tests can monkeypatch them.
"""

from __future__ import annotations

import importlib.util
import os

from hhrnet_rt.errors import (
    TENSORRT_INSTALL_HINT,
    BackendUnavailableError,
    InputError,
    TensorRTUnavailableError,
    option,
)

BACKENDS = ("auto", "tensorrt", "torch", "onnxruntime")


def cuda_available() -> bool:
    """A CUDA GPU is visible to torch."""
    import torch

    return bool(torch.cuda.is_available())


def tensorrt_available() -> bool:
    """The tensorrt package is installed (found without importing it: importing is slow)."""
    return importlib.util.find_spec("tensorrt") is not None


def onnxruntime_available() -> bool:
    """The onnxruntime package is installed."""
    return importlib.util.find_spec("onnxruntime") is not None


def _is_cuda(device: str | None) -> bool:
    return device is not None and str(device).startswith("cuda")


def choose_backend(
    requested: str, *, engine: str | os.PathLike | None = None, device: str | None = None
) -> tuple[str, str, str]:
    """Resolve a backend request to ``(name, device, reason)``.

    Args:
        requested: "auto", "tensorrt", "torch" or "onnxruntime".
        engine: a TensorRT engine file (needed for "tensorrt"; makes "auto" consider TensorRT).
        device: "cpu", "cuda" or "cuda:N"; ``None`` lets the backend choose ("auto": the best available;
            "torch": cpu; "tensorrt": cuda).

    Raises:
        InputError: unknown backend name or a device the backend cannot use.
        BackendUnavailableError: the requested backend cannot run here (the message says what is missing).
        TensorRTUnavailableError: "tensorrt" requested but the package is not installed.
    """
    req = str(requested).lower()
    if req not in BACKENDS:
        raise InputError(f"unknown backend {requested!r}; choose one of {', '.join(BACKENDS)}")
    if device is not None and not (str(device) == "cpu" or _is_cuda(device)):
        raise InputError(f"unknown device {device!r}; use 'cpu', 'cuda' or 'cuda:N'")

    if req == "tensorrt":
        return _tensorrt(engine, device)
    if req == "torch":
        if _is_cuda(device):
            if not cuda_available():
                raise BackendUnavailableError(
                    f"device {device!r} requested but no CUDA GPU is visible to torch; use {option('device', 'cpu')}"
                )
            return "torch", str(device), f"torch on {device} as requested"
        return "torch", "cpu", "torch on the CPU as requested"
    if req == "onnxruntime":
        if _is_cuda(device):
            raise InputError(
                f"the onnxruntime backend runs on the CPU only here; use {option('backend', 'torch')} or "
                f"{option('backend', 'tensorrt')} for CUDA"
            )
        if not onnxruntime_available():
            raise BackendUnavailableError("onnxruntime is not installed; pip install onnxruntime")
        return "onnxruntime", "cpu", "ONNX Runtime on the CPU as requested"
    return _auto(engine, device)


def _tensorrt(engine, device) -> tuple[str, str, str]:
    if device is not None and not _is_cuda(device):
        raise InputError(f"TensorRT runs on a CUDA GPU only; drop {option('device', 'cpu')} or pick another backend")
    if not tensorrt_available():
        raise TensorRTUnavailableError(
            f"the tensorrt package is not installed: {TENSORRT_INSTALL_HINT} "
            f"(or use {option('backend', 'onnxruntime')} / {option('backend', 'torch')})"
        )
    if not cuda_available():
        raise BackendUnavailableError("TensorRT needs a CUDA GPU and none is visible to torch")
    if engine is None:
        raise BackendUnavailableError(
            f"the tensorrt backend needs an engine file: build one with `hhrt build-engine` and pass {option('engine')}"
        )
    dev = str(device) if device is not None else "cuda"
    return "tensorrt", dev, f"TensorRT engine {os.fspath(engine)} on {dev} as requested"


def _auto(engine, device) -> tuple[str, str, str]:
    if device == "cpu":
        if onnxruntime_available():
            return "onnxruntime", "cpu", "CPU requested; using ONNX Runtime on the CPU"
        return "torch", "cpu", "CPU requested and onnxruntime is not installed; using torch on the CPU"
    if engine is not None and os.fspath(engine).endswith(".onnx"):
        # Only ONNX Runtime runs an .onnx file; TensorRT needs an engine built from it.
        if _is_cuda(device):
            raise InputError(
                f"{os.fspath(engine)} is an ONNX file, which runs on ONNX Runtime on the CPU only here; "
                f"drop {option('device')}, or build a TensorRT engine from it with `hhrt build-engine`"
            )
        if onnxruntime_available():
            return "onnxruntime", "cpu", f"{os.fspath(engine)} is an ONNX file; using ONNX Runtime on the CPU"
    has_cuda = cuda_available()
    if _is_cuda(device) and not has_cuda:
        raise BackendUnavailableError(
            f"device {device!r} requested but no CUDA GPU is visible to torch; use {option('device', 'cpu')}"
        )
    dev = str(device) if device is not None else "cuda"
    if engine is not None and has_cuda and tensorrt_available():
        return (
            "tensorrt",
            dev,
            f"engine {os.fspath(engine)} given, CUDA GPU and TensorRT present; using TensorRT",
        )
    if has_cuda:
        why = ""
        if engine is not None:
            why = " (engine given but the tensorrt package is not installed)"
        return "torch", dev, f"CUDA GPU visible to torch{why}; using torch on {dev}"
    why = "no CUDA GPU visible to torch"
    if engine is not None:
        why += " (the engine needs one; ONNX Runtime runs the .onnx it was built from, if it is beside it)"
    if onnxruntime_available():
        return "onnxruntime", "cpu", f"{why}; using ONNX Runtime on the CPU"
    return "torch", "cpu", f"{why} and onnxruntime is not installed; using torch on the CPU"
