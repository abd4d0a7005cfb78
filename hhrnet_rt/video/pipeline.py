"""The threaded pipeline: capture (one thread per stream) -> batching + inference -> decode -> draw+write.

Why threads work here: OpenCV, PyAV, torch/ONNX Runtime and the Numba decoder all release the GIL in their
heavy parts, so the stages overlap and throughput approaches that of the slowest stage alone. Several
streams share one estimator: the batching stage gives it up to ``batch`` frames per call (frames of
different streams, or consecutive frames of one file), which is what keeps a GPU busy.

The threads and queues are built from the declared layout :data:`hhrnet_rt.video.stages.LAYOUT`
(:mod:`hhrnet_rt.video.runner`); why the run cannot deadlock is explained there.

Example:
    >>> from hhrnet_rt import PoseEstimator                     # doctest: +SKIP
    >>> from hhrnet_rt.video import FileSource, Mp4Sink, Stream, run_pipeline, run_streams  # doctest: +SKIP
    >>> src = FileSource("walk.mp4")                            # doctest: +SKIP
    >>> result = run_pipeline(src, PoseEstimator("w32_512"), [Mp4Sink("out.mp4", src.fps, rate=src.rate)])
    >>> print(result.fps, result.stages["inference"].p50_ms)   # doctest: +SKIP
    >>> a, b = FileSource("a.mp4"), FileSource("b.mp4")         # doctest: +SKIP
    >>> result = run_streams([Stream(a, [...]), Stream(b, [...])], estimator, batch=8)  # doctest: +SKIP
    >>> [(s.name, s.fps) for s in result.streams]               # doctest: +SKIP
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from hhrnet_rt.draw import PoseAnnotator, annotator_for
from hhrnet_rt.video.meters import StageClock
from hhrnet_rt.video.results import PipelineResult, StreamResult
from hhrnet_rt.video.runner import Runner
from hhrnet_rt.video.sinks import FrameResult
from hhrnet_rt.video.stages import QUEUE_NAMES, Estimator, PostDecode, Sink, Source, Stages

__all__ = ["QUEUE_NAMES", "PipelineResult", "Stream", "StreamResult", "run_pipeline", "run_streams"]

#: How long the batching stage waits for a batch to fill once it has a frame (the latency it may add).
DEFAULT_MAX_WAIT_MS = 10.0


@dataclass
class Stream:
    """One input of :func:`run_streams` with its own outputs.

    Attributes:
        source: a :mod:`hhrnet_rt.video.sources` source; ``live`` decides its policy (newest frame wins
            and drops are counted, or lossless and in order).
        sinks: where this stream's frames go, in this stream's frame order.
        name: how the summary and messages call it (default: the source's ``description``).
        on_frame: called in the output thread after each of this stream's frames is written.
        post_decode: ``(poses, frame) -> poses`` on this stream's frames in order (a per-stream tracker).
    """

    source: Source
    sinks: Sequence[Sink] = ()
    name: str | None = None
    on_frame: Callable[[FrameResult], None] | None = None
    post_decode: PostDecode | None = None


def run_pipeline(
    source: Source,
    estimator: Estimator,
    sinks: Sequence[Sink] = (),
    *,
    annotator: PoseAnnotator | None = None,
    draw: bool = True,
    hud: bool = False,
    stop_event: threading.Event | None = None,
    max_frames: int | None = None,
    on_frame: Callable[[FrameResult], None] | None = None,
    display: Any = None,
    queue_size: int = 4,
    threaded: bool = True,
    join_timeout_s: float = 30.0,
    min_score: float | None = None,
    max_people: int | None = None,
    post_decode: PostDecode | None = None,
    batch: int = 1,
    max_wait_ms: float = DEFAULT_MAX_WAIT_MS,
    decode_threads: int = 1,
    monitor: Any = None,
) -> PipelineResult:
    """Run ``source`` through ``estimator`` into ``sinks``; returns timings and counts.

    File sources (``source.live`` false) lose nothing and keep order; live sources keep only the newest
    frame in front of inference and count what they drop. The source and every sink are closed when the
    run ends, however it ends.

    Args:
        source: a :mod:`hhrnet_rt.video.sources` source (``read``, ``close``, ``live``, ``decode_failures``).
        estimator: anything with ``prepare``/``infer``/``decode`` (a :class:`hhrnet_rt.PoseEstimator`).
        sinks: written in frame order from the output thread (e.g. ``Mp4Sink``, ``JsonLinesSink``).
        annotator: draws the people; when ``None`` and ``draw`` is true, :func:`~hhrnet_rt.draw.annotator_for`
            ``(min_score)`` (draws every chosen person when ``min_score`` is given).
        draw: draw the people onto the frames at all.
        hud: draw FPS, latency, people and drops in the top-left corner.
        stop_event: set it (from any thread) to end the run early; the frames written so far stay valid.
        max_frames: read at most this many frames.
        on_frame: called in the output thread after each frame is written (keep it quick); an exception
            in it stops the run like any stage error.
        display: an object with ``show(image) -> bool`` (false = user quit) and ``close()``, driven from
            the calling thread (GUI toolkits want the main thread), e.g. ``video.display.Window``.
        queue_size: capacity of each queue between stages (live sources: 1 in front of inference).
        threaded: ``False`` runs the same stages one after another in this thread (a reference for
            benchmarks).
        join_timeout_s: how long to wait for a stage to finish its current item after a stop.
        min_score, max_people: which people go on (:meth:`Poses.select`), chosen once after decode, so
            what is drawn, counted and written is the same set (``None``: no limit).
        post_decode: called with each frame's chosen people and the frame, in frame order, in the decode
            stage; returns the people to draw and write (e.g. :class:`hhrnet_rt.track.hook.TemporalHook`).
        batch, max_wait_ms, decode_threads, monitor: see :func:`run_streams` (batch > 1: consecutive
            frames in one inference call).

    Raises:
        DiskFullError: an output ran out of space; the files hold the frames written before (whole JSON
            lines, an mp4 ended as far as the disk allowed).
        StreamLostError: a live source broke off and did not come back within its reconnect policy.
        PipelineError: a stage raised; the message names the stage, the frame and the cause. The frames
            before the failure are in the outputs.
    """
    stream = Stream(source, sinks, on_frame=on_frame, post_decode=post_decode)
    return run_streams(
        [stream], estimator, annotator=annotator, draw=draw, hud=hud, stop_event=stop_event,
        max_frames=max_frames, display=display, queue_size=queue_size, threaded=threaded,
        join_timeout_s=join_timeout_s, min_score=min_score, max_people=max_people, batch=batch,
        max_wait_ms=max_wait_ms, decode_threads=decode_threads, monitor=monitor,
    )  # fmt: skip


def run_streams(
    streams: Sequence[Stream],
    estimator: Estimator,
    *,
    batch: int = 1,
    max_wait_ms: float = DEFAULT_MAX_WAIT_MS,
    annotator: PoseAnnotator | None = None,
    draw: bool = True,
    hud: bool = False,
    stop_event: threading.Event | None = None,
    max_frames: int | None = None,
    display: Any = None,
    queue_size: int = 4,
    threaded: bool = True,
    join_timeout_s: float = 30.0,
    min_score: float | None = None,
    max_people: int | None = None,
    decode_threads: int = 1,
    fail_fast: bool = False,
    monitor: Any = None,
) -> PipelineResult:
    """Run several sources through one estimator, each into its own sinks; returns per-stream and total
    counts and timings (``result.streams``).

    One capture thread per stream; a batching stage takes up to ``batch`` frames (round-robin across the
    streams, or consecutive frames of one) and makes ONE ``estimator.infer_batch`` call for them; decode,
    drawing and writing then follow each stream's own order. File streams lose nothing; live streams keep
    their newest frame and count their own drops. A stream that fails (its source, or one of its frames
    in any stage) ends alone: its outputs keep the frames before the failure, the other streams run on,
    and ``result.failed`` lists it. A stop event, q in the window or Ctrl-C stops every stream; every
    source and sink is closed however the run ends.

    Args:
        streams: the inputs and their outputs (:class:`Stream`).
        estimator: as for :func:`run_pipeline`; ``infer_batch`` is used when it has one.
        batch: the most frames per inference call (1: one call per frame, as a single stream always did).
        max_wait_ms: once the batching stage holds a frame, how long it waits for the batch to fill; the
            latency batching may add to a live stream.
        max_frames: read at most this many frames from each stream.
        decode_threads: threads that group the frames of one batch side by side (the decoder releases the
            GIL); 1 decodes in the decode thread alone. For many streams on a fast GPU, where one thread
            grouping every frame can become the slowest stage. Order and post_decode are unaffected.
        display: shows the newest picture; with several streams, the newest of each tiled into one.
        fail_fast: the first failure of any stream stops every stream and is raised (the behaviour
            before streams were isolated).
        monitor: something with ``attach(runner)``, called as the run starts: a live view of the run's
            counters, e.g. :class:`hhrnet_rt.video.monitor.RunMonitor` (Prometheus metrics, readiness).
        annotator, draw, hud, stop_event, queue_size, threaded, join_timeout_s, min_score, max_people:
            as for :func:`run_pipeline`, for every stream.

    Raises:
        DiskFullError, StreamLostError, PipelineError: as for :func:`run_pipeline`, when no stream
            completed (every stream failed, or ``fail_fast`` and one failed); the message names the
            streams, and ``error.result`` holds the run's result.
        ValueError: no streams, or ``batch`` < 1 or ``max_wait_ms`` < 0.
    """

    if not streams:
        raise ValueError("run_streams needs at least one stream")
    if batch < 1 or max_wait_ms < 0 or decode_threads < 1:
        raise ValueError(
            f"batch and decode_threads must be >= 1 and max_wait_ms >= 0, got {batch}, {decode_threads} "
            f"and {max_wait_ms}"
        )
    annotator = (annotator or annotator_for(min_score)) if draw else None
    clock = StageClock()
    several = len(streams) > 1
    stages = [
        Stages(
            s.source,
            estimator,
            s.sinks,
            annotator=annotator,
            hud=hud,
            on_frame=s.on_frame,
            min_score=min_score,
            max_people=max_people,
            post_decode=s.post_decode,
            clock=clock,
            name=(s.name or getattr(s.source, "description", f"stream {i}")) if several else s.name,
        )  # fmt: skip
        for i, s in enumerate(streams)
    ]
    runner = Runner(
        stages, estimator, clock, batch=batch, max_wait_s=max_wait_ms / 1e3, stop_event=stop_event,
        max_frames=max_frames, display=display, queue_size=queue_size, join_timeout_s=join_timeout_s,
        decode_threads=decode_threads, fail_fast=fail_fast, monitor=monitor,
    )  # fmt: skip
    return runner.run_threaded() if threaded else runner.run_sequential()
