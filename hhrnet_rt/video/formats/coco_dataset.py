"""``coco-dataset``: a COCO keypoint dataset (``images``, ``annotations``, ``categories``) that annotation
tools (CVAT, Label Studio, FiftyOne) and pycocotools import as ground truth.

Rules (docs/interop.md says them to users):

- ``images``: one per frame, ``id`` = frame index (the ``image_id`` of ``--coco`` results, so the two
  files pair up), ``file_name`` = ``<source stem>_<frame:06d>.jpg`` (an image batch: the image's name),
  ``width``, ``height``.
- ``annotations``: one per person with at least one joint found; ``id`` from 1; ``keypoints`` flat
  ``[x, y, v] * K`` with ``v`` from :func:`~hhrnet_rt.video.formats.common.visibility` (a joint not found is
  ``0, 0, 0``); ``num_keypoints`` = joints with ``v > 0``; ``bbox`` = the box around those joints and
  ``area`` its width x height (hhrt has no segmentation); ``category_id`` 1, ``iscrowd`` 0, ``score``
  (the person's), and ``track_id`` when people are tracked (``null`` until confirmed).
- ``categories``: ``person`` with the keypoint names and the skeleton, 1-based as COCO writes it.

The annotations are streamed to disk as frames come; the images (a few numbers a frame) are kept and
written at the end, after the annotations (a JSON object's keys have no order).
"""

from __future__ import annotations

import json
from typing import Any

from hhrnet_rt.core.skeleton import skeleton_for
from hhrnet_rt.video.formats.common import (
    FileWriter,
    frame_size,
    frame_stem,
    keypoint_names,
    labeled_box,
    visibility,
)


def annotation(person: dict[str, Any], image_id: int, annotation_id: int) -> dict[str, Any] | None:
    """One person as a COCO annotation; ``None`` for a person without a joint found (no box to give)."""
    box = labeled_box(person["keypoints"])
    if box is None:
        return None
    flat: list[float | int] = []
    for joint in person["keypoints"]:
        v = visibility(joint)
        flat += [joint[0], joint[1], v] if v else [0, 0, 0]
    left, top, width, height = (round(value, 2) for value in box)
    record: dict[str, Any] = {
        "id": annotation_id,
        "image_id": image_id,
        "category_id": 1,
        "iscrowd": 0,
        "keypoints": flat,
        "num_keypoints": sum(1 for v in flat[2::3] if v),
        "bbox": [left, top, width, height],
        "area": round(width * height, 4),
        "score": person["score"],
    }
    if "id" in person:
        record["track_id"] = person["id"]
    return record


class CocoDatasetWriter(FileWriter):
    suffixes = (".json",)
    what = "COCO dataset file"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._images: list[dict[str, Any]] = []
        self._annotations = 0

    def head(self, record: dict[str, Any]) -> bytes:
        names = keypoint_names(self.header, record)
        skeleton = self.header.get("skeleton") or skeleton_for(len(names))
        category = {"id": 1, "name": "person", "supercategory": "person", "keypoints": names,
                    "skeleton": [[a + 1, b + 1] for a, b in skeleton]}  # fmt: skip
        info = {"description": "hhrnet-rt keypoints", "source": self.header.get("source"),
                "model": self.header.get("model")}  # fmt: skip
        return f'{{"info": {json.dumps(info)},\n"categories": [{json.dumps(category)}],\n"annotations": ['.encode()

    def body(self, record: dict[str, Any]) -> bytes:
        image_id = int(record["frame"])
        width, height = frame_size(self.header, record, "coco-dataset")
        file_name = str(record["image"]) if record.get("image") else f"{frame_stem(self.header, record)}.jpg"
        self._images.append({"id": image_id, "file_name": file_name, "width": width, "height": height})
        parts = []
        for person in record["people"]:
            made = annotation(person, image_id, self._annotations + 1)
            if made is not None:
                parts.append(("\n" if self._annotations == 0 else ",\n") + json.dumps(made))
                self._annotations += 1
        return "".join(parts).encode()

    def tail(self) -> bytes:
        images = ",\n".join(json.dumps(image) for image in self._images)
        return f'],\n"images": [\n{images}]}}\n'.encode()
