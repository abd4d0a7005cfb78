"""The runners behind :func:`~hhrnet_rt.video.pipeline.run_streams`: threads built from the declared
:data:`~hhrnet_rt.video.stages.LAYOUT`, and the sequential reference loop.

Threads: one capture thread per stream, feeding its stream's inbox (:mod:`hhrnet_rt.video.batching`);
then one thread per further stage of the layout (batching + inference, decode, output), joined by bounded
:class:`~hhrnet_rt.video.channels.Channel` s that carry whole batches. Decode and output are single
threads, so each stream's frames leave in the order they were captured.

Isolation (:mod:`hhrnet_rt.video.flow`): a stream that fails ends alone, after the frames before its
failure were written; the others run on. With ``fail_fast`` (and for a fault of the runner itself) the
first failure stops every stream, as before isolation existed.

Why it cannot deadlock: every blocking wait lasts at most ``POLL_S`` and then checks the stop event; a
stop (or a failure that stops everything) sets it, so every thread leaves within one poll; a live source
waiting to reconnect is interrupted; the main thread only joins with a timeout. Sinks and sources are
closed in ``finally``, by the main thread, once the threads that use them have ended (a stream that ended
during the run had its sinks closed by the output thread then).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from typing import Any

from hhrnet_rt.core.signals import signals_deferred
from hhrnet_rt.runtime.backends.stream import use_own_stream
from hhrnet_rt.video.batching import BatchInference, StreamInbox
from hhrnet_rt.video.channels import POLL_S, Channel, LatestImage
from hhrnet_rt.video.display import tile
from hhrnet_rt.video.flow import Flow, StreamEnd
from hhrnet_rt.video.meters import QueueWait, StageClock
from hhrnet_rt.video.results import PipelineResult, every_stream_failed, stopped_by, summarise
from hhrnet_rt.video.stages import LAYOUT, QUEUE_NAMES, StageError, Stages

_END = object()  # end-of-stream marker, forwarded by every stage after the batching stage


class Runner:
    def __init__(
        self, streams: Sequence[Stages], estimator: Any, clock: StageClock, *, batch: int, max_wait_s: float,
        stop_event: threading.Event | None, max_frames: int | None, display: Any, queue_size: int,
        join_timeout_s: float, decode_threads: int = 1, fail_fast: bool = False, monitor: Any = None,
    ) -> None:  # fmt: skip
        self.streams = tuple(streams)
        self.clock = clock
        self.batch, self.max_wait_s = batch, max_wait_s
        self.external_stop, self.max_frames = stop_event, max_frames
        self.display, self.join_timeout_s = display, join_timeout_s
        self.fail_fast, self.monitor = fail_fast, monitor
        self.stop = threading.Event()
        self.reason: str | None = None
        self.error: StageError | None = None
        self._error_lock = threading.Lock()
        self.live = [bool(getattr(st.source, "live", False)) for st in self.streams]
        self.waits = {name: QueueWait() for name in QUEUE_NAMES}
        first, *rest = LAYOUT[1:]
        capacities = [first.capacity(queue_size, batch, live) for live in self.live]
        self.inbox = StreamInbox(capacities, self.stop, self.waits[QUEUE_NAMES[0]])
        self.channels = [
            Channel(spec.capacity(queue_size, batch, any(self.live)), self.stop, self.waits[name])
            for spec, name in zip(rest, QUEUE_NAMES[1:], strict=True)
        ]
        self.infer = BatchInference(estimator, clock, [st.name for st in self.streams])
        self.latest = [LatestImage() for _ in self.streams]
        # Every thread that may touch the GPU gets a CUDA stream of its own (use_own_stream says why).
        self.device = getattr(getattr(estimator, "backend", None), "device", None)
        self.decode_pool = (
            ThreadPoolExecutor(
                decode_threads,
                thread_name_prefix="hhrt-decode-pool",
                initializer=use_own_stream,
                initargs=(self.device,),
            )  # fmt: skip
            if decode_threads > 1
            else None
        )
        self.flow = Flow(self.streams, self.infer, decode_pool=self.decode_pool,
                         latest=self.latest if display is not None else None, fail_fast=fail_fast)  # fmt: skip
        self.workers: dict[str, Callable[[Any], Any]] = {
            "inference": self.flow.inference,
            "decode": self.flow.decode,
            "output": self.flow.output,
        }
        missing = {spec.name for spec in LAYOUT[1:]} - set(self.workers)
        assert not missing, f"stages in LAYOUT without a worker: {missing}"
        self.t0 = time.perf_counter()
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

    def _reached_limit(self, st: Stages) -> bool:
        return self.max_frames is not None and st.read >= self.max_frames

    def _capture(self, i: int) -> Any:
        """The stream's next frame, ``None`` at its end, or its :class:`StreamEnd` when it failed."""
        st = self.streams[i]
        if st.cancelled or self._reached_limit(st):
            return None
        try:
            return st.capture()
        except StageError as exc:
            if self.fail_fast:
                raise
            return StreamEnd(i, exc)

    # -- threads ----------------------------------------------------------------------------------------
    def _guard(self, name: str, body: Callable[[], None]) -> Callable[[], None]:
        def target() -> None:
            try:
                use_own_stream(self.device)
                body()
            except StageError as exc:
                self._fail(exc)
            except BaseException as exc:  # a bug in the runner itself: still stop everything, still report
                self._fail(StageError(name, None, exc))

        return target

    def _capture_loop(self, i: int) -> None:
        while not self.stop.is_set():
            frame = self._capture(i)
            if frame is None or isinstance(frame, StreamEnd):
                self.inbox.end(i, frame or StreamEnd(i))
                return
            if self.live[i]:
                self.streams[i].dropped += self.inbox.put_latest(i, frame)
            elif not self.inbox.put(i, frame):
                return

    def _batch_loop(self, outbox: Channel) -> None:
        while True:
            items = self.inbox.take(self.batch, self.max_wait_s)
            if items is None:  # stopped
                return
            if not items:  # every stream ended
                outbox.put(_END)
                return
            if not outbox.put(self.flow.inference(items)):
                return

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
            if not item:  # every frame of the batch belonged to streams cut before
                continue
            result = work(item)
            if outbox is not None and not outbox.put(result):
                return

    def _capture_name(self, i: int) -> str:
        return "capture" if len(self.streams) == 1 else f"capture-{i}"

    def _threads(self) -> list[threading.Thread]:
        """One capture thread per stream, then one thread per further stage of LAYOUT (output last)."""
        bodies: list[tuple[str, Callable[[], None]]] = [
            (self._capture_name(i), partial(self._capture_loop, i)) for i in range(len(self.streams))
        ]
        first = LAYOUT[1]
        bodies.append((first.name, partial(self._batch_loop, self.channels[0])))
        outboxes: list[Channel | None] = [*self.channels[1:], None]  # the last stage passes nothing on
        for spec, inbox, outbox in zip(LAYOUT[2:], self.channels, outboxes, strict=True):
            bodies.append((spec.name, partial(self._relay, inbox, outbox, self.workers[spec.name])))
        return [
            threading.Thread(target=self._guard(name, body), name=f"hhrt-{name}", daemon=True)
            for name, body in bodies
        ]

    def run_threaded(self) -> PipelineResult:
        threads = self._threads()
        if self.monitor is not None:
            self.monitor.attach(self)
        try:
            for thread in threads:
                thread.start()
            self._supervise(threads[-1])
        except KeyboardInterrupt:
            self._request_stop("interrupted")
        finally:
            self.stop.set()  # normal end: no thread is waiting any more; otherwise: make them leave
            for st in self.streams:
                st.cancel()  # a source waiting to reconnect stops waiting
            with signals_deferred(lambda: self._request_stop("interrupted")):
                still = self._join(threads)
                self._close(still)
        return self._result(still, threaded=True)

    def _supervise(self, output: threading.Thread) -> None:
        shown: list[Any] = [None] * len(self.streams)
        while output.is_alive() and not self.stop.is_set():
            output.join(POLL_S)
            if self._external_stop_requested():
                self._request_stop("stop event")
            if self.display is not None and not self.display.show(self._picture(shown)):
                self._request_stop("quit")

    def _picture(self, shown: list[Any]) -> Any:
        """The newest image of one stream, or of several tiled into one (``None``: nothing new)."""
        fresh = [latest.take() for latest in self.latest]
        if len(fresh) == 1:
            return fresh[0]
        if all(image is None for image in fresh):
            return None

        for i, image in enumerate(fresh):
            if image is not None:
                shown[i] = image
        return tile(shown)

    def _join(self, threads: list[threading.Thread]) -> tuple[str, ...]:
        # The output thread first: it holds the sinks, and only once it has ended may they be closed. A
        # stage busy past the deadline (a slow inference call) must not use up the output thread's time.
        deadline = time.monotonic() + self.join_timeout_s
        for thread in (threads[-1], *threads[:-1]):
            thread.join(max(0.0, deadline - time.monotonic()))
        return tuple(t.name.removeprefix("hhrt-") for t in threads if t.is_alive())

    def _close(self, still_running: tuple[str, ...]) -> None:
        """Finish the streams the run did not finish (stopped early) and close every source."""
        for i, st in enumerate(self.streams):
            if "output" not in still_running:  # never close a sink another thread may be writing to
                st.finish(None, stopped=True)
            if self._capture_name(i) not in still_running:
                try:
                    st.source.close()
                except Exception as exc:
                    if st.error is None:
                        st.error, st.state = StageError("capture", None, exc, st.name), "failed"
        if self.display is not None:
            self.display.close()
        if self.decode_pool is not None:  # its workers finish the frame they hold and end
            self.decode_pool.shutdown(wait=False, cancel_futures=True)

    # -- sequential reference ---------------------------------------------------------------------------
    def _gather(self, active: list[int]) -> list[tuple[int, Any]]:
        """Up to ``batch`` frames, one per active stream per turn (as the batching stage takes them); a
        stream that ends gives its :class:`StreamEnd` and leaves ``active``."""
        items: list[tuple[int, Any]] = []
        while len(items) < self.batch and active:
            for i in list(active):
                if len(items) >= self.batch:
                    break
                frame = self._capture(i)
                if frame is None or isinstance(frame, StreamEnd):
                    active.remove(i)
                    items.append((i, frame or StreamEnd(i)))
                else:
                    items.append((i, frame))
        return items

    def run_sequential(self) -> PipelineResult:
        active = list(range(len(self.streams)))
        shown: list[Any] = [None] * len(self.streams)
        if self.monitor is not None:
            self.monitor.attach(self)
        try:
            while not self.flow.finished:
                if self._external_stop_requested():
                    self._request_stop("stop event")
                    break
                items = self._gather(active)
                self.flow.output(self.flow.decode(self.flow.inference(items)))
                if self.display is not None and not self.display.show(self._picture(shown)):
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
        return self._result((), threaded=False)

    # -- the result -------------------------------------------------------------------------------------
    def _result(self, still: tuple[str, ...], *, threaded: bool) -> PipelineResult:
        if not still:  # the inference GPU times still pending (the last batch's events): the run is over
            self.infer.device_timer.collect(wait=True)
        if self.error is not None:  # --fail-fast, or a fault of the runner itself: everything stopped
            raise stopped_by(self.error, sum(st.written for st in self.streams), still) from self.error.cause
        t_end = self.t_end or time.perf_counter()
        sizes = self.infer.sizes
        result = summarise(
            self.streams, self.clock, t0=self.t0, t_end=t_end, sizes=sizes, stopped=self.reason,
            queue_waits=self.waits if threaded else {}, still=still, threaded=threaded,
        )  # fmt: skip
        if all(s.state == "failed" for s in result.streams):  # nothing completed: the run failed
            raise every_stream_failed(self.streams, result)
        return result
