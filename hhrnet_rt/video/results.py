"""What a pipeline run did and how fast: for the whole run and for each stream; and the error a run
raises when it stopped everything or when no stream completed."""

from __future__ import annotations

import copy
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from hhrnet_rt.core.errors import DiskFullError, PipelineError, StreamLostError
from hhrnet_rt.video.meters import LatencyStats, QueueWait, StageClock, TransferStats
from hhrnet_rt.video.reconnect import Outage

if TYPE_CHECKING:
    from hhrnet_rt.video.stages import StageError, Stages


@dataclass(frozen=True)
class StreamResult:
    """One stream of a run.

    Attributes:
        name: the stream's name (its file name, camera or URL).
        frames_read, frames_dropped, frames_processed, frames_written, decode_failures: as in
            :class:`PipelineResult`, for this stream only (drops: live sources, frames replaced by a newer
            one of the same stream before inference took them).
        wall_s: seconds from the start of the run to this stream's last frame written.
        latency: per-frame latency from capture to drawn.
        people_written, people_drawn: as in :class:`PipelineResult`.
        state: ``"done"`` (its input ended, or ``max_frames``), ``"failed"`` (``error`` says why; the
            outputs hold its frames before the failure) or ``"stopped"`` (the run was stopped first).
        error: why it failed, in words (``None`` unless failed).
        outages: live sources: every outage (start, end, reason), oldest first.
    """

    name: str
    frames_read: int
    frames_dropped: int
    frames_processed: int
    frames_written: int
    decode_failures: int
    wall_s: float
    latency: LatencyStats
    people_written: int = 0
    people_drawn: int = 0
    state: str = "done"
    error: str | None = None
    outages: tuple[Outage, ...] = ()

    @property
    def reconnects(self) -> int:
        """Outages the stream came back from."""
        return sum(o.end is not None for o in self.outages)

    @property
    def outage_s(self) -> float:
        """Seconds without the stream (one it never came back from: up to the last try to reach it)."""
        return sum(o.seconds() for o in self.outages)

    def describe(self) -> str:
        """Its state in words: ``done``, ``failed: why``, ``stopped``, with the outages of a live source
        (``done, reconnected 2x (7.5 s away)``)."""
        text = f"failed: {self.error}" if self.state == "failed" and self.error else self.state
        if self.outages:
            text += f", reconnected {self.reconnects}x ({self.outage_s:.1f} s away)"
        return text

    @property
    def fps(self) -> float:
        """This stream's throughput: its frames written per second of its own run time."""
        return self.frames_written / self.wall_s if self.wall_s > 0 else 0.0


@dataclass
class PipelineResult:
    """What a run did and how fast.

    Attributes:
        frames_read: frames the source delivered.
        frames_dropped: live sources only: frames replaced by a newer one before inference took them.
        frames_processed: frames that went through inference and decode.
        frames_written: frames that went through drawing and every sink (= frames in the output files).
        decode_failures: frames (packets) of the input that could not be decoded and were skipped.
        wall_s: seconds from start to the last frame written (or to the stop).
        stages: per-stage latency (keys: capture, preprocess, inference, decode, draw, write).
        latency: per-frame latency from capture to drawn.
        queue_waits: seconds each queue's producer waited (queue full) and consumer waited (queue empty).
        d2h: bytes copied device -> host per frame (``Maps.d2h_bytes``: the maps on the host decode of
            a CUDA backend, candidates on the device decode, 0 on the host decode of a CPU backend).
        stopped: ``None`` when the source ended (or ``max_frames`` was reached); else why the run stopped
            early: ``"interrupted"`` (Ctrl-C), ``"quit"`` (q/Esc in the window), ``"stop event"``.
        threads_still_running: stages that had not ended when the run returned (should be empty).
        threaded: whether the threaded runner (or the sequential reference loop) produced this.
        people_written: people in the frames written (what the sinks got, after ``min_score`` and
            ``max_people``), summed over frames.
        people_drawn: people drawn on those frames (and counted on the HUD); equal to ``people_written``
            unless the annotator hides some (its ``person_threshold``).
        streams: the same counts for each stream (one entry for :func:`run_pipeline`); the fields above
            are their sums (``latency``: over every frame of every stream).
        inference_calls: how many inference calls the batching stage made.
        mean_batch: frames per inference call, on average.
    """

    frames_read: int = 0
    frames_dropped: int = 0
    frames_processed: int = 0
    frames_written: int = 0
    decode_failures: int = 0
    wall_s: float = 0.0
    stages: dict[str, LatencyStats] = field(default_factory=dict)
    latency: LatencyStats = field(default_factory=lambda: LatencyStats.of([]))
    queue_waits: dict[str, QueueWait] = field(default_factory=dict)
    d2h: TransferStats = field(default_factory=lambda: TransferStats.of([]))
    stopped: str | None = None
    threads_still_running: tuple[str, ...] = ()
    threaded: bool = True
    people_written: int = 0
    people_drawn: int = 0
    streams: tuple[StreamResult, ...] = ()
    inference_calls: int = 0
    mean_batch: float = 0.0

    @property
    def fps(self) -> float:
        """End-to-end throughput: frames written per wall-clock second (all streams together)."""
        return self.frames_written / self.wall_s if self.wall_s > 0 else 0.0

    @property
    def failed(self) -> tuple[StreamResult, ...]:
        """The streams that failed (the others are done, or stopped with the run)."""
        return tuple(s for s in self.streams if s.state == "failed")


def summarise(
    streams: Sequence[Stages], clock: StageClock, *, t0: float, t_end: float, sizes: list[int],
    stopped: str | None, queue_waits: dict[str, QueueWait], still: tuple[str, ...], threaded: bool,
) -> PipelineResult:  # fmt: skip
    """The :class:`PipelineResult` of a run from its streams' counters and the stage clock."""
    from hhrnet_rt.video.stages import STAGE_NAMES

    per_stream = tuple(
        StreamResult(
            name=st.name or str(getattr(st.source, "description", f"stream {i}")),
            frames_read=st.read,
            frames_dropped=st.dropped,
            frames_processed=st.processed,
            frames_written=st.written,
            decode_failures=int(getattr(st.source, "decode_failures", 0)),
            wall_s=(st.t_last or t_end) - t0,
            latency=LatencyStats.of(st.latencies),
            people_written=st.people_written,
            people_drawn=st.people_drawn,
            state=st.state if st.state != "running" else "stopped",
            error=st.error.message() if st.error is not None else None,
            outages=tuple(copy.copy(o) for o in getattr(st.source, "outages", ())),
        )
        for i, st in enumerate(streams)
    )
    stats = clock.stats()
    return PipelineResult(
        frames_read=sum(s.frames_read for s in per_stream),
        frames_dropped=sum(s.frames_dropped for s in per_stream),
        frames_processed=sum(s.frames_processed for s in per_stream),
        frames_written=sum(s.frames_written for s in per_stream),
        decode_failures=sum(s.decode_failures for s in per_stream),
        wall_s=t_end - t0,
        stages={name: stats.get(name, LatencyStats.of([])) for name in STAGE_NAMES},
        latency=LatencyStats.of([x for st in streams for x in st.latencies]),
        queue_waits=queue_waits,
        d2h=TransferStats.of([n for st in streams for n in st.d2h_bytes]),
        stopped=stopped,
        threads_still_running=still,
        threaded=threaded,
        people_written=sum(s.people_written for s in per_stream),
        people_drawn=sum(s.people_drawn for s in per_stream),
        streams=per_stream,
        inference_calls=len(sizes),
        mean_batch=sum(sizes) / len(sizes) if sizes else 0.0,
    )


def stopped_by(error: StageError, written: int, still: tuple[str, ...]) -> PipelineError:
    """The error of a run that one failure stopped as a whole (``fail_fast``): the user's one message."""
    out: PipelineError
    if isinstance(error.cause, DiskFullError):
        out = DiskFullError(
            f"{error.cause}; the outputs hold the {written} frames before it. Free some space and run again."
        )
    elif isinstance(error.cause, StreamLostError):
        out = StreamLostError(f"{error.message()}; the outputs hold the {written} frames before it")
    else:
        out = PipelineError(f"pipeline stopped: {error.message()}")
    out.threads_still_running = still
    return out


def every_stream_failed(streams: Sequence[Stages], result: PipelineResult) -> PipelineError:
    """The error of a run in which no stream completed (one stream that failed, or all of several);
    ``result`` rides along for a summary."""
    errors = [st.error for st in streams if st.error is not None]
    if len(streams) == 1:
        out = stopped_by(errors[0], result.frames_written, result.threads_still_running)
    else:
        details = "; ".join(f"{s.name}: {s.error}" for s in result.streams)
        kinds = {type(e.cause) for e in errors}
        cls: type[PipelineError] = PipelineError
        for special in (DiskFullError, StreamLostError):
            if kinds and all(issubclass(k, special) for k in kinds):
                cls = special
        out = cls(f"every stream failed ({details})")
        out.threads_still_running = result.threads_still_running
    out.result = result
    return out
