"""The --fast laptop preset: a smaller input and no flip test, an explicit --input-size still wins."""

from __future__ import annotations

import cv2
import numpy as np
from typer.testing import CliRunner

from hhrnet_rt.cli import app
from hhrnet_rt.runtime.config import FAST_INPUT_SIZE, EstimatorConfig, resolve

runner = CliRunner()


def _size_and_flip(**kwargs) -> tuple[int, bool]:
    resolution = resolve(EstimatorConfig(weights="random", **kwargs))
    return resolution.input_size, resolution.flip


def test_fast_preset_values():
    assert _size_and_flip(fast=False, flip=True) == (512, True)
    assert _size_and_flip(fast=True, flip=True) == (FAST_INPUT_SIZE, False)
    assert _size_and_flip(fast=True, input_size=256, flip=True) == (256, False)
    assert FAST_INPUT_SIZE % 64 == 0 and FAST_INPUT_SIZE < 512


def _image_run(tmp_path, golden_dir, *extra):
    picture = tmp_path / "p.png"
    cv2.imwrite(str(picture), np.full((120, 160, 3), 90, np.uint8))
    args = ["image", str(picture), "--out", str(tmp_path / "out"), "--weights", str(golden_dir / "tiny_model.npz"),
            "--backend", "torch", *extra]  # fmt: skip
    return runner.invoke(app, args)


def test_image_fast_uses_the_preset(tmp_path, golden_dir, one_torch_thread):
    result = _image_run(tmp_path, golden_dir, "--fast", "--input-size", "64")
    assert result.exit_code == 0, result.output
    assert "input_size 64" in result.output and "flip False" in result.output
    result = _image_run(tmp_path, golden_dir, "--fast", "--overwrite")  # the first run's p.png is there
    assert result.exit_code == 0, result.output
    assert f"input_size {FAST_INPUT_SIZE}" in result.output and "flip False" in result.output
