"""Reading a JSON lines file back for ``hhrt convert``: every record checked before a writer sees it.

Nothing read from disk is trusted: a line must be JSON (no NaN or Infinity), a keypoint record of schema
version 1 or 2, and a frame record must hold what the writers use, of the right types (frame index,
timestamp, people with a score, an optional integer ``id`` and ``[x, y, score]`` rows of numbers or
``null``, the same joint count throughout). A header's sizes must be positive integers and its joint
names match the people. Each problem is one :class:`~hhrnet_rt.core.errors.InputError` naming the line.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from typing import Any

from hhrnet_rt.core.errors import InputError
from hhrnet_rt.poses import KEYPOINTS_SCHEMA
from hhrnet_rt.video.records import STREAM_SCHEMA

_AGAIN = "give a file that `hhrt video --json` wrote"


def _no_constant(name: str) -> float:
    raise ValueError(f"{name} is not a number JSON allows")


def _number(value: Any, *, optional: bool = True) -> bool:
    if value is None:
        return optional
    return isinstance(value, int | float) and not isinstance(value, bool)


def _frame_problem(record: dict[str, Any], joints: int | None) -> str | None:
    """What is wrong with a frame record, or ``None``."""
    if not isinstance(record.get("frame"), int) or isinstance(record["frame"], bool) or record["frame"] < 0:
        return "frame must be a non-negative integer"
    if not _number(record.get("timestamp"), optional=False):
        return "timestamp must be a number"
    people = record.get("people")
    if not isinstance(people, list):
        return "people must be a list"
    for person in people:
        if not isinstance(person, dict) or not _number(person.get("score")):
            return "each person needs a score (a number)"
        pid = person.get("id")
        if pid is not None and (not isinstance(pid, int) or isinstance(pid, bool) or pid < 0):
            return "a person's id must be a non-negative integer or null"
        rows = person.get("keypoints")
        if not isinstance(rows, list) or not rows:
            return "each person needs keypoints: [[x, y, score], ...]"
        if not all(isinstance(row, list) and len(row) == 3 and all(map(_number, row)) for row in rows):
            return "each keypoint must be [x, y, score] of numbers (or null)"
        if joints is not None and len(rows) != joints:
            return f"a person has {len(rows)} joints where the file has {joints}"
        joints = len(rows)
    return None


def _header_problem(record: dict[str, Any]) -> str | None:
    for key in ("width", "height"):
        value = record.get(key)
        if value is not None and (not isinstance(value, int) or isinstance(value, bool) or value < 1):
            return f"{key} must be a positive integer"
    names = record.get("keypoint_names")
    if names is not None and (not isinstance(names, list) or not all(isinstance(n, str) for n in names)):
        return "keypoint_names must be a list of strings"
    skeleton = record.get("skeleton")
    count = len(names) if isinstance(names, list) else None
    if skeleton is not None and not (
        isinstance(skeleton, list)
        and all(
            isinstance(e, list)
            and len(e) == 2
            and all(isinstance(i, int) and 0 <= i < (count or 1 << 30) for i in e)
            for e in skeleton
        )
    ):
        return "skeleton must be pairs of joint indices"
    if record.get("source") is not None and not isinstance(record["source"], str):
        return "source must be a string"
    return None


def read_records(lines: Iterable[bytes], name: str) -> Iterator[dict[str, Any]]:
    """The records of a JSON lines file (version 1 or 2), each checked (module docstring).

    Raises:
        InputError: a line that is not JSON or not a valid keypoint record (the message names the line).
    """
    joints: int | None = None
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line, parse_constant=_no_constant)
        except (ValueError, UnicodeDecodeError, RecursionError) as exc:
            raise InputError(f"{name} line {number} is not JSON ({exc}); {_AGAIN}") from None
        if not isinstance(record, dict) or record.get("schema") not in (KEYPOINTS_SCHEMA, STREAM_SCHEMA):
            raise InputError(f"{name} line {number} is not an hhrt keypoint record (schema {STREAM_SCHEMA} "
                             f"or {KEYPOINTS_SCHEMA}); {_AGAIN}")  # fmt: skip
        kind = record.get("type", "frame")
        if kind == "header":
            problem = _header_problem(record)
            if isinstance(record.get("keypoint_names"), list) and problem is None:
                joints = len(record["keypoint_names"])
        elif kind == "frame":
            problem = _frame_problem(record, joints)
            people = record["people"] if problem is None else []
            joints = len(people[0]["keypoints"]) if people and joints is None else joints
        else:
            problem = None  # an outage, or a type a later version adds: the writers skip it
        if problem is not None:
            raise InputError(f"{name} line {number}: {problem}; the file is damaged or not hhrt's")
        yield record
