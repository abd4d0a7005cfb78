"""The names users and files speak in: backends and precisions (one home for each list and its check).

The CLI's choices, ``create_backend``, the sidecar of an engine and ``hhrt info`` all read them from
here, so a name added here appears everywhere at once.
"""

from __future__ import annotations

from enum import StrEnum

from hhrnet_rt.core.errors import InputError


class BackendName(StrEnum):
    """The backends (``Backend.name``; ``"auto"`` is a request, :data:`AUTO`, never a backend's name).

    A ``StrEnum``: members equal their strings and print and serialise as them.
    """

    tensorrt = "tensorrt"
    torch = "torch"
    onnxruntime = "onnxruntime"
    openvino = (
        "openvino"  # optional (extra ``openvino``); never chosen by auto: see runtime/backends/select.py
    )


AUTO = "auto"
# What ``choose_backend`` accepts, in the order auto tries the backends.
BACKEND_REQUESTS: tuple[str, ...] = (AUTO, *(b.value for b in BackendName))


class Precision(StrEnum):
    """What a backend computes in (``Backend.precision``)."""

    fp32 = "fp32"
    fp16 = "fp16"
    int8 = "int8"


PRECISIONS: tuple[str, ...] = tuple(p.value for p in Precision)


def check_precision(precision: str | None) -> str | None:
    """Validate a requested precision ("fp32", "fp16", "int8" or ``None`` for the default)."""
    if precision is not None and precision not in PRECISIONS:
        raise InputError(f"unknown precision {precision!r}; choose one of {', '.join(PRECISIONS)}")
    return precision
