"""Keypoint AP of a results list: pycocotools' COCOeval, configured as each dataset's official tool.

COCO: pycocotools as the official ``COCODataset._do_python_keypoint_eval`` calls it. CrowdPose: its own
tool, crowdposetools (unmaintained; it does not build with numpy 2), is pycocotools' COCOeval with three
changes, applied here to pycocotools instead: CrowdPose's 14 sigmas; a person's area, for the OKS scale and
the area ranges, is ``0.53 * bbox width * bbox height`` (CrowdPose has no segmentation areas); and the
extra AP easy/medium/hard, each the evaluation redone on the images whose ``crowdIndex`` is < 0.2,
< 0.8, or above, reported as the plain mean of the precision array (no-data entries of -1 included, as
crowdposetools does) rounded to 4 digits. ``tests/test_val_crowdpose.py`` checks this against figures
crowdposetools printed itself.
"""

from __future__ import annotations

import contextlib
import copy
import io
from typing import Any

import numpy as np

#: The names hhrt reports, in the official order, and the official (printed) names.
COCO_STATS = ("AP", "AP50", "AP75", "APm", "APl", "AR", "AR50", "AR75", "ARm", "ARl")
CROWDPOSE_STATS = ("AP", "AP50", "AP75", "AR", "AR50", "AR75", "AP easy", "AP medium", "AP hard")
OFFICIAL_NAMES = {
    "coco": ("AP", "Ap .5", "AP .75", "AP (M)", "AP (L)", "AR", "AR .5", "AR .75", "AR (M)", "AR (L)"),
    "crowdpose": ("AP", "Ap .5", "AP .75", "AR", "AR .5", "AR .75", "AP (easy)", "AP (medium)", "AP (hard)"),
}
CROWDPOSE_SIGMAS = (
    np.array([0.79, 0.79, 0.72, 0.72, 0.62, 0.62, 1.07, 1.07, 0.87, 0.87, 0.89, 0.89, 0.79, 0.79]) / 10
)
CROWDPOSE_AREA_FACTOR = 0.53
CROWD_SPLIT = (0.2, 0.8)  # crowdposetools' get_type_result(first=0.2, second=0.8)


def _quiet(fn, *args):
    """pycocotools prints its progress; the CLI prints its own summary."""
    with contextlib.redirect_stdout(io.StringIO()):
        return fn(*args)


def _coco(data: dict[str, Any]):
    from pycocotools.coco import COCO

    coco = COCO()
    coco.dataset = data
    _quiet(coco.createIndex)
    return coco


def _ground_truth(data: dict[str, Any], dataset: str, image_ids: list[int]) -> dict[str, Any]:
    """The annotations of the evaluated images, as the dataset's tool sees them."""
    keep = set(image_ids)
    anns = [copy.copy(a) for a in data["annotations"] if a["image_id"] in keep]
    for i, a in enumerate(anns):
        a.setdefault("iscrowd", 0)
        a.setdefault("id", i + 1)
        a.setdefault("num_keypoints", sum(1 for v in a["keypoints"][2::3] if v > 0))
        if dataset == "crowdpose":
            a["area"] = a["bbox"][2] * a["bbox"][3] * CROWDPOSE_AREA_FACTOR
        elif "area" not in a:
            a["area"] = a["bbox"][2] * a["bbox"][3]
    images = [im for im in data["images"] if im["id"] in keep]
    return {"images": images, "annotations": anns, "categories": data["categories"]}


def _evaluator(gt, records: list[dict[str, Any]], dataset: str, image_ids: list[int]):
    from pycocotools.cocoeval import COCOeval

    if records:
        dt = _quiet(gt.loadRes, copy.deepcopy(records))
    else:  # no person anywhere: nothing matches (the official code would fail in loadRes here)
        dt = _coco(
            {"images": gt.dataset["images"], "annotations": [], "categories": gt.dataset["categories"]}
        )
    ev = COCOeval(gt, dt, "keypoints")
    ev.params.useSegm = None
    ev.params.imgIds = sorted(image_ids)
    if dataset == "crowdpose":
        ev.params.kpt_oks_sigmas = CROWDPOSE_SIGMAS
    return ev


def keypoint_stats(
    data: dict[str, Any], records: list[dict[str, Any]], dataset: str, image_ids: list[int]
) -> tuple[dict[str, float], str]:
    """The dataset's stats of ``records`` on ``image_ids`` (the evaluated images) and pycocotools' summary.

    Returns ``({name: value}, summary text)``; names as :data:`COCO_STATS` / :data:`CROWDPOSE_STATS`.
    """
    gt = _coco(_ground_truth(data, dataset, image_ids))
    ev = _evaluator(gt, records, dataset, image_ids)
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    s = [float(v) for v in ev.stats]
    if dataset == "coco":
        return dict(zip(COCO_STATS, s, strict=True)), out.getvalue()
    stats = dict(zip(CROWDPOSE_STATS[:6], (s[0], s[1], s[2], s[5], s[6], s[7]), strict=True))
    crowd = {im["id"]: im["crowdIndex"] for im in data["images"]}
    first, second = CROWD_SPLIT
    split: dict[str, list[int]] = {"AP easy": [], "AP medium": [], "AP hard": []}
    for i in image_ids:  # the file's order of images, as crowdposetools' split()
        name = "AP easy" if crowd[i] < first else "AP medium" if crowd[i] < second else "AP hard"
        split[name].append(i)
    for name, ids in split.items():
        ev.params.imgIds = ids
        with contextlib.redirect_stdout(io.StringIO()):
            ev.evaluate()
            ev.accumulate()
        stats[name] = round(float(np.mean(ev.eval["precision"][:, :, :, 0, :])), 4)
    return stats, out.getvalue()


def official_table(dataset: str, stats: dict[str, float], arch: str) -> str:
    """The stats as the official ``_print_name_value`` prints them (a Markdown table, 3 decimals)."""
    names = OFFICIAL_NAMES[dataset]
    values = stats.values()
    return "\n".join(
        (
            "| Arch " + " ".join(f"| {n}" for n in names) + " |",
            "|---" * (len(names) + 1) + "|",
            f"| {arch} " + " ".join(f"| {v:.3f}" for v in values) + " |",
        )
    )
