"""What hhrnet-rt wrote into its caches, by kind: the one answer ``hhrt info`` and ``hhrt cache`` share.

Each kind's own module knows its file names (the decoder's kernels, the ONNX Runtime exports, the named
weights); this module only gathers them, so it sits above all three.
"""

from __future__ import annotations

from pathlib import Path

from hhrnet_rt.core.paths import cache_candidates
from hhrnet_rt.core.temporaries import stale_temporaries
from hhrnet_rt.decode.cache import cached_kernel_files
from hhrnet_rt.model.download import cached_weight_files
from hhrnet_rt.runtime.backends.onnx_cache import CACHE_SUBDIR, cached_exports


def cache_inventory(*, weights: bool = False) -> dict[str, list[Path]]:
    """The files hhrnet-rt wrote into its caches, by kind: "numba" (compiled decode kernels), "onnx"
    (ONNX Runtime exports), "temporaries" (what killed runs left) and, with ``weights=True``, "weights"
    (downloaded named checkpoints).

    Only files whose names hhrnet-rt gives are listed (anything else in those folders is not ours), so
    deleting the listed files is what ``hhrt cache clear`` does.
    """
    found = {"numba": cached_kernel_files(), "onnx": cached_exports()}
    if weights:
        found["weights"] = cached_weight_files()
    found["temporaries"] = stale_cache_temporaries()
    return found


def stale_cache_temporaries() -> list[Path]:
    """What killed runs left in the caches: hhrt's hidden temporaries whose writer is gone
    (:func:`hhrnet_rt.core.temporaries.is_stale`; an interrupted W32 export is ~115 MB)."""
    folders = [*cache_candidates(), *cache_candidates(CACHE_SUBDIR), *cache_candidates("calibration")]
    return [path for folder in dict.fromkeys(folders) for path in stale_temporaries(folder)]


def total_size(files: list[Path]) -> int:
    """Bytes in ``files`` (files that vanished meanwhile count 0)."""
    size = 0
    for f in files:
        try:
            size += f.stat().st_size
        except OSError:
            pass
    return size
