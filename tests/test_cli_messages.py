"""What hhrt says while it works and when it is done: the summary a user reads first, --quiet and
--verbose, plain progress lines without a terminal, overlay options, and no empty folders after a failure.
"""

from __future__ import annotations

import io

import cv2
import pytest
from rich.console import Console
from typer.testing import CliRunner
from video_helpers import index_image, make_video

from hhrnet_rt.cli import app, progress
from hhrnet_rt.cli.app import EXIT_INPUT
from hhrnet_rt.cli.options_draw import overlay_style

runner = CliRunner()


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    return make_video(tmp_path_factory.mktemp("clip") / "walk.mp4", 3)


def _invoke(args):
    result = runner.invoke(app, args)
    assert "Traceback" not in result.output, result.output
    return result


def test_summary_leads_with_what_a_user_wants(tmp_path, tiny, clip):
    out = tmp_path / "o.mp4"
    result = _invoke(["video", str(clip), "--out", str(out), "--boxes", "--line-width", "3", *tiny])
    assert result.exit_code == 0, result.output
    table = result.stdout
    for row in ("frames", "end-to-end FPS", "people", "written"):
        assert row in table
    # the file written, by its whole path (folded over lines in the table's value column, never cut)
    value_column = "".join(line.split("│")[2].strip() for line in table.splitlines() if line.count("│") == 3)
    assert str(out) in value_column
    for detail in ("queue", "p50", "device→host", "preprocess"):  # stage internals only with --verbose
        assert detail not in table
    # stderr is no terminal here: progress comes as plain lines, no redrawn spinner.
    assert "loading the model..." in result.stderr and "\r" not in result.stderr


def test_quiet_says_nothing_but_writes(tmp_path, tiny, clip):
    out = tmp_path / "o.mp4"
    result = _invoke(["video", str(clip), "--out", str(out), "--quiet", *tiny])
    assert result.exit_code == 0, result.output
    assert out.is_file() and result.output.strip() == ""


def test_image_out_with_an_extension_writes_that_file(tmp_path, tiny):
    picture = tmp_path / "a.png"
    cv2.imwrite(str(picture), index_image(2, 128, 96))
    target = tmp_path / "b.jpg"
    result = _invoke(["image", str(picture), "--out", str(target), "--json", "--no-labels", *tiny])
    assert result.exit_code == 0, result.output
    assert target.is_file() and cv2.imread(str(target)).shape == (96, 128, 3)  # a file, not a folder
    assert (tmp_path / "b.json").is_file()
    second = tmp_path / "c.png"
    cv2.imwrite(str(second), index_image(3, 128, 96))
    result = _invoke(["image", str(picture), str(second), "--out", str(tmp_path / "d.jpg"), *tiny])
    assert result.exit_code == EXIT_INPUT and "names one image but 2 images" in result.output


def test_a_failed_run_leaves_no_empty_folders(tmp_path, tiny, clip, monkeypatch):
    monkeypatch.chdir(tmp_path)
    nested = tmp_path / "new" / "deeper"
    bad = ["--weights", str(tmp_path / "missing.pth"), "--backend", "torch", "--input-size", "64"]
    result = _invoke(["video", str(clip), "--out", str(nested / "o.mp4"), "--json", str(nested / "j" / "o.jsonl"),
                      *bad])  # fmt: skip
    assert result.exit_code != 0
    assert not (tmp_path / "new").exists()
    result = _invoke(["image", str(tmp_path / "nothing.png"), *tiny])  # no --out: runs/pose/N
    assert result.exit_code == EXIT_INPUT and not (tmp_path / "runs").exists()


def test_plain_progress_lines_with_time_left(monkeypatch):
    buffer = io.StringIO()
    monkeypatch.setattr(progress, "console", Console(file=buffer, force_terminal=False, width=200))
    with progress.bar("images") as bar:
        assert isinstance(bar, progress.PlainProgress)
        bar.every_s = 0.0
        task = bar.add_task("calibration", total=4)
        for _ in range(4):
            bar.update(task, advance=1)
    lines = buffer.getvalue().splitlines()
    assert lines[0].startswith("calibration: 1/4 images, about") and lines[0].endswith("left")
    assert lines[-1].startswith("calibration: 4/4 images, done in") and len(lines) == 4
    with progress.output_level(quiet=True):
        assert isinstance(progress.bar("images"), progress.Silent)
        progress.note("not shown")
        progress.warn("a warning still shows")
    assert "not shown" not in buffer.getvalue() and "warning: a warning still shows" in buffer.getvalue()


def test_show_below_draws_everyone():
    assert overlay_style(None, True, False, show_below=True).person_threshold is None
    assert overlay_style(4, False, True, show_below=False).person_threshold == 0.1
