"""The exit-code table of docs/cli.md and the CLI agree; the TensorRT install hint names something that exists."""

from __future__ import annotations

import importlib
import re
from pathlib import Path

import cv2
import numpy as np
from typer.testing import CliRunner

from hhrnet_rt.cli import app

app_module = importlib.import_module("hhrnet_rt.cli.app")  # the package attribute `app` is the Typer object

README = Path(__file__).resolve().parents[1] / "docs" / "cli.md"  # README links to it
runner = CliRunner()


def readme_exit_codes() -> dict[int, str]:
    section = README.read_text(encoding="utf-8").split("## Exit codes", 1)[1].split("\n## ", 1)[0]
    return {int(code): meaning for code, meaning in re.findall(r"^\| (\d+) \| (.+) \|$", section, re.M)}


def test_readme_lists_every_exit_code_the_cli_uses():
    constants = {v for k, v in vars(app_module).items() if k.startswith("EXIT_")}
    assert constants, "no EXIT_* constants found"
    assert set(readme_exit_codes()) == constants


def test_backend_tensorrt_without_tensorrt_exits_5_as_documented(tmp_path, monkeypatch):
    import hhrnet_rt.runtime.backends.select as select

    monkeypatch.setattr(select, "tensorrt_available", lambda: False)
    picture = tmp_path / "p.png"
    cv2.imwrite(str(picture), np.zeros((32, 32, 3), np.uint8))
    result = runner.invoke(
        app, ["image", str(picture), "--out", str(tmp_path / "o"), "--backend", "tensorrt"]
    )
    assert result.exit_code == app_module.EXIT_TENSORRT_MISSING == 5, result.output
    assert "--backend tensorrt" in readme_exit_codes()[5]
    assert "pip install tensorrt" in result.output and 'pip install -e ".[tensorrt]"' in result.output
    assert "hhrnet-rt[tensorrt]" not in result.output  # not a published package
