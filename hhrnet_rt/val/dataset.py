"""A keypoint validation set: COCO-format annotations and the folder of their images, checked on load.

COCO val2017 (17 joints) and CrowdPose (14 joints, ``crowdIndex`` per image) share the format; which one a
file is follows from its category's keypoint names (or ``dataset=`` when given). Nothing read from the file
is trusted: its structure is checked, and an image's ``file_name`` must name a file directly inside the
image folder (no path parts), so an annotation file cannot make hhrt read elsewhere.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hhrnet_rt.core.errors import InputError

#: Joint count of each dataset the evaluator knows.
DATASETS = {"coco": 17, "crowdpose": 14}
# The official evaluation caps the annotation file it reads; far beyond COCO val2017's 25 MB.
MAX_ANNOTATION_BYTES = 1 << 30


@dataclass(frozen=True)
class ValImage:
    """One image of the set: its id, its file, and its crowd index (CrowdPose; ``None`` for COCO)."""

    id: int
    path: Path
    crowd_index: float | None


@dataclass(frozen=True)
class ValSet:
    """The loaded set: ``name`` ("coco" or "crowdpose"), the images in the annotation file's order (the
    official evaluation's order), the person category id and the parsed annotation file."""

    name: str
    num_joints: int
    images: tuple[ValImage, ...]
    category_id: int
    data: dict[str, Any]
    annotation_file: Path


def _fail(path: Path, what: str) -> InputError:
    return InputError(
        f"{path}: {what}; expected COCO-format keypoint annotations (COCO val2017 or CrowdPose)"
    )


def load_annotations(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The annotation file as a dict, its top-level structure checked."""
    p = Path(path)
    if not p.is_file():
        raise InputError(f"annotation file {p} does not exist or is not a file")
    if p.stat().st_size > MAX_ANNOTATION_BYTES:
        raise _fail(p, "larger than 1 GiB")
    try:
        data = json.loads(p.read_bytes())
    except (OSError, ValueError) as exc:
        raise _fail(p, f"not readable JSON ({exc})") from None
    if not isinstance(data, dict):
        raise _fail(p, "not a JSON object")
    for key in ("images", "annotations", "categories"):
        if not isinstance(data.get(key), list):
            raise _fail(p, f"no '{key}' list")
    return data


def _person_category(p: Path, data: dict[str, Any]) -> tuple[int, list[str]]:
    cats = [c for c in data["categories"] if isinstance(c, dict) and isinstance(c.get("keypoints"), list)]
    if len(cats) != 1 or not isinstance(cats[0].get("id"), int):
        raise _fail(p, "needs exactly one category with a 'keypoints' list and an integer 'id'")
    return cats[0]["id"], [str(k) for k in cats[0]["keypoints"]]


def _check_annotation(p: Path, ann: Any, num_joints: int) -> None:
    ok = (
        isinstance(ann, dict)
        and isinstance(ann.get("image_id"), int)
        and isinstance(ann.get("keypoints"), list)
        and len(ann["keypoints"]) == 3 * num_joints
        and all(isinstance(v, int | float) for v in ann["keypoints"])
        and isinstance(ann.get("bbox"), list)
        and len(ann["bbox"]) == 4
        and all(isinstance(v, int | float) for v in ann["bbox"])
        and isinstance(ann.get("num_keypoints", 0), int)
    )
    if not ok:
        raise _fail(p, f"an annotation is malformed ({str(ann)[:120]})")


def _image_path(p: Path, image_dir: Path, name: Any) -> Path:
    if not isinstance(name, str) or not name or Path(name).name != name or name in (".", ".."):
        raise _fail(p, f"an image's file_name must be a plain file name, got {name!r}")
    return image_dir / name


def load_set(
    image_dir: str | os.PathLike[str], annotation_file: str | os.PathLike[str], dataset: str | None = None
) -> ValSet:
    """Read and check the annotation file; ``dataset`` ("coco", "crowdpose" or ``None``: detected)."""
    p, folder = Path(annotation_file), Path(image_dir)
    if not folder.is_dir():
        raise InputError(f"image folder {folder} does not exist or is not a folder")
    data = load_annotations(p)
    category_id, names = _person_category(p, data)
    detected = {17: "coco", 14: "crowdpose"}.get(len(names))
    if dataset is None:
        if detected is None:
            raise _fail(p, f"its category has {len(names)} keypoints (COCO has 17, CrowdPose 14)")
        dataset = detected
    if dataset not in DATASETS:
        raise InputError(f"dataset must be one of {sorted(DATASETS)}, got {dataset!r}")
    if DATASETS[dataset] != len(names):
        raise _fail(p, f"its category has {len(names)} keypoints, {dataset} has {DATASETS[dataset]}")
    num_joints = DATASETS[dataset]
    images, seen = [], set()
    for im in data["images"]:
        if not isinstance(im, dict) or not isinstance(im.get("id"), int) or im["id"] in seen:
            raise _fail(p, f"an image entry has no integer 'id' or a repeated one ({str(im)[:120]})")
        seen.add(im["id"])
        crowd = im.get("crowdIndex")
        if dataset == "crowdpose" and not isinstance(crowd, int | float):
            raise _fail(p, f"CrowdPose image {im['id']} has no numeric 'crowdIndex'")
        path = _image_path(p, folder, im.get("file_name"))
        crowd_index = float(crowd) if isinstance(crowd, int | float) and dataset == "crowdpose" else None
        images.append(ValImage(im["id"], path, crowd_index))
    for ann in data["annotations"]:
        _check_annotation(p, ann, num_joints)
        if ann["image_id"] not in seen:
            raise _fail(
                p, f"annotation {ann.get('id')!r} refers to image {ann['image_id']}, which is not listed"
            )
    return ValSet(dataset, num_joints, tuple(images), category_id, data, p)
