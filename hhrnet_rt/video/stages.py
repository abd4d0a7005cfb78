"""The work of each pipeline stage, shared by the threaded and the sequential runner, and the declared
thread layout the runner is built from.

The layout (:data:`LAYOUT`) is the one place that says which threads exist, in which order, what each
times and how big the queue in front of it is; the runner builds its threads and queues from it, and
:data:`STAGE_NAMES` / ``QUEUE_NAMES`` are derived from it, so they cannot drift apart.

Stages and what they time (names used in :class:`~hhrnet_rt.video.pipeline.PipelineResult`):
``capture`` (source.read, per frame), ``preprocess`` (estimator.prepare, per frame), ``inference``
(estimator.infer_batch, per call: one call covers a whole batch), ``decode`` (estimator.decode, per
frame), ``draw`` (annotator + HUD), ``write`` (every sink, then ``on_frame``). The decode stage also
records the bytes each frame copied device -> host (``Maps.d2h_bytes``).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from itertools import pairwise
from typing import TYPE_CHECKING, Any, Protocol

from hhrnet_rt.core.errors import StreamLostError
from hhrnet_rt.draw import PoseAnnotator, draw_hud, hud_ids_line
from hhrnet_rt.overlay import hud_scale
from hhrnet_rt.poses import Poses
from hhrnet_rt.video.meters import RollingRate, StageClock
from hhrnet_rt.video.sinks import FrameResult
from hhrnet_rt.video.sources import Frame

if TYPE_CHECKING:
    from hhrnet_rt.runtime.estimator import PoseEstimator
    from hhrnet_rt.video.sinks import CocoSink, JsonLinesSink, Mp4Sink
    from hhrnet_rt.video.sources import ArraySource, CameraSource, FileSource

#: A per-stream step on each frame's people after decode (track IDs, smoothing); called in frame order.
PostDecode = Callable[[Poses, Frame], Poses]
#: Frames are counted by people written per frame up to this many (the last count: this many or more).
PEOPLE_BINS = 32


@dataclass(frozen=True)
class StageSpec:
    """One thread of the pipeline.

    Attributes:
        name: the thread's name (``hhrt-<name>``, reported in ``threads_still_running``); the queue in
            front of it is called ``"<previous>→<name>"``.
        timings: the stage names it records in ``PipelineResult.stages``.
        inbox: capacity of the queue in front of it from ``(queue_size, batch, live)``; for the first
            stage after capture it is per stream, in frames; further on, in batches.
    """

    name: str
    timings: tuple[str, ...]
    inbox: Callable[[int, int, bool], int] | None = None

    def capacity(self, queue_size: int, batch: int, live: bool) -> int:
        """The capacity of the queue in front of this stage (see ``inbox``).

        Raises:
            TypeError: the stage has no queue in front of it (only the first stage of the layout may
                lack one); said with the stage's name rather than as a call of ``None``.
        """
        if self.inbox is None:
            raise TypeError(f"stage {self.name!r} has no inbox: every stage after the first needs one")
        return self.inbox(queue_size, batch, live)


def _batch_inbox(queue_size: int, batch: int, live: bool) -> int:
    # Live: only the newest frame of each stream waits. Files: room for a whole batch of consecutive
    # frames of one stream, or the batching stage could never fill a batch from a single file.
    return 1 if live else max(queue_size, batch)


def _half(queue_size: int, batch: int, live: bool) -> int:
    return max(1, queue_size // 2)


LAYOUT: tuple[StageSpec, ...] = (
    StageSpec("capture", ("capture",)),  # one thread per source
    StageSpec("inference", ("preprocess", "inference"), _batch_inbox),  # the batching stage
    StageSpec("decode", ("decode",), _half),
    StageSpec("output", ("draw", "write"), _half),
)
STAGE_NAMES = tuple(name for spec in LAYOUT for name in spec.timings)
QUEUE_NAMES = tuple(f"{a.name}→{b.name}" for a, b in pairwise(LAYOUT))


# The pipeline's interfaces. mypy checks every implementation against them: the package's own at the end
# of this module, the remote client's estimator at the end of hhrnet_rt/serve/remote.py.


class Estimator(Protocol):
    """The stage split of :class:`hhrnet_rt.runtime.estimator.PoseEstimator` that the pipeline calls
    (``infer_batch`` is used when the estimator has it, else one ``infer`` per frame)."""

    def prepare(self, image_bgr: Any) -> Any: ...
    def infer(self, prepared: Any) -> Any: ...
    def decode(self, maps: Any, prepared: Any) -> Poses: ...


class Source(Protocol):
    """Where a stream's frames come from (:mod:`hhrnet_rt.video.sources`: files, cameras, arrays).

    ``read`` returns ``None`` at the end. ``live`` picks the pipeline's policy: a live source keeps only
    the newest frame when inference falls behind; a file source loses nothing. ``size`` is
    ``(width, height)``, ``None`` while unknown; ``frame_count`` is ``None`` when not announced.
    """

    @property
    def live(self) -> bool: ...
    @property
    def fps(self) -> float: ...
    @property
    def size(self) -> tuple[int, int] | None: ...
    @property
    def frame_count(self) -> int | None: ...
    @property
    def decode_failures(self) -> int: ...
    @property
    def description(self) -> str: ...
    def read(self) -> Frame | None: ...
    def close(self) -> None: ...


class Sink(Protocol):
    """Where a stream's results go, in the stream's frame order (:mod:`hhrnet_rt.video.sinks`).

    A sink may also have ``write_outage(outage)``: it is then told of each outage of a live source, in
    order among the frames (before the first frame after it; one still going on when the stream ends,
    at the end, with ``end`` None).
    """

    def write(self, result: FrameResult) -> None: ...
    def close(self) -> None: ...


class StageError(Exception):
    """A stage raised; carries which stage, stream and frame, for the one message the user sees."""

    def __init__(
        self, stage: str, frame_index: int | None, cause: BaseException, stream: str | None = None
    ) -> None:
        super().__init__(stage, frame_index, cause)
        self.stage, self.frame_index, self.cause, self.stream = stage, frame_index, cause, stream

    def message(self) -> str:
        if isinstance(self.cause, StreamLostError):  # already names the stream and says what happened
            return str(self.cause)
        where = f" on frame {self.frame_index}" if self.frame_index is not None else ""
        if self.stream is not None:
            where += f" of {self.stream}"
        detail = str(self.cause) or type(self.cause).__name__
        return f"the {self.stage} stage failed{where}: {type(self.cause).__name__}: {detail}"


def timed(
    clock: StageClock, stage: str, where: tuple[int | None, str | None], fn: Callable, *args: Any
) -> Any:
    """``fn(*args)`` timed under ``stage``; an exception becomes a :class:`StageError` naming ``where``."""
    t0 = time.perf_counter()
    try:
        out = fn(*args)
    except Exception as exc:
        raise StageError(stage, where[0], exc, where[1]) from exc
    clock.add(stage, time.perf_counter() - t0)
    return out


class Stages:
    """One stream's per-frame stage functions (capture, decode, output) plus the counters they fill.

    Each counter is incremented by exactly one thread (read/dropped: this stream's capture thread;
    processed: decode; written: output), so no locks are needed.

    Isolation: a failure of this stream ends this stream only. ``cancel`` tells its capture (and the
    stages before the one that failed) to stop; ``finish`` (output thread, after the frames before the
    failure were written) writes its last outage records, closes its sinks and keeps the error.

    Args:
        post_decode: ``(poses, frame) -> poses``, called on this stream's frames in order, after the
            people are chosen (``min_score``/``max_people``) and before drawing and writing: the place for
            per-stream state such as a tracker (one per stream: streams must not share it).
        name: how messages name this stream when there are several (``None``: one stream).
    """

    def __init__(
        self,
        source: Source,
        estimator: Estimator,
        sinks: Sequence[Sink],
        *,
        annotator: PoseAnnotator | None,
        hud: bool,
        on_frame: Callable[[FrameResult], None] | None,
        min_score: float | None = None,
        max_people: int | None = None,
        post_decode: PostDecode | None = None,
        clock: StageClock | None = None,
        name: str | None = None,
    ) -> None:
        self.source, self.estimator, self.sinks = source, estimator, tuple(sinks)
        self.annotator, self.hud, self.on_frame = annotator, hud, on_frame
        self.post_decode, self.name = post_decode, name
        self.clock = clock or StageClock()  # shared by the streams of one run: list.append is atomic
        self.latencies: list[float] = []
        self.d2h_bytes: list[int] = []  # per frame, when the estimator's maps report it (decode thread)
        self.rolling = RollingRate()
        self.min_score, self.max_people = min_score, max_people
        self.read = self.dropped = self.processed = self.written = 0
        self.people_written = self.people_drawn = 0  # output thread only
        self.t_first: float | None = None  # first capture and last write: this stream's own wall time
        self.t_last: float | None = None
        self.people_counts = [0] * (PEOPLE_BINS + 1)  # frames by people written (the last: that many or more)
        self.cancelled = False  # set by whichever thread met this stream's failure
        self.finished = False  # output thread: sinks closed, state final
        self.error: StageError | None = None
        self.state = "running"  # then "done", "failed" or "stopped" (see finish)
        self._outages_written = 0

    def _timed(self, stage: str, frame_index: int | None, fn: Callable[..., Any], *args: Any) -> Any:
        return timed(self.clock, stage, (frame_index, self.name), fn, *args)

    def cancel(self) -> None:
        """Stop this stream's capture (a source waiting to reconnect stops waiting)."""
        self.cancelled = True
        interrupt = getattr(self.source, "interrupt", None)
        if interrupt is not None:
            interrupt()

    def _write_outages(self, before: float | None) -> None:
        """Outage records not written yet: those that ended by ``before`` (a frame's timestamp), or all
        of them (``None``: the stream ends; one still going on is written with ``end`` None)."""
        outages = getattr(self.source, "outages", ())
        while self._outages_written < len(outages):
            outage = outages[self._outages_written]
            if before is not None and (outage.end is None or outage.end > before):
                return
            for sink in self.sinks:
                write = getattr(sink, "write_outage", None)
                if write is not None:
                    write(outage)
            self._outages_written += 1

    def finish(self, error: StageError | None = None, *, stopped: bool = False) -> None:
        """End this stream (output thread, or the main thread once that has ended): its last outage
        records, its sinks closed; ``error`` (or a failure to close) makes it failed, ``stopped`` says
        the run was stopped before the stream's end."""
        if self.finished:
            return
        self.finished = True
        self.cancel()
        try:
            self._write_outages(None)
        except Exception as exc:
            error = error or StageError("write", None, exc, self.name)
        for sink in self.sinks:
            try:
                sink.close()
            except Exception as exc:
                error = error or StageError("write", None, exc, self.name)
        self.error = error
        self.state = "failed" if error is not None else "stopped" if stopped else "done"

    def capture(self) -> Frame | None:
        t0 = time.perf_counter()
        try:
            frame = self.source.read()
        except Exception as exc:
            raise StageError("capture", self.read, exc, self.name) from exc
        if frame is not None:  # the end-of-stream read is not a frame: keep it out of the statistics
            self.clock.add("capture", time.perf_counter() - t0)
            if self.t_first is None:
                self.t_first = t0
            self.read += 1
        return frame

    def group(self, frame: Frame, prepared: Any, maps: Any) -> tuple[Poses, float]:
        """The estimator's decode of one frame and its duration. Safe to run for several frames at once
        (``decode_threads``): it touches no state of this stream."""
        t0 = time.perf_counter()
        try:
            poses = self.estimator.decode(maps, prepared)
        except Exception as exc:
            raise StageError("decode", frame.index, exc, self.name) from exc
        return poses, time.perf_counter() - t0

    def choose(self, frame: Frame, grouped: tuple[Poses, float], maps: Any) -> tuple[Frame, Poses]:
        """Who goes on, then ``post_decode``; in this stream's frame order, from the decode thread only."""
        poses, seconds = grouped
        t0 = time.perf_counter()
        try:
            poses = poses.select(
                self.min_score, self.max_people
            )  # the one choice of who is drawn and written
            if self.post_decode is not None:  # after the choice: a tracker sees exactly what is written
                poses = self.post_decode(poses, frame)
        except Exception as exc:
            raise StageError("decode", frame.index, exc, self.name) from exc
        self.clock.add("decode", seconds + time.perf_counter() - t0)  # one record per frame
        nbytes = getattr(maps, "d2h_bytes", None)  # complete after decode (the device decode adds to it)
        if nbytes is not None:
            self.d2h_bytes.append(int(nbytes))
        self.processed += 1
        return frame, poses

    def decode(self, frame: Frame, prepared: Any, maps: Any) -> tuple[Frame, Poses]:
        return self.choose(frame, self.group(frame, prepared, maps), maps)

    def _draw(self, frame: Frame, poses: Poses) -> FrameResult:
        image = frame.image
        on_picture = poses
        if self.annotator is not None:
            image = self.annotator.annotate(image, poses)
            on_picture = poses[self.annotator.drawn(poses)]
        drawn = len(on_picture)
        self.people_drawn += drawn
        latency = time.perf_counter() - frame.t_capture
        if self.hud:  # the people on the picture (and their IDs), not the fragments it hides
            lines = [f"{self.rolling.fps:5.1f} FPS  {1e3 * latency:4.0f} ms", f"people {drawn}"]
            if poses.ids is not None:
                lines.append(hud_ids_line(on_picture))
            if self.dropped:
                lines.append(f"dropped {self.dropped}")
            if reconnects := getattr(self.source, "reconnects", 0):
                lines.append(f"reconnected {reconnects}x")
            image = draw_hud(image, lines, scale=hud_scale(image.shape[1]))
        return FrameResult(frame, poses, image, latency)

    def _write(self, result: FrameResult) -> None:
        self._write_outages(result.frame.timestamp)
        for sink in self.sinks:
            sink.write(result)
        if self.on_frame is not None:
            self.on_frame(result)

    def output(self, frame: Frame, poses: Poses) -> FrameResult:
        result = self._timed("draw", frame.index, self._draw, frame, poses)
        self._timed("write", frame.index, self._write, result)
        self.people_written += len(poses)
        self.people_counts[min(len(poses), PEOPLE_BINS)] += 1
        self.latencies.append(result.latency_s)
        self.rolling.tick(result.latency_s)
        self.written += 1
        self.t_last = time.perf_counter()
        return result


if TYPE_CHECKING:
    # The implementations of the protocols above, checked by mypy (CI's type check).
    def _implementations(
        estimator: PoseEstimator,
        files: FileSource,
        camera: CameraSource,
        arrays: ArraySource,
        mp4: Mp4Sink,
        json_lines: JsonLinesSink,
        coco: CocoSink,
    ) -> tuple[list[Estimator], list[Source], list[Sink]]:
        return [estimator], [files, camera, arrays], [mp4, json_lines, coco]
