"""What a pipeline run did and how fast: for the whole run and for each stream."""

from __future__ import annotations

from dataclasses import dataclass, field

from hhrnet_rt.video.meters import LatencyStats, QueueWait, TransferStats


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
