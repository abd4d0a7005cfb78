"""The work of the stages after capture on a batch of items, with each stream failing alone.

Items travel down the stages in batches: ``(stream, frame, ...)`` tuples and, last of each stream, one
:class:`StreamEnd`. When a frame of one stream fails in a stage (it cannot be prepared, decoded, drawn or
written; a source gives up), that stage *cuts* the stream: it sends a ``StreamEnd`` carrying the error in
the frame's place, drops everything of that stream that reaches it later, and cancels the stream's
capture. The stages after it see the stream's earlier frames first (queues keep order), then its end; so
the frames before the failure are written and the stream's sinks are closed whole, while the other
streams go on untouched. A failed inference call cuts every stream that had a frame in the batch.

With ``fail_fast`` the first failure is raised instead, and the runner stops every stream (the behaviour
before isolation, ``--fail-fast``).

Both runners use this: the threaded one calls each method from its stage's thread, the sequential one
calls them in turn.
"""

from __future__ import annotations

from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from hhrnet_rt.video.batching import BatchInference
from hhrnet_rt.video.channels import LatestImage
from hhrnet_rt.video.stages import StageError, Stages


@dataclass(frozen=True)
class StreamEnd:
    """The last item of a stream: it ended (``error`` None) or failed."""

    stream: int
    error: StageError | None = None


class Flow:
    """The inference, decode and output work on batches of items (see the module docstring).

    Args:
        streams: the streams' stage functions and counters.
        infer: the batching stage's preprocess + one inference call.
        decode_pool: threads that group a batch's frames side by side (``None``: in the caller's thread).
        latest: where each stream's newest picture goes for the window (``None``: no window).
        fail_fast: raise the first failure instead of cutting its stream.
    """

    def __init__(
        self, streams: Sequence[Stages], infer: BatchInference, *, decode_pool: ThreadPoolExecutor | None,
        latest: Sequence[LatestImage] | None, fail_fast: bool,
    ) -> None:  # fmt: skip
        self.streams, self.infer, self.decode_pool = tuple(streams), infer, decode_pool
        self.latest, self.fail_fast = latest, fail_fast
        # the streams each stage has cut; each set is touched by its own stage's thread only
        self._cut: dict[str, set[int]] = {"inference": set(), "decode": set(), "output": set()}

    def _failed(self, stage: str, stream: int, error: StageError) -> StreamEnd:
        if self.fail_fast:
            raise error
        self._cut[stage].add(stream)
        self.streams[stream].cancel()
        return StreamEnd(stream, error)

    def _passes(self, stage: str, stream: int, item: Any) -> bool:
        """Whether ``item`` goes on into ``stage``'s work (not after its stream was cut; a frame not
        after its stream was cancelled further down)."""
        if stream in self._cut[stage]:
            return False
        return isinstance(item, StreamEnd) or not self.streams[stream].cancelled

    # -- the batching stage ------------------------------------------------------------------------------
    def inference(self, items: list[tuple[int, Any]]) -> list[Any]:
        """``(stream, frame or StreamEnd)`` pairs -> ``(stream, frame, prepared, maps)`` and ends."""
        frames = [
            (i, x) for i, x in items if self._passes("inference", i, x) and not isinstance(x, StreamEnd)
        ]
        ends = [x for i, x in items if self._passes("inference", i, x) and isinstance(x, StreamEnd)]
        out: list[Any] = []
        if frames:
            try:
                ready, failed = self.infer(frames)
            except StageError as exc:  # the call failed: every stream with a frame in it
                ready, failed = [], [(i, exc) for i, _ in frames]
            first_failure: dict[int, StageError] = {}
            for i, error in failed:
                first_failure.setdefault(i, error)
            for item in ready:  # a failed stream's frames before the failure go on; those after it do not
                cut_at = first_failure.get(item[0])
                if cut_at is None or cut_at.frame_index is None or item[1].index < cut_at.frame_index:
                    out.append(item)
            out.extend(self._failed("inference", i, e) for i, e in first_failure.items())
        # a stream's end comes after its frames; one cut above has had its end already
        out.extend(end for end in ends if end.stream not in self._cut["inference"])
        return out

    # -- the decode stage --------------------------------------------------------------------------------
    def _group(self, item: tuple[int, Any, Any, Any]) -> Any:
        i, frame, prepared, maps = item
        try:
            return self.streams[i].group(frame, prepared, maps)
        except StageError as exc:
            return exc

    def decode(self, items: list[Any]) -> list[Any]:
        """``(stream, frame, prepared, maps)`` -> ``(stream, frame, poses)``; ends pass."""
        work = [item for item in items if self._passes("decode", _stream(item), item)]
        frames = [item for item in work if not isinstance(item, StreamEnd)]
        # The grouping of a batch's frames may run side by side (Numba releases the GIL); what follows it
        # (choice of people, post_decode, counters) runs here, in batch order, which is each stream's order.
        if self.decode_pool is not None and len(frames) > 1:
            grouped = iter(list(self.decode_pool.map(self._group, frames)))
        else:
            grouped = iter([self._group(item) for item in frames])
        out: list[Any] = []
        for item in work:
            if isinstance(item, StreamEnd):
                if item.stream not in self._cut["decode"]:  # else its end went down already
                    out.append(item)
                continue
            i, frame, _, maps = item
            result = next(grouped)
            if i in self._cut["decode"]:  # an earlier frame of this batch failed
                continue
            try:
                if isinstance(result, StageError):
                    raise result
                out.append((i, *self.streams[i].choose(frame, result, maps)))
            except StageError as exc:
                out.append(self._failed("decode", i, exc))
        return out

    # -- the output stage --------------------------------------------------------------------------------
    def output(self, items: list[Any]) -> None:
        """Draw and write each frame; a stream's end finishes it (sinks closed, state final)."""
        for item in items:
            i = _stream(item)
            if i in self._cut["output"]:
                continue
            st = self.streams[i]
            if isinstance(item, StreamEnd):
                self._finish(i, item.error)
                continue
            _, frame, poses = item
            try:
                result = st.output(frame, poses)
            except StageError as exc:
                self._finish(i, self._failed("output", i, exc).error)
                continue
            if self.latest is not None:
                self.latest[i].set(result.image)

    def _finish(self, i: int, error: StageError | None) -> None:
        st = self.streams[i]
        st.finish(error)
        if st.error is not None and self.fail_fast:
            raise st.error

    @property
    def finished(self) -> bool:
        return all(st.finished for st in self.streams)


def _stream(item: Any) -> int:
    return item.stream if isinstance(item, StreamEnd) else item[0]
