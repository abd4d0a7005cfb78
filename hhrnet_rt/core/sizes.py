"""The one rule for a network input size (estimator, CLI options, engine build, sidecar, ONNX metadata).

The official preprocessing pads both sides to multiples of 64 (and the network needs multiples of 32),
so an input size is a positive multiple of 64.
"""

from __future__ import annotations

import numpy as np

from hhrnet_rt.core.errors import InputError

INPUT_SIZE_MULTIPLE = 64


def is_valid_input_size(value: object) -> bool:
    """``value`` is an int (not a bool) and a positive multiple of :data:`INPUT_SIZE_MULTIPLE`."""
    return bool(
        isinstance(value, int | np.integer)
        and not isinstance(value, bool)
        and value >= INPUT_SIZE_MULTIPLE
        and value % INPUT_SIZE_MULTIPLE == 0
    )


def check_input_size(input_size: object) -> int:
    """Return ``input_size`` as an int, or raise InputError naming the nearest valid sizes.

    Integral floats (``512.0``) are accepted; anything else that is not a positive multiple of 64 is not.
    """
    if (
        isinstance(input_size, bool)
        or not isinstance(input_size, int | float | np.integer | np.floating)
        or not np.isfinite(input_size)
    ):
        raise InputError(f"input size must be an integer, got {input_size!r}")
    n = int(input_size)
    if n != input_size or not is_valid_input_size(n):
        m = INPUT_SIZE_MULTIPLE
        low, high = max(m, n // m * m), max(m, -(-n // m) * m)
        near = f"{low}" if low == high else f"{low} or {high}"
        raise InputError(
            f"input size must be a positive multiple of {m} (the official preprocessing pads to multiples "
            f"of {m}), got {input_size!r}; nearest valid sizes: {near}"
        )
    return n
