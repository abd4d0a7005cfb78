"""Certified accuracy: COCO / CrowdPose keypoint AP of any estimator, by the official protocol.

>>> from hhrnet_rt.val import evaluate                                              # doctest: +SKIP
>>> evaluate(PoseEstimator("w32_512"), "val2017", "person_keypoints_val2017.json").stats["AP"]  # doctest: +SKIP
"""

from __future__ import annotations

from hhrnet_rt.val.dataset import DATASETS, load_set
from hhrnet_rt.val.report import ValReport
from hhrnet_rt.val.run import evaluate, official_records

__all__ = ["DATASETS", "ValReport", "evaluate", "load_set", "official_records"]
