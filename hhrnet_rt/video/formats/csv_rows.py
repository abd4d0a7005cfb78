"""``csv``: one row per person per frame, for spreadsheets and pandas.

Columns: ``frame`` (index from 0), ``time`` (seconds, the JSON lines timestamp), ``id`` (the track ID;
empty without ``--track`` or while unconfirmed), ``score`` (the person's), then ``<joint>_x``,
``<joint>_y``, ``<joint>_score`` for every joint by its COCO name (``nose_x`` ...); a joint without a
position has empty x/y. An image batch has an ``image`` column (the file name) in place of ``time``. A
frame without people has no row. Numbers are as the JSON lines hold them (0.01 px, 1e-4).
"""

from __future__ import annotations

import csv
import io
from typing import Any

from hhrnet_rt.video.formats.common import FileWriter, keypoint_names


def _cell(value: Any) -> Any:
    return "" if value is None else value


class CsvWriter(FileWriter):
    suffixes = (".csv",)
    what = "CSV file"
    _images = False  # an image batch: an image column in place of time (decided by the first record)

    def _rows(self, rows: list[list[Any]]) -> bytes:
        text = io.StringIO()
        csv.writer(text, lineterminator="\n").writerows(rows)
        return text.getvalue().encode("utf-8")

    def head(self, record: dict[str, Any]) -> bytes:
        self._images = bool(record.get("image"))
        joints = [
            f"{name}_{part}" for name in keypoint_names(self.header, record) for part in ("x", "y", "score")
        ]
        return self._rows([["frame", "image" if self._images else "time", "id", "score", *joints]])

    def body(self, record: dict[str, Any]) -> bytes:
        second = record.get("image") if self._images else record.get("timestamp")
        rows = [
            [record["frame"], _cell(second), _cell(person.get("id")), _cell(person["score"]),
             *(_cell(value) for joint in person["keypoints"] for value in joint)]
            for person in record["people"]
        ]  # fmt: skip
        return self._rows(rows)
