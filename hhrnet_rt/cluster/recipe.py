"""What a Ray worker builds one video's run from: :class:`VideoRecipe`, plain values that pickle.

``hhrt video --ray`` makes the recipe from its options (:mod:`hhrnet_rt.cli.ray_video`): the estimator's
:class:`~hhrnet_rt.runtime.config.EstimatorConfig` (resolved on the worker: its own GPU, its own backend
choice), what is kept of each frame, the ``--track`` / ``--smooth`` settings and how messages name
options. The worker unpickles it by importing this module, never the CLI: everything a worker calls lives
here or below (:func:`open_sinks` is also what a local ``hhrt video`` opens, so the files are the same).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hhrnet_rt.core import errors
from hhrnet_rt.draw import PoseAnnotator, PoseStyle, annotator_for
from hhrnet_rt.runtime.config import EstimatorConfig
from hhrnet_rt.runtime.estimator import PoseEstimator
from hhrnet_rt.track.hook import TemporalHook, TemporalSettings
from hhrnet_rt.video import CocoSink, JsonLinesSink, Mp4Sink
from hhrnet_rt.video.formats import format_sink
from hhrnet_rt.video.segments import segmented


@dataclass(frozen=True)
class FlagStyle:
    """Library arguments named as command-line flags in messages: ``--backend onnxruntime``, ``--no-flip``.

    A style for :func:`hhrnet_rt.core.errors.option_style` that pickles, so a Ray worker's messages name
    the flags the user typed (``hhrnet_rt.cli.app.flag_for`` is one).

    Attributes:
        renames: ``(argument, flag name)`` pairs for arguments whose flag is not the argument's name with
            "-" for "_" (``("onnx_threads", "threads")``).
    """

    renames: tuple[tuple[str, str], ...] = ()

    def __call__(self, name: str, value: object = errors.NOT_GIVEN) -> str:
        # A formatter, not a message: the prefix is a name, so no flag is spelled out below the CLI.
        word = dict(self.renames).get(name, name).replace("_", "-")
        if value is errors.NOT_GIVEN or value is True:
            return f"{_PREFIX}{word}"
        if value is False:
            return f"{_PREFIX}no-{word}"
        return f"{_PREFIX}{word} {value}"


_PREFIX = "--"  # of a long option


@dataclass(frozen=True)
class VideoRecipe:
    """How a worker builds what one video needs (see the module docstring).

    Attributes:
        estimator: the estimator's configuration; local paths in it must be absolute (workers run
            elsewhere) and weights a name or a path (a state dict would travel with every task).
        min_score, max_people, max_frames: as :func:`hhrnet_rt.video.run_pipeline` takes them.
        over_time: ``--track`` / ``--smooth``; each video gets a fresh hook.
        style: how people are drawn (``--line-width``, ``--labels``, ``--boxes``, ``--show-below``).
        option_style: how messages name options while a task runs (``None``: as library arguments).
    """

    estimator: EstimatorConfig
    min_score: float | None = None
    max_people: int | None = None
    max_frames: int | None = None
    over_time: TemporalSettings = field(default_factory=TemporalSettings)
    option_style: Callable[[str, object], str] | None = None
    style: PoseStyle = field(default_factory=PoseStyle)

    def annotator(self) -> PoseAnnotator:
        return annotator_for(self.min_score, self.style)  # as a local run draws

    def build_estimator(self) -> PoseEstimator:
        return PoseEstimator.from_config(self.estimator)

    def post_decode(self) -> TemporalHook | None:
        return self.over_time.hook()  # a fresh tracker per video, as a local run makes per input

    def messages(self) -> contextlib.AbstractContextManager[None]:
        if self.option_style is None:
            return contextlib.nullcontext()
        return errors.option_style(self.option_style)

    def sinks(self, source: Any, video: Path | None, json: Path | None, coco: Path | None,
              warn: Callable[[str], None], formats: dict[str, Path] | None = None,
              run_header: dict[str, Any] | None = None) -> list[Any]:  # fmt: skip
        # The worker writes under temporary names no other file has: nothing to overwrite.
        return open_sinks(video, json, coco, source, live=False, overwrite=False, warn=warn, formats=formats,
                          run_header=run_header)  # fmt: skip


def open_sinks(
    out: Path | None, json_out: Path | None, coco: Path | None, source: Any, *, live: bool, overwrite: bool,
    warn: Callable[[str], None], segment_s: float | None = None, formats: dict[str, Path] | None = None,
    run_header: dict[str, Any] | None = None,
) -> list[Any]:  # fmt: skip
    """The sinks of one stream (none of them left open if one fails to open); ``warn`` gets what the
    user should know (an mp4 written without PyAV); ``segment_s``: the mp4 in files of that many seconds
    (:mod:`hhrnet_rt.video.segments`); ``formats``: ``--format`` name -> its output, each a writer beside
    the JSON lines fed the same records; ``run_header``: what the run adds to their header
    (:func:`hhrnet_rt.video.records.run_header`)."""

    sinks: list[Any] = []
    try:
        if out is not None:
            # Files too: their frames' presentation times (variable frame rate stays as it was).
            time_base = None if live else getattr(source, "time_base", None)  # a live source: capture times

            def open_mp4(path: Path) -> Mp4Sink:
                return Mp4Sink(path, source.fps, rate=source.rate, timestamps="capture", time_base=time_base,
                               overwrite=overwrite)  # fmt: skip

            mp4 = segmented(out, segment_s, open_mp4)
            if mp4.warning:
                warn(mp4.warning)
            sinks.append(mp4)
        if json_out is not None:
            sinks.append(JsonLinesSink(json_out, overwrite=overwrite, source=source, run_header=run_header))
        if coco is not None:
            sinks.append(CocoSink(coco, overwrite=overwrite))
        for name, path in (formats or {}).items():
            sinks.append(format_sink(name, path, source, overwrite=overwrite, run_header=run_header))
    except BaseException:
        for sink in sinks:  # nothing was written: remove what these sinks created, keep nothing half-made
            getattr(sink, "discard", sink.close)()
        raise
    return sinks
