"""Where the tag dimension lives: planar in memory, per pixel in the decoders' API.

The graph (and every backend and exported file) returns tags **planar**, ``(N, K, L, H, W)``: one
contiguous (H, W) plane per joint and tag dimension, each joint's L planes side by side. Building that
is a cheap concatenation of planes; the older ``(N, K, H, W, L)`` layout interleaved the L values of
every pixel, a full-map strided copy on the CPU (30-40 ms on torch for W32 at 512 with flip) that the
decoders do not need: they read tags at a few hundred pixels.

The decoders' public API keeps the per-pixel view, ``(K, H, W, L)`` as the official code indexes it
(``tags[j, y, x, :]``): :func:`by_pixel` gives that view of planar memory without copying, and
:func:`planar` turns any ``(K, H, W, L)`` array back into the planar kernels' layout -- no copy either
when it is such a view, one copy when a caller hands in an interleaved array (the golden tests do).

Exports of the older interleaved layout are refused (:func:`interleaved_problem`): their maps would be
read with the wrong axes, and a rebuild is one command.
"""

from __future__ import annotations

from typing import Any

import numpy as np


def by_pixel(tags: Any) -> Any:
    """``(..., K, L, H, W)`` planar tags (numpy or torch) as a ``(..., K, H, W, L)`` view; never copies."""
    if isinstance(tags, np.ndarray):
        return np.moveaxis(tags, -3, -1)
    return tags.movedim(-3, -1)


def planar(tags: np.ndarray) -> np.ndarray:
    """``(K, H, W, L)`` float32 tags as a C-contiguous ``(K, L, H, W)`` array (a copy only when the
    memory is not already planar, e.g. an interleaved array)."""
    return np.ascontiguousarray(np.moveaxis(tags, -1, -3), dtype=np.float32)


def interleaved_problem(heatmaps_shape: tuple[int, ...], tags_shape: tuple[int, ...]) -> str | None:
    """What is wrong with a file whose outputs have these shapes (batch axis included), or None.

    Planar tags are ``(N, K, L, H, W)`` with ``(H, W)`` the heatmaps' last two sizes. An older export's
    ``(N, K, H, W, L)`` tags are told apart by where ``(H, W)`` sits (L is 1 or 2, never a map size the
    file accepts, since sizes are multiples of 32).
    """
    hw = tuple(heatmaps_shape[-2:])
    if len(tags_shape) == 5 and tuple(tags_shape[3:]) == hw:
        return None
    if len(tags_shape) == 5 and tuple(tags_shape[2:4]) == hw:
        return (
            "it returns tags interleaved per pixel (N, K, H, W, L), the layout of files exported before "
            "hhrt stored them as planes (N, K, L, H, W); rebuild it with `hhrt build-engine`"
        )
    return f"its tags {tuple(tags_shape)} are not (N, K, L, H, W) planes of the heatmaps' {hw} size"
