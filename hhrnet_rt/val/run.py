"""``evaluate()``: every image of a validation set through a :class:`PoseEstimator`, then its keypoint AP.

Per image this is the official ``tools/valid.py`` (batch 1): the image read as the official dataset class
reads it (``cv2.IMREAD_COLOR | cv2.IMREAD_IGNORE_ORIENTATION``: EXIF rotation is not applied), the
estimator's prepare -> infer -> decode (the official test-time pipeline, scales and flip as configured),
and the people turned into result records exactly as ``COCODataset.evaluate`` /
``CrowdPoseDataset.evaluate`` do (:func:`official_records`): every person the decoder returns, in its
order, no OKS-NMS and no rescoring, its score the mean of its joint scores before refine; an image with
no people gives no record. The records are then scored by :mod:`.metrics`.

Two deliberate differences from the official scripts, neither changing a figure on COCO or CrowdPose:
the image id is the annotation file's ``id`` (the official code parses it from the file name, which is
the same number on both datasets), and a run with no person at all scores 0 (the official code fails).
"""

from __future__ import annotations

import itertools
import os
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np

from hhrnet_rt.core.errors import InputError, option
from hhrnet_rt.poses import Poses
from hhrnet_rt.val.dataset import ValSet, load_set
from hhrnet_rt.val.metrics import keypoint_stats
from hhrnet_rt.val.report import ValReport

#: ``progress(done, total)`` after each image.
Progress = Callable[[int, int], None]


def official_records(image_id: int, category_id: int, poses: Poses) -> list[dict[str, Any]]:
    """One result record per person, as the official ``_coco_keypoint_results_one_category_kernel``.

    Keypoints ``x1, y1, s1, x2, ...`` (float32 values widened to float64, as its ``np.float`` array),
    the person score, and its bbox (``amin``/``amax`` over the (K, 3) rows, score column included;
    pycocotools recomputes it from the keypoints anyway).
    """
    records = []
    for kpt, score in zip(poses.keypoints.astype(np.float64), poses.scores, strict=True):
        left_top, right_bottom = kpt.min(axis=0), kpt.max(axis=0)
        records.append(
            {
                "image_id": int(image_id),
                "category_id": int(category_id),
                "keypoints": [float(v) for v in kpt.reshape(-1)],
                "score": float(score),
                "bbox": [float(left_top[0]), float(left_top[1]), float(right_bottom[0] - left_top[0]),
                         float(right_bottom[1] - left_top[1])],
            }
        )  # fmt: skip
    return records


def read_image(path: os.PathLike[str] | str) -> np.ndarray:
    """A validation image as the official dataset class reads it (BGR; EXIF orientation ignored)."""
    import cv2

    image = cv2.imread(os.fspath(path), cv2.IMREAD_COLOR | cv2.IMREAD_IGNORE_ORIENTATION)
    if image is None:
        raise InputError(f"cannot read image {path}: missing or not an image (check {option('image_dir')})")
    return image


def _nonfinite(array: Any) -> int:
    """How many values of a map (numpy array or torch tensor) are NaN or infinite."""
    if isinstance(array, np.ndarray):
        return int(array.size - np.count_nonzero(np.isfinite(array)))
    import torch

    return int((~torch.isfinite(array)).sum().item())


def evaluate(
    estimator: Any,
    image_dir: str | os.PathLike[str],
    annotation_file: str | os.PathLike[str],
    *,
    dataset: str | None = None,
    max_images: int | None = None,
    progress: Progress | None = None,
) -> ValReport:
    """Keypoint AP of ``estimator`` on a COCO-format set (COCO val2017, CrowdPose, or a part of them).

    Args:
        estimator: a :class:`~hhrnet_rt.PoseEstimator` (any backend, precision, engine; its ``weights``
            may be an ``nn.Module``), or anything with its ``prepare``/``infer``/``decode`` stages.
        image_dir: the folder of the images the annotation file names.
        annotation_file: COCO-format keypoint annotations (``person_keypoints_val2017.json``,
            ``crowdpose_test.json``...).
        dataset: "coco" or "crowdpose"; ``None``: from the file's keypoint count (17 or 14).
        max_images: evaluate only the first N images of the file (and score on those only).
        progress: called as ``progress(done, total)`` after each image.

    Returns:
        A :class:`ValReport`: ``report.stats["AP"]``, people per image, speed, NaN/inf counts.
    """
    vs = load_set(image_dir, annotation_file, dataset)
    joints = getattr(estimator, "num_joints", vs.num_joints)
    if joints != vs.num_joints:
        raise InputError(
            f"the model predicts {joints} joints and {vs.annotation_file} is {vs.name} ({vs.num_joints}): "
            "use weights trained on that dataset"
        )
    if max_images is not None and max_images < 1:
        raise InputError(f"max_images must be >= 1, got {max_images}")
    images = vs.images[:max_images] if max_images is not None else vs.images
    return _run(estimator, vs, images, progress)


def _prefetched(paths, ahead: int = 2):
    """The images of ``paths`` in order, each read (JPEG decode) in a worker thread while the estimator
    works on the previous ones: on a GPU reading would otherwise take a large share of the run."""
    with ThreadPoolExecutor(max_workers=ahead) as pool:
        pending: deque = deque()
        it = iter(paths)
        for path in itertools.islice(it, ahead):
            pending.append(pool.submit(read_image, path))
        while pending:
            image = pending.popleft().result()
            for path in itertools.islice(it, 1):
                pending.append(pool.submit(read_image, path))
            yield image


def _run(estimator: Any, vs: ValSet, images, progress: Progress | None) -> ValReport:
    records: list[dict[str, Any]] = []
    people: dict[int, int] = {}
    nonfinite_values = nonfinite_images = 0
    model_s = 0.0
    start = time.perf_counter()
    for done, (item, image) in enumerate(
        zip(images, _prefetched([im.path for im in images]), strict=True), 1
    ):
        t0 = time.perf_counter()
        prepared = estimator.prepare(image)
        maps = estimator.infer(prepared)
        t1 = time.perf_counter()
        bad = _nonfinite(maps.heatmaps) + _nonfinite(maps.tags)  # before decode: it may consume them
        t2 = time.perf_counter()
        poses = estimator.decode(maps, prepared)
        model_s += (t1 - t0) + (time.perf_counter() - t2)
        nonfinite_values += bad
        nonfinite_images += bad > 0
        people[item.id] = len(poses)
        records.extend(official_records(item.id, vs.category_id, poses))
        if progress is not None:
            progress(done, len(images))
    loop_s = time.perf_counter() - start
    t0 = time.perf_counter()
    stats, summary = keypoint_stats(vs.data, records, vs.name, [im.id for im in images])
    eval_s = time.perf_counter() - t0
    return ValReport(
        dataset=vs.name,
        stats=stats,
        people_per_image=people,
        records=records,
        seconds={"total": loop_s + eval_s, "model": model_s, "evaluation": eval_s},
        nonfinite={"values": nonfinite_values, "images": nonfinite_images},
        summary=summary,
    )
