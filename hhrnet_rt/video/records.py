"""The records of a stream's JSON lines (version 2 of the keypoint schema): the one place that builds
them, so a writer in another format can sit beside :class:`~hhrnet_rt.video.sinks.JsonLinesSink` and say
the same things.

A file holds, in order: one ``header`` record (what the stream is: schema, source name, frame size and
rate, keypoint names, skeleton, the model and its input size, whether people are tracked; more fields may
be added, readers ignore the ones they do not know), then
``frame`` records and ``outage`` records (a live source was away: ``start`` = timestamp of the last frame
before, ``end`` = of the first frame after, ``null`` if it never came back; no frame lies between them).
``schemas/keypoints.schema.json`` describes every record, and version 1 files (frame records without
``type``, no header).

Example:
    >>> from hhrnet_rt.video.reconnect import Outage
    >>> outage_record(Outage(start=1.2, end=4.9, reason="the stream ended", attempts=3))
    {'schema': 'hhrnet-rt/keypoints/2', 'type': 'outage', 'start': 1.2, 'end': 4.9, 'reason': 'the stream ended', 'attempts': 3}
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hhrnet_rt.core.redact import redact
from hhrnet_rt.core.skeleton import COCO_KEYPOINTS, COCO_SKELETON, CROWDPOSE_KEYPOINTS, CROWDPOSE_SKELETON

if TYPE_CHECKING:
    from hhrnet_rt.video.reconnect import Outage

#: The schema id every version 2 record carries (``hhrnet_rt.poses.KEYPOINTS_SCHEMA`` is version 1, which
#: ``hhrt image --json`` still writes).
STREAM_SCHEMA = "hhrnet-rt/keypoints/2"

_LAYOUTS = {
    len(COCO_KEYPOINTS): (COCO_KEYPOINTS, COCO_SKELETON),
    len(CROWDPOSE_KEYPOINTS): (CROWDPOSE_KEYPOINTS, CROWDPOSE_SKELETON),
}


def header_record(source: Any, first: Any = None, run: dict[str, Any] | None = None) -> dict[str, Any]:
    """What the stream is: from the source (name, rate) and, once known, its first frame (a
    :class:`~hhrnet_rt.video.sinks.FrameResult`: size, keypoint names and skeleton); credentials in the name
    redacted. ``run``: what the run adds (:func:`run_header`: the model, its input size, tracking)."""
    name = getattr(source, "name", None) or getattr(source, "description", None)
    record: dict[str, Any] = {
        "schema": STREAM_SCHEMA,
        "type": "header",
        "source": redact(str(name)) if name is not None else None,
        "live": bool(getattr(source, "live", False)) or hasattr(source, "outages"),
        "fps": round(float(source.fps), 6) if getattr(source, "fps", None) else None,
    }
    if first is not None:
        height, width = first.frame.image.shape[:2]
        record["width"], record["height"] = int(width), int(height)
        record.update(_layout(first.poses.num_joints))
    record.update(run or {})
    return record


def _layout(num_joints: int | None) -> dict[str, Any]:
    """``keypoint_names`` and ``skeleton`` for a joint count (none for a layout hhrt does not know)."""
    if num_joints not in _LAYOUTS:
        return {}
    names, skeleton = _LAYOUTS[num_joints]
    return {"keypoint_names": list(names), "skeleton": [list(edge) for edge in skeleton]}


def images_header(num_joints: int | None, run: dict[str, Any] | None = None) -> dict[str, Any]:
    """The header of a batch of images (``hhrt image --format``): no source, rate or common size (each
    :func:`image_record` has its own)."""
    return {"schema": STREAM_SCHEMA, "type": "header", "source": None, "live": False, "fps": None,
            **_layout(num_joints), **(run or {})}  # fmt: skip


def image_record(index: int, name: str, image_hw: tuple[int, int], poses: Any) -> dict[str, Any]:
    """One image of a batch as the format writers take a frame: its index, file name and size."""
    return {"schema": STREAM_SCHEMA, "type": "frame", "frame": index, "timestamp": 0.0, "image": name,
            "width": int(image_hw[1]), "height": int(image_hw[0]), "people": poses.to_records()}  # fmt: skip


def run_header(estimator: Any = None, *, tracked: bool = False) -> dict[str, Any]:
    """The header fields a run adds: ``model`` (architecture, weights and engine by file name only, backend,
    precision, flip test), ``input_size`` and ``tracked`` (people carry IDs). Paths never leave the
    machine: a weights or engine file is named by its base name (a home folder is nobody's business), a
    URL redacted. An estimator that does not say (a remote ``--server``) gives what is known."""
    record: dict[str, Any] = {"tracked": bool(tracked)}
    if estimator is None:
        return record
    resolution = getattr(estimator, "resolution", None)
    config = getattr(resolution, "config", None)
    backend = getattr(estimator, "backend", None)
    record["model"] = {
        "name": "HigherHRNet",
        "weights": _file_name(getattr(config, "weights", None)),
        "engine": _file_name(getattr(resolution, "engine", None)),
        "backend": getattr(backend, "name", None),
        "precision": getattr(backend, "precision", None),
        "flip": getattr(estimator, "flip", None),
    }
    size = getattr(estimator, "input_size", None)
    record["input_size"] = int(size) if isinstance(size, int) else None
    return record


def _file_name(weights: Any) -> str | None:
    """A weights source as the header names it: a preset name as it is, a file by its base name."""
    if weights is None:
        return None
    if isinstance(weights, str | os.PathLike):
        return redact(Path(os.fspath(weights)).name)
    return type(weights).__name__  # a state dict or a module handed over in Python: no name to give


def frame_record(result: Any) -> dict[str, Any]:
    """One frame's people (``result``: a :class:`~hhrnet_rt.video.sinks.FrameResult`; x/y rounded to 0.01 px, scores to 1e-4, as :meth:`Poses.to_records`)."""
    record: dict[str, Any] = {
        "schema": STREAM_SCHEMA,
        "type": "frame",
        "frame": result.frame.index,
        "timestamp": round(result.frame.timestamp, 6),
        "people": result.poses.to_records(),
    }
    if result.poses.meta.get("smoothed"):
        record["smoothed"] = True
    return record


def outage_record(outage: Outage) -> dict[str, Any]:
    """One outage of a live source, on the frames' clock."""
    return {
        "schema": STREAM_SCHEMA,
        "type": "outage",
        "start": round(outage.start, 6),
        "end": None if outage.end is None else round(outage.end, 6),
        "reason": redact(outage.reason),
        "attempts": outage.attempts,
    }


def frames_of(records: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """The frame records among a file's records, version 1 or 2 (a v1 record has no ``type``)."""
    return [r for r in records if r.get("type", "frame") == "frame"]
