"""`hhrt build-engine --val-images/--val-annotations`: the AP gate, its sidecar record and its refusal.

Random weights score AP 0 whatever the build does, so a real AP drop cannot be made with them: the gate's
two estimators are replaced by the oracle network of tests/val_oracle.py (fp32: the exact oracle, AP
1.000; built: the same oracle damaged by large joint offsets), and everything else is the real command:
the build, the measurement on real photos, the sidecar, the renaming and the exit code.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner
from val_oracle import Oracle, ground_truth

from hhrnet_rt.artifacts.sidecar import Sidecar
from hhrnet_rt.cli import app
from hhrnet_rt.core.errors import EngineMismatchError
from hhrnet_rt.runtime.estimator import PoseEstimator
from hhrnet_rt.val import gate

COCO = Path(__file__).parent / "data" / "val" / "coco"
ANN = COCO / "test_coco.json"
runner = CliRunner()


@pytest.fixture(scope="module")
def oracles():
    truth = ground_truth(COCO, ANN)
    good = PoseEstimator(weights=Oracle(truth, input_size=128), flip=False, input_size=128)
    damaged = PoseEstimator(weights=Oracle(truth, input_size=128, jitter=8.0), flip=False, input_size=128)
    return good, damaged


def build(tmp_path, tiny_weights, *extra):
    args = ["build-engine", "--weights", str(tiny_weights), "--precision", "fp32", "--target", "cpu",
            "--input-size", "64", "--no-flip", "--out", str(tmp_path / "eng"),
            "--val-images", str(COCO), "--val-annotations", str(ANN), *extra]  # fmt: skip
    return runner.invoke(app, args)


def test_a_damaged_build_is_refused_and_kept_under_a_failed_name(
    tmp_path, tiny_weights, oracles, monkeypatch
):
    good, damaged = oracles
    monkeypatch.setattr(gate, "make_estimator", lambda which, *a: good if which == "fp32" else damaged)
    eng = tmp_path / "eng"
    eng.mkdir()
    # A file that already has the first failed name (an earlier refused build's, or the user's): kept.
    earlier = eng / "tiny_model-64-fp32-noflip.refused.json"
    earlier.write_text("keep")
    result = build(tmp_path, tiny_weights)
    assert result.exit_code == 10, result.output
    assert "build refused" in result.output and "Traceback" not in result.output
    stem = "tiny_model-64-fp32-noflip.refused-2"
    assert {p.name for p in eng.iterdir()} == {earlier.name, f"{stem}.json", f"{stem}.onnx"}
    assert earlier.read_text() == "keep"
    side = json.loads((eng / f"{stem}.json").read_text())
    acc = side["accuracy"]
    assert acc["ap_fp32"] == 1.0 and acc["passed"] is False and acc["ap_drop"] > 0.5
    assert side["onnx"]["file"] == f"{stem}.onnx" and side["name"] == stem
    # The renamed files still describe each other: info reads them, and shows the verdict.
    shown = runner.invoke(app, ["info", str(eng / f"{stem}.onnx")])
    assert shown.exit_code == 0 and "allowed" in shown.output and "AP 100.0 fp32" in shown.output


def test_the_real_estimators_measure_the_built_file(tmp_path, tiny_weights):
    """No stand-ins: the tiny model's fp32 torch run and its ONNX file on ONNX Runtime (random weights,
    so both score 0 and the note says the drop means nothing)."""
    result = build(tmp_path, tiny_weights, "--max-ap-drop", "0.25")
    assert result.exit_code == 0, result.output
    assert "accuracy AP 0.0 fp32 -> 0.0 built" in result.output
    acc = json.loads((tmp_path / "eng" / "tiny_model-64-fp32-noflip.json").read_text())["accuracy"]
    assert acc["images"] == 4 and acc["ap_drop"] == 0.0 and acc["passed"] is True
    assert acc["max_ap_drop"] == 0.25 and set(acc["stats_built"]) == set(acc["stats_fp32"])
    # The sidecar's schema check covers the new record: a malformed one is refused, not trusted.
    data = json.loads((tmp_path / "eng" / "tiny_model-64-fp32-noflip.json").read_text())
    Sidecar.from_dict(data)
    data["accuracy"]["passed"] = "yes"
    with pytest.raises(EngineMismatchError, match="accuracy"):
        Sidecar.from_dict(data)
    assert "says nothing about trained accuracy" in acc["note"]


def test_val_options_go_together_and_are_checked_before_building(tmp_path, tiny_weights):
    result = runner.invoke(app, ["build-engine", "--weights", str(tiny_weights), "--target", "cpu",
                                 "--precision", "fp32", "--out", str(tmp_path / "eng"), "--val-images", str(COCO)])  # fmt: skip
    assert result.exit_code == 2 and "go together" in result.output
    assert not (tmp_path / "eng").exists()
