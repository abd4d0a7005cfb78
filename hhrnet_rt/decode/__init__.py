"""Official HigherHRNet test-time decoding (``HeatmapParser.parse``), exact and compiled with Numba.

Public API:
    parse(heatmaps, tags, params=None, adjust=True, refine=True) -> (grouped, scores)
    munkres(cost) -> (n, 2) int64 pairs, the classic munkres 1.1.x assignment
    top_k(heatmaps, tags, params=None) -> candidates per joint (NMS + top-k)
    warmup() -> compile (or load from the disk cache) every kernel
"""

from __future__ import annotations

from hhrnet_rt.decode import cache as _cache  # noqa: F401  (sets the Numba cache location first)
from hhrnet_rt.decode.munkres import munkres
from hhrnet_rt.decode.parse import parse, top_k, warmup

__all__ = ["munkres", "parse", "top_k", "warmup"]
