"""Streaming: frame sources, sinks, the threaded capture → inference → decode → overlay pipeline, meters.

Example:
    >>> from hhrnet_rt import PoseEstimator                               # doctest: +SKIP
    >>> from hhrnet_rt.video import FileSource, JsonLinesSink, run_pipeline  # doctest: +SKIP
    >>> result = run_pipeline(FileSource("walk.mp4"), PoseEstimator("w32_512"), [JsonLinesSink("walk.jsonl")])
    >>> result.fps, result.frames_written                                # doctest: +SKIP
"""

from __future__ import annotations

from hhrnet_rt.video.live import LiveSource
from hhrnet_rt.video.meters import LatencyStats, QueueWait
from hhrnet_rt.video.pipeline import (
    QUEUE_NAMES,
    PipelineResult,
    Stream,
    StreamResult,
    run_pipeline,
    run_streams,
)
from hhrnet_rt.video.reconnect import Outage, ReconnectPolicy
from hhrnet_rt.video.sinks import CocoSink, FrameResult, JsonLinesSink, Mp4Sink, coco_records
from hhrnet_rt.video.sources import ArraySource, CameraSource, FileSource, Frame, open_source
from hhrnet_rt.video.stages import STAGE_NAMES

__all__ = [
    "QUEUE_NAMES",
    "STAGE_NAMES",
    "ArraySource",
    "CameraSource",
    "CocoSink",
    "FileSource",
    "Frame",
    "FrameResult",
    "JsonLinesSink",
    "LatencyStats",
    "LiveSource",
    "Mp4Sink",
    "Outage",
    "PipelineResult",
    "QueueWait",
    "ReconnectPolicy",
    "Stream",
    "StreamResult",
    "coco_records",
    "open_source",
    "run_pipeline",
    "run_streams",
]
