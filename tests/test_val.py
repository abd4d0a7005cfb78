"""hhrnet_rt.val.evaluate and `hhrt val`: the official records and pycocotools' AP of any estimator.

The oracle network (tests/val_oracle.py) renders ideal maps from the ground truth of real COCO val2017
photos (tests/data/val, from MMPose's test data; see its README): the whole pipeline (preprocessing,
network wrapper, decode, back-projection, records, pycocotools) must then score AP 1.000; a perturbed
oracle's AP must equal pycocotools run on its own on the results file hhrt wrote.
"""

from __future__ import annotations

import contextlib
import io
import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner
from val_oracle import Oracle, ground_truth

from hhrnet_rt.cli import app
from hhrnet_rt.core.errors import InputError
from hhrnet_rt.runtime.estimator import PoseEstimator
from hhrnet_rt.val import evaluate
from hhrnet_rt.val.metrics import COCO_STATS

DATA = Path(__file__).parent / "data" / "val"
COCO_DIR = DATA / "coco"
COCO_ANN = COCO_DIR / "test_coco.json"


@pytest.fixture(scope="module")
def coco_truth():
    return ground_truth(COCO_DIR, COCO_ANN)


@pytest.fixture(scope="module")
def perturbed_report(coco_truth):
    est = PoseEstimator(weights=Oracle(coco_truth, jitter=3.0, seed=1), flip=False)
    return evaluate(est, COCO_DIR, COCO_ANN)


def test_oracle_scores_ap_one_on_real_photos(coco_truth):
    est = PoseEstimator(weights=Oracle(coco_truth), flip=False)
    report = evaluate(est, COCO_DIR, COCO_ANN)
    assert list(report.stats) == list(COCO_STATS)
    assert all(v == 1.0 for v in report.stats.values()), report.stats
    # Every labelled person found once, nobody else: people per image = annotated people with joints.
    assert report.people_per_image == {785: 1, 40083: 2, 196141: 4, 197388: 5}
    assert report.nonfinite == {"values": 0, "images": 0}


def test_perturbed_oracle_equals_pycocotools_on_the_written_file(perturbed_report, tmp_path):
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    assert 0.3 < perturbed_report.stats["AP"] < 0.95  # a real test of the scoring, not all-or-nothing
    results = tmp_path / "results.json"
    results.write_text(json.dumps(perturbed_report.records))
    with contextlib.redirect_stdout(io.StringIO()):
        gt = COCO(str(COCO_ANN))
        ev = COCOeval(gt, gt.loadRes(str(results)), "keypoints")
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    assert list(perturbed_report.stats.values()) == [float(v) for v in ev.stats]


def test_records_follow_the_official_format(perturbed_report):
    rec = perturbed_report.records[0]
    assert set(rec) == {"image_id", "category_id", "keypoints", "score", "bbox"}
    kp = np.array(rec["keypoints"]).reshape(17, 3)
    # The official person score: the mean of the joint scores (before refine, which adds none here).
    assert rec["score"] == pytest.approx(float(np.float32(kp[:, 2].astype(np.float32).mean())), rel=1e-6)
    assert rec["category_id"] == 1 and rec["image_id"] == 785


def test_max_images_scores_only_the_evaluated_images(coco_truth):
    est = PoseEstimator(weights=Oracle(coco_truth, input_size=256), flip=False, input_size=256)
    report = evaluate(est, COCO_DIR, COCO_ANN, max_images=2)
    assert report.people_per_image == {785: 1, 40083: 2}
    assert report.stats["AR50"] == 1.0  # the other images' people are not counted as missed


def test_no_people_anywhere_scores_zero(tiny_estimator, tmp_path):
    data = json.loads(COCO_ANN.read_text())
    data["images"] = data["images"][:1]
    data["annotations"] = [a for a in data["annotations"] if a["image_id"] == data["images"][0]["id"]]
    ann = tmp_path / "one.json"
    ann.write_text(json.dumps(data))

    class Nobody:
        num_joints = 17

        def __init__(self, est):
            self.est = est

        def prepare(self, image):
            return self.est.prepare(image)

        def infer(self, prepared):
            maps = self.est.infer(prepared)
            maps.heatmaps[...] = 0.0
            return maps

        def decode(self, maps, prepared):
            return self.est.decode(maps, prepared)

    report = evaluate(Nobody(tiny_estimator(input_size=64, flip=False)), COCO_DIR, ann)
    assert report.records == [] and report.stats["AP"] == 0.0 and report.stats["AR"] == 0.0


@pytest.mark.parametrize(
    "change, message",
    [
        (lambda d: d["images"][0].update(file_name="../secret.jpg"), "plain file name"),
        (lambda d: d.pop("annotations"), "no 'annotations' list"),
        (lambda d: d["annotations"][0].update(keypoints=[1, 2]), "malformed"),
        (lambda d: d["categories"][0].update(keypoints=["a"] * 5), "5 keypoints"),
    ],
)
def test_bad_annotation_files_are_refused(tmp_path, change, message):
    data = json.loads(COCO_ANN.read_text())
    change(data)
    ann = tmp_path / "bad.json"
    ann.write_text(json.dumps(data))
    with pytest.raises(InputError, match=message):
        evaluate(object(), COCO_DIR, ann)


def test_joint_count_mismatch_is_refused(tiny_estimator):
    with pytest.raises(InputError, match="crowdpose"):
        evaluate(
            tiny_estimator(input_size=64, flip=False),
            DATA / "crowdpose",
            DATA / "crowdpose" / "test_crowdpose.json",
        )


def test_cli_writes_report_and_results_and_refuses_to_overwrite(tiny, tmp_path):
    report, results = tmp_path / "report.json", tmp_path / "results.json"
    args = ["val", "--images", str(COCO_DIR), "--annotations", str(COCO_ANN), *tiny, "--no-flip",
            "--max-images", "1", "--json", str(report), "--results", str(results)]  # fmt: skip
    r = CliRunner().invoke(app, args)
    assert r.exit_code == 0, r.output
    assert "| Arch | AP | Ap .5 | AP .75 | AP (M) | AP (L) | AR |" in r.output
    assert "NaN/inf in the network outputs: 0 values" in r.output
    facts = json.loads(report.read_text())
    assert facts["images"] == 1 and set(facts["stats"]) == set(COCO_STATS)
    assert len(json.loads(results.read_text())) == facts["people"]
    before = results.read_bytes()
    r = CliRunner().invoke(app, args)
    assert r.exit_code == 2 and "exists" in r.output and results.read_bytes() == before


def test_cli_bad_input_is_one_line(tmp_path, tiny):
    r = CliRunner().invoke(
        app, ["val", "--images", str(tmp_path), "--annotations", str(tmp_path / "x.json"), *tiny]
    )
    assert r.exit_code == 2 and "does not exist" in r.output and "Traceback" not in r.output


def test_cli_compare_table(tiny, tiny_onnx_build, tmp_path):
    report = tmp_path / "compare.json"
    args = ["val", "--images", str(COCO_DIR), "--annotations", str(COCO_ANN), *tiny, "--no-flip",
            "--max-images", "1", "--compare", str(tiny_onnx_build.onnx_path), "--compare", "tensorrt",
            "--json", str(report)]  # fmt: skip
    r = CliRunner().invoke(app, args)
    assert r.exit_code == 0, r.output
    assert "hhrt val --compare" in r.output and "ΔAP" in r.output
    rows = json.loads(report.read_text())["compare"]
    assert [row["label"] for row in rows] == [tiny[1], str(tiny_onnx_build.onnx_path), "tensorrt"]
    assert rows[0]["dAP"] == 0.0 and rows[1]["AP"] == rows[0]["AP"]  # the same network, two runtimes
    assert "skipped" in rows[2] and "tensorrt" in r.output.lower()


def test_cli_compare_refuses_an_unknown_item(tiny):
    r = CliRunner().invoke(app, ["val", "--images", str(COCO_DIR), "--annotations", str(COCO_ANN), *tiny,
                                 "--compare", "cuda:fp64"])  # fmt: skip
    assert r.exit_code == 2 and "BACKEND[:PRECISION]" in r.output
