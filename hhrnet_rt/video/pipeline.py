"""The threaded pipeline: capture -> preprocess+inference -> decode -> draw+write, joined by bounded queues.

Why threads work here: OpenCV, PyAV, torch/ONNX Runtime and the Numba decoder all release the GIL in their
heavy parts, so the four stages overlap and throughput approaches that of the slowest stage alone.

Why it cannot deadlock: every blocking ``put``/``get`` (:mod:`hhrnet_rt.video.channels`) waits at most
``POLL_S`` and then checks the stop event; an exception in any stage sets the stop event, so every other
stage leaves its loop within one poll; the main thread only ever joins with a timeout. Sinks are closed
in ``finally``.

Example:
    >>> from hhrnet_rt import PoseEstimator                     # doctest: +SKIP
    >>> from hhrnet_rt.video import FileSource, Mp4Sink, run_pipeline  # doctest: +SKIP
    >>> src = FileSource("walk.mp4")                            # doctest: +SKIP
    >>> result = run_pipeline(src, PoseEstimator("w32_512"), [Mp4Sink("out.mp4", src.fps, rate=src.rate)])
    >>> print(result.fps, result.stages["inference"].p50_ms)   # doctest: +SKIP
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from hhrnet_rt.draw import PoseAnnotator, annotator_for
from hhrnet_rt.errors import DiskFullError, PipelineError
from hhrnet_rt.stop_signals import signals_deferred
from hhrnet_rt.video.channels import POLL_S, Channel, LatestImage
from hhrnet_rt.video.meters import LatencyStats, QueueWait, TransferStats
from hhrnet_rt.video.sinks import FrameResult
from hhrnet_rt.video.stages import STAGE_NAMES, Estimator, PostDecode, Sink, StageError, Stages

_END = object()  # end-of-stream marker, forwarded by every stage
QUEUE_NAMES = ("capture→inference", "inference→decode", "decode→output")


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

    @property
    def fps(self) -> float:
        """End-to-end throughput: frames written per wall-clock second."""
        return self.frames_written / self.wall_s if self.wall_s > 0 else 0.0


def run_pipeline(
    source: Any,
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

    Raises:
        DiskFullError: an output ran out of space; the files hold the frames written before (whole JSON
            lines, an mp4 ended as far as the disk allowed).
        PipelineError: a stage raised; the message names the stage, the frame and the cause.
    """
    annotator = (annotator or annotator_for(min_score)) if draw else None
    stages = Stages(
        source, estimator, sinks, annotator=annotator, hud=hud, on_frame=on_frame,
        min_score=min_score, max_people=max_people, post_decode=post_decode,
    )  # fmt: skip
    runner = _Runner(stages, stop_event, max_frames, display, queue_size, join_timeout_s)
    return runner.run_threaded() if threaded else runner.run_sequential()


class _Runner:
    def __init__(self, stages: Stages, stop_event, max_frames, display, queue_size, join_timeout_s) -> None:
        self.st = stages
        self.external_stop = stop_event
        self.max_frames = max_frames
        self.display = display
        self.join_timeout_s = join_timeout_s
        self.stop = threading.Event()
        self.reason: str | None = None
        self.error: StageError | None = None
        self._error_lock = threading.Lock()
        self.waits = {name: QueueWait() for name in QUEUE_NAMES}
        live = bool(getattr(stages.source, "live", False))
        self.live = live
        sizes = (1 if live else queue_size, max(1, queue_size // 2), max(1, queue_size // 2))
        self.channels = [
            Channel(n, self.stop, self.waits[name]) for n, name in zip(sizes, QUEUE_NAMES, strict=True)
        ]
        self.latest = LatestImage()
        self.t_end: float | None = None

    # -- failure and stop -------------------------------------------------------------------------------
    def _fail(self, error: StageError) -> None:
        with self._error_lock:
            if self.error is None:  # the first failure is the cause; later ones are consequences
                self.error = error
        self.stop.set()

    def _request_stop(self, reason: str) -> None:
        if self.reason is None:
            self.reason = reason
        self.stop.set()

    def _external_stop_requested(self) -> bool:
        return self.external_stop is not None and self.external_stop.is_set()

    def _reached_limit(self) -> bool:
        return self.max_frames is not None and self.st.read >= self.max_frames

    # -- threads ----------------------------------------------------------------------------------------
    def _guard(self, name: str, body: Callable[[], None]) -> Callable[[], None]:
        def target() -> None:
            try:
                body()
            except StageError as exc:
                self._fail(exc)
            except BaseException as exc:  # a bug in the runner itself: still stop everything, still report
                self._fail(StageError(name, None, exc))

        return target

    def _capture_loop(self) -> None:
        out = self.channels[0]
        while not self.stop.is_set() and not self._reached_limit():
            frame = self.st.capture()
            if frame is None:
                break
            if self.live:
                self.st.dropped += out.put_latest(frame)
            elif not out.put(frame):
                return
        out.put(_END)

    def _relay(self, inbox: Channel, outbox: Channel | None, work: Callable[[Any], Any]) -> None:
        while True:
            item = inbox.get()
            if item is None:  # stopped
                return
            if item is _END:
                if outbox is not None:
                    outbox.put(_END)
                else:
                    self.t_end = time.perf_counter()
                return
            result = work(item)
            if outbox is not None and not outbox.put(result):
                return

    def _output(self, item: Any) -> None:
        result = self.st.output(item)
        if self.display is not None:
            self.latest.set(result.image)

    def run_threaded(self) -> PipelineResult:
        c = self.channels
        bodies = {
            "capture": self._capture_loop,
            "inference": lambda: self._relay(c[0], c[1], self.st.infer),
            "decode": lambda: self._relay(c[1], c[2], self.st.decode),
            "output": lambda: self._relay(c[2], None, self._output),
        }
        threads = [
            threading.Thread(target=self._guard(name, body), name=f"hhrt-{name}", daemon=True)
            for name, body in bodies.items()
        ]
        t0 = time.perf_counter()
        try:
            for thread in threads:
                thread.start()
            self._supervise(threads)
        except KeyboardInterrupt:
            self._request_stop("interrupted")
        finally:
            self.stop.set()  # normal end: no thread is waiting any more; otherwise: make them leave
            with signals_deferred(lambda: self._request_stop("interrupted")):
                still = self._join(threads)
                self._close(still)
        return self._result(t0, still, threaded=True)

    def _supervise(self, threads: list[threading.Thread]) -> None:
        output = threads[-1]
        while output.is_alive() and not self.stop.is_set():
            output.join(POLL_S)
            if self._external_stop_requested():
                self._request_stop("stop event")
            if self.display is not None:
                image = self.latest.take()
                if not self.display.show(image):
                    self._request_stop("quit")

    def _join(self, threads: list[threading.Thread]) -> tuple[str, ...]:
        # The output thread first: it holds the sinks, and only once it has ended may they be closed. A
        # stage busy past the deadline (a slow inference call) must not use up the output thread's time.
        deadline = time.monotonic() + self.join_timeout_s
        for thread in (threads[-1], *threads[:-1]):
            thread.join(max(0.0, deadline - time.monotonic()))
        return tuple(t.name.removeprefix("hhrt-") for t in threads if t.is_alive())

    def _close(self, still_running: tuple[str, ...]) -> None:
        errors: list[StageError] = []
        if "output" not in still_running:  # never close a sink another thread may be writing to
            for sink in self.st.sinks:
                try:
                    sink.close()
                except Exception as exc:
                    errors.append(StageError("write", None, exc))
        if "capture" not in still_running:
            try:
                self.st.source.close()
            except Exception as exc:
                errors.append(StageError("capture", None, exc))
        if self.display is not None:
            self.display.close()
        for error in errors:
            self._fail(error)

    # -- sequential reference ---------------------------------------------------------------------------
    def run_sequential(self) -> PipelineResult:
        t0 = time.perf_counter()
        try:
            while not self._reached_limit():
                if self._external_stop_requested():
                    self._request_stop("stop event")
                    break
                frame = self.st.capture()
                if frame is None:
                    break
                self._output(self.st.decode(self.st.infer(frame)))
                if self.display is not None and not self.display.show(self.latest.take()):
                    self._request_stop("quit")
                    break
            self.t_end = time.perf_counter()
        except StageError as exc:
            self._fail(exc)
        except KeyboardInterrupt:
            self._request_stop("interrupted")
        finally:
            with signals_deferred(lambda: self._request_stop("interrupted")):
                self._close(())
        return self._result(t0, (), threaded=False)

    def _result(self, t0: float, still: tuple[str, ...], *, threaded: bool) -> PipelineResult:
        st = self.st
        if self.error is not None:
            error: PipelineError
            if isinstance(self.error.cause, DiskFullError):
                error = DiskFullError(
                    f"{self.error.cause}; the outputs hold the {st.written} frames before it. Free some "
                    "space and run again."
                )
            else:
                error = PipelineError(f"pipeline stopped: {self.error.message()}")
            error.threads_still_running = still
            raise error from self.error.cause
        stats = st.clock.stats()
        return PipelineResult(
            frames_read=st.read,
            frames_dropped=st.dropped,
            frames_processed=st.processed,
            frames_written=st.written,
            decode_failures=int(getattr(st.source, "decode_failures", 0)),
            wall_s=(self.t_end or time.perf_counter()) - t0,
            stages={name: stats.get(name, LatencyStats.of([])) for name in STAGE_NAMES},
            latency=LatencyStats.of(st.latencies),
            queue_waits=self.waits if threaded else {},
            d2h=TransferStats.of(st.d2h_bytes),
            stopped=self.reason,
            threads_still_running=still,
            threaded=threaded,
            people_written=st.people_written,
            people_drawn=st.people_drawn,
        )
