"""``yolo``: Ultralytics YOLO-pose labels, the dataset ``yolo pose train`` reads.

A folder holding ``data.yaml`` (``kpt_shape: [17, 3]``, ``flip_idx``, ``names: {0: person}``, ``train``
and ``val`` = ``images``) and ``labels/<frame name>.txt``, one per frame (empty when nobody is there, a
background image), one line per person: ``0 cx cy w h x1 y1 v1 ... x17 y17 v17``, every coordinate
divided by the frame's width or height (so in [0, 1]), ``v`` COCO's 0/1/2
(:func:`~hhrnet_rt.video.formats.common.visibility`). A joint outside the picture is written as not
labeled (``0 0 0``): Ultralytics refuses coordinates outside [0, 1]. The box is the one around the labeled
joints; a person without one is left out. Frame names are ``<source stem>_<frame:06d>`` (an image batch:
the image's stem): put the frames in ``images/`` under those names (docs/interop.md shows the ffmpeg line).
"""

from __future__ import annotations

import json
from typing import Any

from hhrnet_rt.core.skeleton import COCO_FLIP_INDEX
from hhrnet_rt.video.formats.common import (
    FolderWriter,
    frame_size,
    frame_stem,
    number,
    require_coco,
    visibility,
)


def label_line(person: dict[str, Any], width: int, height: int) -> str | None:
    """One person's line, or ``None`` when no joint is labeled inside the picture."""
    joints = []
    for x, y, score in person["keypoints"]:
        v = visibility([x, y, score])
        inside = v > 0 and 0 <= x <= width and 0 <= y <= height
        joints.append((x / width, y / height, v) if inside else (0.0, 0.0, 0))
    labeled = [(x, y) for x, y, v in joints if v]
    if not labeled:
        return None
    xs, ys = [p[0] for p in labeled], [p[1] for p in labeled]
    box = ((min(xs) + max(xs)) / 2, (min(ys) + max(ys)) / 2, max(xs) - min(xs), max(ys) - min(ys))
    values = [*map(number, box), *(text for x, y, v in joints for text in (number(x), number(y), str(v)))]
    return "0 " + " ".join(values)


def dataset_yaml(header: dict[str, Any], joints: int) -> str:
    """The dataset description (plain YAML written by hand: lists in JSON's flow style are YAML too)."""
    source = json.dumps(header.get("source") or "")
    return (
        f"# YOLO-pose labels written by hhrt from {source}. Put the frames in images/ under the names of the\n"
        "# files in labels/ (.jpg), then: yolo pose train data=<absolute path of this file>\n"
        "train: images\n"
        "val: images\n"
        f"kpt_shape: [{joints}, 3]\n"
        f"flip_idx: {json.dumps(list(COCO_FLIP_INDEX))}\n"
        "names:\n"
        "  0: person\n"
    )


class YoloWriter(FolderWriter):
    what = "YOLO-pose dataset folder"

    def write_frame(self, record: dict[str, Any]) -> None:
        width, height = frame_size(self.header, record, "yolo")
        if self.written == 0:
            require_coco(self.header, record, "yolo")
            self.put("data.yaml", dataset_yaml(self.header, len(COCO_FLIP_INDEX)).encode())
        lines = [line for person in record["people"] if (line := label_line(person, width, height))]
        self.put(
            f"labels/{frame_stem(self.header, record)}.txt", "".join(f"{line}\n" for line in lines).encode()
        )
