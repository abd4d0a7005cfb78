"""Which backend to use: ``choose_backend("auto"|"tensorrt"|"torch"|"onnxruntime"|"openvino", engine=,
device=)``.

``auto`` prefers TensorRT (an engine was given, a GPU and the tensorrt package are present), then torch on
CUDA, then ONNX Runtime on the CPU, and always says why in one sentence that the CLI prints. OpenVINO is
an optional extra: ``auto`` picks it only for an OpenVINO ``.xml`` IR (nothing else runs one); without a
file the CPU default stays ONNX Runtime, which every install has (OpenVINO's int8 is the faster CPU path,
and is asked for by building its IR; its fp32 is no faster than ONNX Runtime's: docs/engines.md, "On the CPU").
The availability probes are module functions so tests can monkeypatch them; :func:`backend_status`
(what ``hhrt info`` shows) uses the same probes and the same reasons as :func:`choose_backend`.
"""

from __future__ import annotations

import importlib.util
import os

from hhrnet_rt.artifacts.file_kind import FileKind, file_kind
from hhrnet_rt.core.errors import (
    TENSORRT_INSTALL_HINT,
    BackendUnavailableError,
    InputError,
    TensorRTUnavailableError,
    option,
    tensorrt_install_hint,
)
from hhrnet_rt.core.names import BACKEND_REQUESTS, BackendName

# Why a backend cannot run, in the words both choose_backend's errors and backend_status use.
NO_CUDA = "no CUDA GPU visible to torch"
NO_ONNXRUNTIME = "onnxruntime is not installed"
NO_TENSORRT = f"the tensorrt package is not installed: {TENSORRT_INSTALL_HINT}"
OPENVINO_INSTALL_HINT = 'pip install -e ".[openvino]" (or pip install openvino nncf)'
NO_OPENVINO = f"the openvino package is not installed: {OPENVINO_INSTALL_HINT}"


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


def openvino_available() -> bool:
    """The openvino package is installed (found without importing it)."""
    return importlib.util.find_spec("openvino") is not None


def _is_cuda(device: str | None) -> bool:
    return device is not None and str(device).startswith("cuda")


def choose_backend(
    requested: str, *, engine: str | os.PathLike | None = None, device: str | None = None
) -> tuple[str, str, str]:
    """Resolve a backend request to ``(name, device, reason)``.

    Args:
        requested: "auto", "tensorrt", "torch", "onnxruntime" or "openvino".
        engine: a TensorRT engine file (needed for "tensorrt"; makes "auto" consider TensorRT).
        device: "cpu", "cuda" or "cuda:N"; ``None`` lets the backend choose ("auto": the best available;
            "torch": cpu; "tensorrt": cuda).

    Raises:
        InputError: unknown backend name or a device the backend cannot use.
        BackendUnavailableError: the requested backend cannot run here (the message says what is missing).
        TensorRTUnavailableError: "tensorrt" requested but the package is not installed.
    """
    req = str(requested).lower()
    if req not in BACKEND_REQUESTS:
        raise InputError(f"unknown backend {requested!r}; choose one of {', '.join(BACKEND_REQUESTS)}")
    if device is not None and not (str(device) == "cpu" or _is_cuda(device)):
        raise InputError(f"unknown device {device!r}; use 'cpu', 'cuda' or 'cuda:N'")

    if req == BackendName.tensorrt:
        return _tensorrt(engine, device)
    if req == BackendName.torch:
        if _is_cuda(device):
            if not cuda_available():
                raise BackendUnavailableError(
                    f"device {device!r} requested but {NO_CUDA}; use {option('device', 'cpu')}"
                )
            return BackendName.torch, str(device), f"torch on {device} as requested"
        return BackendName.torch, "cpu", "torch on the CPU as requested"
    if req == BackendName.onnxruntime:
        if _is_cuda(device):
            raise InputError(
                f"the onnxruntime backend runs on the CPU only here; use {option('backend', 'torch')} or "
                f"{option('backend', 'tensorrt')} for CUDA"
            )
        if not onnxruntime_available():
            raise BackendUnavailableError(f"{NO_ONNXRUNTIME}; pip install onnxruntime")
        return BackendName.onnxruntime, "cpu", "ONNX Runtime on the CPU as requested"
    if req == BackendName.openvino:
        return _openvino(device, "OpenVINO on the CPU as requested")
    return _auto(engine, device)


def _openvino(device, reason: str) -> tuple[str, str, str]:
    if _is_cuda(device):
        raise InputError(
            f"the openvino backend runs on the CPU only here; use {option('backend', 'torch')} or "
            f"{option('backend', 'tensorrt')} for CUDA"
        )
    if not openvino_available():
        raise BackendUnavailableError(f"{NO_OPENVINO}; or use {option('backend', 'onnxruntime')}")
    return BackendName.openvino, "cpu", reason


def _tensorrt(engine, device) -> tuple[str, str, str]:
    if device is not None and not _is_cuda(device):
        raise InputError(
            f"TensorRT runs on a CUDA GPU only; drop {option('device', 'cpu')} or pick another backend"
        )
    if not tensorrt_available():
        import torch  # the wheel to name follows the CUDA this torch was built for

        raise TensorRTUnavailableError(
            f"the tensorrt package is not installed: {tensorrt_install_hint(torch.version.cuda)} (or use "
            f"{option('backend', 'onnxruntime')} / {option('backend', 'torch')})"
        )
    if not cuda_available():
        raise BackendUnavailableError(f"TensorRT needs a CUDA GPU: {NO_CUDA}")
    if engine is None:
        raise BackendUnavailableError(
            f"the tensorrt backend needs an engine file: build one with `hhrt build-engine` and pass {option('engine')}"
        )
    dev = str(device) if device is not None else "cuda"
    return BackendName.tensorrt, dev, f"TensorRT engine {os.fspath(engine)} on {dev} as requested"


def _auto(engine, device) -> tuple[str, str, str]:
    if file_kind(engine) is FileKind.openvino:
        return _openvino(device, f"{os.fspath(engine)} is an OpenVINO model; using OpenVINO on the CPU")
    if device == "cpu":
        if onnxruntime_available():
            return BackendName.onnxruntime, "cpu", "CPU requested; using ONNX Runtime on the CPU"
        return (
            BackendName.torch,
            "cpu",
            "CPU requested and onnxruntime is not installed; using torch on the CPU",
        )
    if file_kind(engine) is FileKind.onnx:
        # Only ONNX Runtime runs an .onnx file; TensorRT needs an engine built from it.
        if _is_cuda(device):
            raise InputError(
                f"{os.fspath(engine)} is an ONNX file, which runs on ONNX Runtime on the CPU only here; "
                f"drop {option('device')}, or build a TensorRT engine from it with `hhrt build-engine`"
            )
        if onnxruntime_available():
            return (
                BackendName.onnxruntime,
                "cpu",
                f"{os.fspath(engine)} is an ONNX file; using ONNX Runtime on the CPU",
            )
    has_cuda = cuda_available()
    if _is_cuda(device) and not has_cuda:
        raise BackendUnavailableError(
            f"device {device!r} requested but {NO_CUDA}; use {option('device', 'cpu')}"
        )
    dev = str(device) if device is not None else "cuda"
    if engine is not None and has_cuda and tensorrt_available():
        return (
            BackendName.tensorrt,
            dev,
            f"engine {os.fspath(engine)} given, CUDA GPU and TensorRT present; using TensorRT",
        )
    if has_cuda:
        why = ""
        if engine is not None:
            why = " (engine given but the tensorrt package is not installed)"
        return BackendName.torch, dev, f"CUDA GPU visible to torch{why}; using torch on {dev}"
    why = NO_CUDA
    if engine is not None:
        why += " (the engine needs one; ONNX Runtime runs the .onnx it was built from, if it is beside it)"
    if onnxruntime_available():
        return BackendName.onnxruntime, "cpu", f"{why}; using ONNX Runtime on the CPU"
    return BackendName.torch, "cpu", f"{why} and onnxruntime is not installed; using torch on the CPU"


def backend_status() -> dict[str, str]:
    """Whether each backend can run here ("available") or why not, from the probes ``choose_backend``
    uses; ONNX Runtime lists its execution providers. Keys: "torch (CPU)", "torch (CUDA)", "TensorRT",
    "ONNX Runtime", "OpenVINO"."""
    cuda = cuda_available()
    status = {"torch (CPU)": "available", "torch (CUDA)": "available" if cuda else NO_CUDA}
    if not tensorrt_available():
        status["TensorRT"] = NO_TENSORRT
    else:
        status["TensorRT"] = "available (with an engine file)" if cuda else f"installed, but {NO_CUDA}"
    status["ONNX Runtime"] = NO_ONNXRUNTIME
    if onnxruntime_available():
        try:
            import onnxruntime

            status["ONNX Runtime"] = ", ".join(onnxruntime.get_available_providers())
        except ImportError as exc:  # installed but broken (a missing shared library, ...)
            status["ONNX Runtime"] = f"installed but not importable ({exc})"
    available = f"available (CPU; {option('backend', 'openvino')})"
    status["OpenVINO"] = available if openvino_available() else NO_OPENVINO
    return status
