"""hhrt's records and AP equal the official valid.py + Dataset.evaluate ones, from identical network outputs.

The fixtures (tests/data/val/parity, see its README) were made by running the official HigherHRNet code
and crowdposetools on the oracle network of tests/val_oracle.py; here the same oracle runs inside
hhrt's PoseEstimator, so any difference in preprocessing, aggregation, decoding (ties included),
back-projection, record writing or scoring shows as a difference in a number.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from val_oracle import Oracle, ground_truth

from hhrnet_rt.runtime.estimator import PoseEstimator
from hhrnet_rt.val import evaluate
from hhrnet_rt.val.metrics import OFFICIAL_NAMES

DATA = Path(__file__).parent / "data" / "val"
PARITY = DATA / "parity"
# case: (data folder, annotation file, test scales, oracle jitter, seed, levels)
CASES = {
    "coco_jitter": ("coco", "test_coco.json", (1.0,), 3.0, 1, 0),
    "coco_ties_multiscale": ("coco", "test_coco.json", (2.0, 1.0, 0.5), 2.0, 2, 16),
    "crowdpose_jitter": ("crowdpose", "test_crowdpose.json", (1.0,), 15.0, 3, 0),
}


def run_case(case: str, annotation: str | None = None):
    folder, ann, scales, jitter, seed, levels = CASES[case]
    images = DATA / folder
    oracle = Oracle(
        ground_truth(images, images / ann), jitter=jitter, seed=seed, scales=scales, levels=levels
    )
    estimator = PoseEstimator(weights=oracle, flip=False, scales=scales)
    return evaluate(estimator, images, images / (annotation or ann))


def official(case: str, name: str):
    return json.loads((PARITY / case / name).read_text())


@pytest.mark.parametrize("case", list(CASES))
def test_records_and_stats_equal_the_official_ones(case):
    report = run_case(case)
    assert report.records == official(case, "official_results.json")  # every number, in the same order
    stats = official(case, "official_stats.json")
    assert list(stats) == list(OFFICIAL_NAMES[report.dataset])
    assert list(report.stats.values()) == list(stats.values())


def test_crowdpose_easy_medium_hard_split_equals_crowdposetools():
    report = run_case("crowdpose_jitter", "test_crowdpose_split.json")
    stats = official("crowdpose_jitter", "crowdposetools_split_stats.json")
    assert list(report.stats.values()) == list(stats.values())
    assert report.stats["AP easy"] not in (-1.0, report.stats["AP hard"])  # both sides of the split used
