"""Exceptions the library raises. Each message says what went wrong and what to do about it.

Only :mod:`hhrnet_rt.cli` turns these into exit codes; library code never calls ``sys.exit``.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import Any


class HhrtError(Exception):
    """Base class of every error meant to reach a user as a plain message (no traceback)."""


class InputError(HhrtError, ValueError):
    """An image, video, camera, size or path the user gave cannot be used as it is."""


class ImageShapeError(InputError):
    """An image whose network input would be out of bounds (an extreme aspect ratio): refused before any
    work (the server answers 413)."""


class WeightsError(HhrtError):
    """A checkpoint cannot be read, is not a HigherHRNet checkpoint, or does not fit the model."""


class DownloadError(WeightsError):
    """Named weights could not be downloaded or failed their hash check."""


class BackendUnavailableError(HhrtError):
    """The requested inference backend (TensorRT, CUDA, ONNX Runtime provider) is not usable here."""


class TensorRTUnavailableError(BackendUnavailableError):
    """TensorRT is not importable; the ONNX files are still usable."""


# The one wording of how to get TensorRT (hhrnet-rt is not on PyPI, so `pip install hhrnet-rt[tensorrt]`
# would find nothing; NVIDIA publishes `tensorrt` wheels on PyPI backed by its own index). Plain `tensorrt`
# pulls the wheels of NVIDIA's newest CUDA (13 now), which a torch built for CUDA 12 cannot share a
# process with: the hint names the `tensorrt-cuNN` of the CUDA that torch was built for.
def tensorrt_install_hint(cuda_version: str | None) -> str:
    """How to install TensorRT next to a torch built for ``cuda_version`` (``torch.version.cuda``)."""
    major = (cuda_version or "").split(".")[0]
    if not major.isdigit():
        return (
            "pip install tensorrt-cuNN, NN the CUDA major version of your torch build (torch.version.cuda; "
            "this torch has no CUDA: TensorRT needs an NVIDIA GPU and a CUDA build of torch), or "
            'pip install -e ".[tensorrt]" from an hhrnet-rt checkout (the wheels of NVIDIA\'s newest CUDA)'
        )
    extra = (
        f', or pip install -e ".[tensorrt-cu{major}]" from an hhrnet-rt checkout'
        if major in ("12", "13")
        else ""
    )
    return (
        f"pip install tensorrt-cu{major} (NVIDIA's wheels for CUDA {major}.x, the CUDA this torch was built "
        f"for; plain `tensorrt` follows NVIDIA's newest CUDA){extra}"
    )


TENSORRT_INSTALL_HINT = tensorrt_install_hint(None)


class EngineMismatchError(HhrtError):
    """A TensorRT engine was built for another GPU or TensorRT version and must be rebuilt."""


class CalibrationError(HhrtError):
    """INT8 calibration data is missing or unreadable."""


class PipelineError(HhrtError):
    """A stage of the streaming pipeline failed; the message names the stage and the cause.

    Attributes:
        threads_still_running: stages that had not ended when the error was raised (should be empty).
    """

    threads_still_running: tuple[str, ...] = ()


class DiskFullError(PipelineError):
    """An output could not be written for lack of space; what was written before stays usable."""


# How a message names one of the caller's arguments. The library speaks of its own arguments
# (``backend='onnxruntime'``); while a CLI command runs, the CLI's style names its flags instead
# (``--backend onnxruntime``), so the same message fits whoever reads it and only hhrnet_rt.cli knows
# the flags.
NOT_GIVEN: Any = object()


def _as_argument(name: str, value: object) -> str:
    return name if value is NOT_GIVEN else f"{name}={value!r}"


_option_style: Callable[[str, object], str] = _as_argument


def option(name: str, value: object = NOT_GIVEN) -> str:
    """``name`` (or ``name=value``) of a library argument, as the current style writes it.

    ``value`` may be a placeholder such as ``"NAME.onnx"``; leave it out to name the argument alone.
    """
    return _option_style(name, value)


@contextlib.contextmanager
def option_style(style: Callable[[str, object], str]) -> Iterator[None]:
    """Within the block, :func:`option` writes ``style(name, value)`` (``value`` is :data:`NOT_GIVEN`
    when only the name is meant)."""
    global _option_style
    before, _option_style = _option_style, style
    try:
        yield
    finally:
        _option_style = before
