"""The work of each pipeline stage on one item, shared by the threaded and the sequential runner.

Stages and what they time (names used in :class:`~hhrnet_rt.video.pipeline.PipelineResult`):
``capture`` (source.read), ``preprocess`` (estimator.prepare), ``inference`` (estimator.infer),
``decode`` (estimator.decode), ``draw`` (annotator + HUD), ``write`` (every sink, then ``on_frame``).
The decode stage also records the bytes each frame copied device -> host (``Maps.d2h_bytes``).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any, Protocol

from hhrnet_rt.draw import PoseAnnotator, draw_hud, hud_ids_line
from hhrnet_rt.poses import Poses
from hhrnet_rt.video.meters import RollingRate, StageClock
from hhrnet_rt.video.sinks import FrameResult
from hhrnet_rt.video.sources import Frame

#: A per-stream step on each frame's people after decode (track IDs, smoothing); called in frame order.
PostDecode = Callable[[Poses, Frame], Poses]

STAGE_NAMES = ("capture", "preprocess", "inference", "decode", "draw", "write")


class Estimator(Protocol):
    """The stage split of :class:`hhrnet_rt.estimator.PoseEstimator` that the pipeline calls."""

    def prepare(self, image_bgr: Any) -> Any: ...
    def infer(self, prepared: Any) -> Any: ...
    def decode(self, maps: Any, prepared: Any) -> Poses: ...


class Sink(Protocol):
    def write(self, result: FrameResult) -> None: ...
    def close(self) -> None: ...


class StageError(Exception):
    """A stage raised; carries which stage and which frame, for the one message the user sees."""

    def __init__(self, stage: str, frame_index: int | None, cause: BaseException) -> None:
        super().__init__(stage, frame_index, cause)
        self.stage, self.frame_index, self.cause = stage, frame_index, cause

    def message(self) -> str:
        where = f" on frame {self.frame_index}" if self.frame_index is not None else ""
        detail = str(self.cause) or type(self.cause).__name__
        return f"the {self.stage} stage failed{where}: {type(self.cause).__name__}: {detail}"


class Stages:
    """Per-item stage functions plus the counters and clocks they fill.

    Each counter is incremented by exactly one thread (read/dropped: capture; processed: decode;
    written: output), so no locks are needed.
    """

    def __init__(
        self,
        source: Any,
        estimator: Estimator,
        sinks: Sequence[Sink],
        *,
        annotator: PoseAnnotator | None,
        hud: bool,
        on_frame: Callable[[FrameResult], None] | None,
        min_score: float | None = None,
        max_people: int | None = None,
        post_decode: PostDecode | None = None,
    ) -> None:
        self.source, self.estimator, self.sinks = source, estimator, tuple(sinks)
        self.post_decode = post_decode  # per stream, in frame order (e.g. track IDs, smoothing)
        self.annotator, self.hud, self.on_frame = annotator, hud, on_frame
        self.clock = StageClock()
        self.latencies: list[float] = []
        self.d2h_bytes: list[int] = []  # per frame, when the estimator's maps report it (decode thread)
        self.rolling = RollingRate()
        self.min_score, self.max_people = min_score, max_people
        self.read = self.dropped = self.processed = self.written = 0
        self.people_written = self.people_drawn = 0  # output thread only

    def _timed(self, stage: str, frame_index: int | None, fn: Callable[..., Any], *args: Any) -> Any:
        t0 = time.perf_counter()
        try:
            out = fn(*args)
        except Exception as exc:
            raise StageError(stage, frame_index, exc) from exc
        self.clock.add(stage, time.perf_counter() - t0)
        return out

    def capture(self) -> Frame | None:
        t0 = time.perf_counter()
        try:
            frame = self.source.read()
        except Exception as exc:
            raise StageError("capture", self.read, exc) from exc
        if frame is not None:  # the end-of-stream read is not a frame: keep it out of the statistics
            self.clock.add("capture", time.perf_counter() - t0)
            self.read += 1
        return frame

    def infer(self, frame: Frame) -> tuple[Frame, Any, Any]:
        prepared = self._timed("preprocess", frame.index, self.estimator.prepare, frame.image)
        maps = self._timed("inference", frame.index, self.estimator.infer, prepared)
        return frame, prepared, maps

    def decode(self, item: tuple[Frame, Any, Any]) -> tuple[Frame, Poses]:
        frame, prepared, maps = item
        poses = self._timed("decode", frame.index, self._decoded, maps, prepared, frame)
        nbytes = getattr(maps, "d2h_bytes", None)  # complete after decode (the device decode adds to it)
        if nbytes is not None:
            self.d2h_bytes.append(int(nbytes))
        self.processed += 1
        return frame, poses

    def _decoded(self, maps: Any, prepared: Any, frame: Frame) -> Poses:
        poses = self.estimator.decode(maps, prepared)
        poses = poses.select(self.min_score, self.max_people)  # the one choice of who is drawn and written
        if self.post_decode is not None:  # after the choice: IDs go to exactly the people written
            poses = self.post_decode(poses, frame)
        return poses

    def _draw(self, frame: Frame, poses: Poses) -> FrameResult:
        image = frame.image
        drawn = len(poses)
        if self.annotator is not None:
            image = self.annotator.annotate(image, poses)
            drawn = int(self.annotator.drawn(poses).sum())
        self.people_drawn += drawn
        latency = time.perf_counter() - frame.t_capture
        if self.hud:  # the people on the picture, not the fragments it hides
            lines = [f"{self.rolling.fps:5.1f} FPS  {1e3 * latency:4.0f} ms", f"people {drawn}"]
            if poses.ids is not None:
                lines.append(hud_ids_line(poses))
            if self.dropped:
                lines.append(f"dropped {self.dropped}")
            # Text size follows the frame width so the box covers about the same share of any frame.
            image = draw_hud(image, lines, scale=min(1.0, max(0.3, image.shape[1] / 1280)))
        return FrameResult(frame, poses, image, latency)

    def _write(self, result: FrameResult) -> None:
        for sink in self.sinks:
            sink.write(result)
        if self.on_frame is not None:
            self.on_frame(result)

    def output(self, item: tuple[Frame, Poses]) -> FrameResult:
        frame, poses = item
        result = self._timed("draw", frame.index, self._draw, frame, poses)
        self._timed("write", frame.index, self._write, result)
        self.people_written += len(poses)
        self.latencies.append(result.latency_s)
        self.rolling.tick(result.latency_s)
        self.written += 1
        return result
