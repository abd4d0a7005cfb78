"""``openpose``: one JSON file per frame in OpenPose's ``--write_json`` layout, for tools that read
OpenPose output (3D lifters such as VideoPose3D's and MotionBERT's OpenPose loaders, animation tools).

Layout: ``{"version": 1.3, "people": [{"person_id": [ID or -1], "pose_keypoints_2d": [x, y, c] * 18,
"face_keypoints_2d": [], "hand_left_keypoints_2d": [], "hand_right_keypoints_2d": [], and the empty 3-D
arrays}]}``, pixels of the frame; file ``<source stem>_<frame:012d>_keypoints.json`` (OpenPose's naming;
an image: ``<stem>_keypoints.json``).

Joint order: OpenPose's COCO-18 (``--model_pose COCO``): COCO's 17 joints reordered, plus the neck at
index 1 = the midpoint of the two shoulders, its confidence the lower of theirs (0, at 0, 0, unless both
were found). BODY_25 is not written: it adds a mid-hip (derivable) but also six foot points (toes, heels)
that COCO's joints do not have, and zeros in their place would read as "never seen" to a BODY_25 lifter.
A joint not found is ``0, 0, 0``, as OpenPose writes it.
"""

from __future__ import annotations

import json
from typing import Any

from hhrnet_rt.video.formats.common import FolderWriter, frame_stem, require_coco, visibility

#: OpenPose COCO-18 joint i = COCO joint ``COCO18_FROM_COCO17[i]``; ``None`` is the neck (derived).
COCO18_FROM_COCO17: tuple[int | None, ...] = (0, None, 6, 8, 10, 5, 7, 9, 12, 14, 16, 11, 13, 15, 2, 1, 4, 3)
OPENPOSE_VERSION = 1.3
_EMPTY = ("face_keypoints_2d", "hand_left_keypoints_2d", "hand_right_keypoints_2d", "pose_keypoints_3d",
          "face_keypoints_3d", "hand_left_keypoints_3d", "hand_right_keypoints_3d")  # fmt: skip


def coco18(joints: list[list[Any]]) -> list[float]:
    """COCO-17 ``[x, y, score]`` rows as OpenPose's flat COCO-18 ``x, y, c`` list."""
    flat: list[float] = []
    for index in COCO18_FROM_COCO17:
        if index is None:
            left, right = joints[5], joints[6]
            if visibility(left) and visibility(right):
                flat += [round((left[0] + right[0]) / 2, 3), round((left[1] + right[1]) / 2, 3),
                         min(left[2], right[2])]  # fmt: skip
            else:
                flat += [0, 0, 0]
            continue
        joint = joints[index]
        flat += list(joint) if visibility(joint) else [0, 0, 0]
    return flat


class OpenPoseWriter(FolderWriter):
    what = "OpenPose JSON folder"

    def write_frame(self, record: dict[str, Any]) -> None:
        if self.written == 0:
            require_coco(self.header, record, "openpose")
        people = []
        for person in record["people"]:
            pid = person.get("id")
            people.append({"person_id": [-1 if pid is None else int(pid)],
                           "pose_keypoints_2d": coco18(person["keypoints"]), **{key: [] for key in _EMPTY}})  # fmt: skip
        name = (f"{frame_stem(self.header, record)}_keypoints.json" if record.get("image")
                else f"{frame_stem(self.header, record, digits=12)}_keypoints.json")  # fmt: skip
        self.put(name, json.dumps({"version": OPENPOSE_VERSION, "people": people}).encode())
