"""Output arrays an in-process backend reuses between calls (ONNX Runtime, OpenVINO), handed out only when
nothing else references them.
"""

from __future__ import annotations

import sys
import threading

import numpy as np

# Most output buffer pairs kept for reuse (see OutputRing). The pipeline holds at most
# queue_size // 2 + 2 maps at once (4 with its default queue of 4), so 8 leaves room for a deeper queue
# before the ring stops growing and falls back to fresh arrays.
MAX_OUTPUT_BUFFERS = 8


class OutputRing:
    """Output arrays reused between calls, handed out only when nothing else references them.

    Allocating the outputs afresh each frame costs page faults over the whole buffer (73.5 MB for W32 at
    512x960 with projection). Reuse must not overwrite maps that the pipeline is still decoding (it keeps
    several frames in flight), so the ownership rule is enforced, not documented: a buffer pair is
    reused only when the ring holds the last references to both arrays (``sys.getrefcount``; views such
    as ``heatmaps[0]`` or ``torch.from_numpy`` keep their base referenced). While every buffer is still in
    use, a new pair is added, up to ``capacity``; beyond that, fresh arrays are returned.
    """

    def __init__(self, capacity: int = MAX_OUTPUT_BUFFERS) -> None:
        self.capacity = capacity
        self._pairs: dict[tuple[int, ...], list[tuple[np.ndarray, np.ndarray]]] = {}
        self._lock = threading.Lock()

    @staticmethod
    def _free(pair: tuple[np.ndarray, np.ndarray]) -> bool:
        return _most_refs(pair) <= _FREE_REFS

    def take(self, key: tuple[int, ...]) -> tuple[np.ndarray, np.ndarray] | None:
        """Check out a free buffer pair for input shape ``key`` (None: allocate); :meth:`adopt` it after.

        The pair leaves the ring until adopted, so two threads never get the same one.
        """
        with self._lock:
            pairs = self._pairs.get(key, [])
            for i, pair in enumerate(pairs):
                if self._free(pair):
                    return pairs.pop(i)
        return None

    def adopt(self, key: tuple[int, ...], pair: tuple[np.ndarray, np.ndarray]) -> None:
        """Keep outputs (checked out or fresh) for reuse once their users drop them (if there is room)."""
        with self._lock:
            if len(self._pairs) > 4:  # input shapes change rarely; do not hoard buffers for old ones
                self._pairs.clear()
            pairs = self._pairs.setdefault(key, [])
            if len(pairs) < self.capacity:
                pairs.append(pair)

    def __len__(self) -> int:
        return sum(len(p) for p in self._pairs.values())


def _most_refs(pair: tuple[np.ndarray, np.ndarray]) -> int:
    heatmaps, tags = pair
    return max(sys.getrefcount(heatmaps), sys.getrefcount(tags))


# References to an array that only the ring's tuple holds, counted through the same code path (the
# interpreter's own counting of locals and arguments differs between Python versions, so it is measured).
_FREE_REFS = _most_refs((np.empty(1), np.empty(1)))
