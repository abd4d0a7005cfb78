"""``mot``: a MOT-challenge track file (``--track`` runs), for MOT tools (TrackEval, py-motmetrics).

One line per tracked person per frame: ``frame,id,bb_left,bb_top,bb_width,bb_height,conf,-1,-1,-1`` with
``frame`` counted from 1 (MOT's convention: frame index + 1), ``id`` the track ID, the box around the
joints found (as ``coco-dataset``), ``conf`` the person's score; the last three (world x, y, z) are -1.
People the tracker has not confirmed (no ID yet) and people without a joint found are left out.
"""

from __future__ import annotations

from typing import Any

from hhrnet_rt.core.errors import InputError, option
from hhrnet_rt.video.formats.common import FileWriter, labeled_box, number


def _needs_track() -> str:
    # A function, not a constant: the option's spelling depends on who is asking (library or CLI).
    return f"the mot format needs tracked people (IDs): run with {option('track', True)}"


class MotWriter(FileWriter):
    suffixes = (".txt",)
    what = "MOT track file"

    def begin(self, header: dict[str, Any]) -> None:
        if header.get("tracked") is False:
            raise InputError(f"{_needs_track()}; these keypoints were found without it")
        super().begin(header)

    def body(self, record: dict[str, Any]) -> bytes:
        lines = []
        for person in record["people"]:
            if "id" not in person:
                raise InputError(f"{_needs_track()} (frame {record['frame']} has a person without an id)")
            box = labeled_box(person["keypoints"])
            if person["id"] is None or box is None:
                continue
            fields = [str(int(record["frame"]) + 1), str(int(person["id"])), *map(number, box),
                      number(person["score"] or 0.0), "-1", "-1", "-1"]  # fmt: skip
            lines.append(",".join(fields) + "\n")
        return "".join(lines).encode()
