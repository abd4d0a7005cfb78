"""The shape profile of a TensorRT engine: min/opt/max input shapes, their defaults and their parsing.

Part of a built file's contract (the sidecar records it, the backend checks inputs against it, the
builder writes it), so it lives here, below both the builder and the backend.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from hhrnet_rt.core.errors import InputError, option

# The network downsamples by 32 and resize_align pads the long side to a multiple of 64; profile sizes
# that are not multiples of 64 could never be fed, so they are refused rather than silently unused.
SIZE_MULTIPLE = 64


@dataclass(frozen=True)
class ShapeProfile:
    """Min/opt/max input shapes ``(N, 3, H, W)`` of the engine's single optimisation profile."""

    min: tuple[int, int, int, int]
    opt: tuple[int, int, int, int]
    max: tuple[int, int, int, int]

    def as_dict(self) -> dict[str, list[int]]:
        return {"min": list(self.min), "opt": list(self.opt), "max": list(self.max)}

    def contains(self, shape: tuple[int, ...]) -> bool:
        return all(lo <= s <= hi for lo, s, hi in zip(self.min, shape, self.max, strict=True))


def profile_from_dict(data: dict[str, list[int]]) -> ShapeProfile:
    """Inverse of :meth:`ShapeProfile.as_dict` (the sidecar stores profiles as lists)."""
    return ShapeProfile(*(_shape(data[k]) for k in ("min", "opt", "max")))


def _shape(values: list[int]) -> tuple[int, int, int, int]:
    n, c, h, w = (int(v) for v in values)  # four: the sidecar checks that when it is read
    return n, c, h, w


def _round_up(value: float, multiple: int = SIZE_MULTIPLE) -> int:
    return int(math.ceil(value / multiple) * multiple)


def default_profile(input_size: int, batch: int = 1) -> ShapeProfile:
    """Profile for frames resized by ``resize_align`` at ``input_size``.

    Short side = input size; ``opt`` is a 16:9 landscape frame (the common camera shape); ``max`` allows
    a 2:1 frame either way round, which covers phone-portrait video too. ``opt`` is batch 1 whatever
    ``batch`` is: TensorRT tunes its kernels for ``opt``, and one live stream (the common case, and every
    partial batch of a few) runs batch 1; kernels picked for batch N would serve it slower.
    """
    s = input_size
    return ShapeProfile(
        min=(1, 3, s, s),
        opt=(1, 3, s, _round_up(s * 16 / 9)),
        max=(batch, 3, 2 * s, 2 * s),
    )


def resolve_profile(input_size: int, profile: ShapeProfile | None, max_batch: int | None) -> ShapeProfile:
    """The build's profile: ``profile`` as given, else :func:`default_profile` for up to ``max_batch`` frames.

    Raises:
        InputError: both are given (the batch range is then part of ``profile``: NxHxW), or ``max_batch``
            is not a positive integer.
    """
    if max_batch is not None:
        if isinstance(max_batch, bool) or not isinstance(max_batch, int) or max_batch < 1:
            raise InputError(f"{option('max_batch')} must be a positive integer, got {max_batch!r}")
        if profile is not None:
            raise InputError(
                f"give {option('max_batch')} or {option('shapes')}, not both: with {option('shapes')} "
                "write the batch range as NxHxW (e.g. 1x512x512:8x512x960:8x1024x1024)"
            )
    return profile or default_profile(input_size, max_batch or 1)


def _parse_one(text: str, what: str) -> tuple[int, int, int]:
    parts = text.lower().split("x")
    try:
        nums = [int(p) for p in parts]
    except ValueError:
        raise InputError(f"{option('shapes')} {what} {text!r} is not S, HxW or NxHxW with integers") from None
    if len(nums) == 1:
        return 1, nums[0], nums[0]
    if len(nums) == 2:
        return 1, nums[0], nums[1]
    if len(nums) == 3:
        return nums[0], nums[1], nums[2]
    raise InputError(f"{option('shapes')} {what} {text!r} is not S, HxW or NxHxW")


def parse_shapes(spec: str) -> ShapeProfile:
    """Parse ``MIN:OPT:MAX``, each ``S`` (square), ``HxW`` or ``NxHxW``.

    Example:
        >>> parse_shapes("512:512x960:1024").opt
        (1, 3, 512, 960)
    """
    fields = spec.split(":")
    if len(fields) != 3:
        raise InputError(f"{option('shapes')} must be MIN:OPT:MAX (e.g. 512:512x960:1024x1024), got {spec!r}")
    shapes = [_parse_one(f.strip(), w) for f, w in zip(fields, ("MIN", "OPT", "MAX"), strict=True)]
    for (n, h, w), what in zip(shapes, ("MIN", "OPT", "MAX"), strict=True):
        if n < 1 or h < SIZE_MULTIPLE or w < SIZE_MULTIPLE:
            raise InputError(
                f"{option('shapes')} {what} {n}x{h}x{w}: batch must be >= 1 and H, W >= {SIZE_MULTIPLE}"
            )
        if h % SIZE_MULTIPLE or w % SIZE_MULTIPLE:
            raise InputError(
                f"{option('shapes')} {what} {h}x{w}: H and W must be multiples of {SIZE_MULTIPLE} (the preprocessing "
                f"pads to multiples of {SIZE_MULTIPLE}), e.g. {_round_up(h)}x{_round_up(w)}"
            )
    lo, mid, hi = shapes
    if not all(a <= b <= c for a, b, c in zip(lo, mid, hi, strict=True)):
        raise InputError(f"{option('shapes')} needs MIN <= OPT <= MAX in every dimension, got {spec!r}")
    return ShapeProfile(*((n, 3, h, w) for n, h, w in shapes))
