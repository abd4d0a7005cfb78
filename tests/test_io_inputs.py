"""Inputs as users type them (files, folders, globs, URLs) and where outputs go (run folders, per-input
targets), without a model: the parts ``hhrt image``/``hhrt video`` call before anything loads."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from hhrnet_rt.cli.inputs_expand import expand_images, expand_videos
from hhrnet_rt.cli.targets import plan_video_outputs
from hhrnet_rt.core.errors import InputError
from hhrnet_rt.core.runs import new_run_dir, remove_if_empty


def _touch(*paths: Path) -> None:
    for path in paths:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"x")


@pytest.fixture
def tree(tmp_path, monkeypatch) -> Path:
    """photos/{b.JPG, a.png, notes.txt, .hidden.jpg, sub/c.jpg, sub/deeper/d.webp}, cwd = tmp_path."""
    photos = tmp_path / "photos"
    _touch(photos / "b.JPG", photos / "a.png", photos / "notes.txt", photos / ".hidden.jpg")
    _touch(photos / "sub" / "c.jpg", photos / "sub" / "deeper" / "d.webp")
    monkeypatch.chdir(tmp_path)
    return photos


def test_folder_gives_its_images_sorted_and_filtered(tree):
    assert expand_images(["photos"]) == [Path("photos/a.png"), Path("photos/b.JPG")]


def test_recursive_folder(tree):
    found = expand_images(["photos"], recursive=True)
    assert found == [Path(p) for p in ("photos/a.png", "photos/b.JPG", "photos/sub/c.jpg",
                                       "photos/sub/deeper/d.webp")]  # fmt: skip


def test_folder_without_images_is_an_error_that_suggests_recursive(tmp_path, monkeypatch):
    _touch(tmp_path / "only_sub" / "x" / "a.jpg")
    monkeypatch.chdir(tmp_path)
    with pytest.raises(InputError, match="holds no image files.*--recursive"):
        expand_images(["only_sub"])
    assert expand_images(["only_sub"], recursive=True) == [Path("only_sub/x/a.jpg")]


def test_glob_patterns(tree):
    assert expand_images(["photos/*.png"]) == [Path("photos/a.png")]
    assert expand_images(["photos/**/*.jpg"], recursive=True) == [Path("photos/sub/c.jpg")]
    with pytest.raises(InputError, match="no file matches"):
        expand_images(["photos/*.gif"])


def test_a_file_whose_name_looks_like_a_pattern_is_that_file(tmp_path, monkeypatch):
    _touch(tmp_path / "[1].jpg")
    monkeypatch.chdir(tmp_path)
    assert expand_images(["[1].jpg"]) == [Path("[1].jpg")]


def test_files_are_kept_as_given_and_duplicates_dropped(tree):
    given = ["photos/notes.txt", "photos/a.png", "photos/*.png", "missing.jpg"]
    # notes.txt and missing.jpg are kept: the image check that follows says precisely what is wrong
    assert expand_images(given) == [Path("photos/notes.txt"), Path("photos/a.png"), Path("missing.jpg")]


def test_earlier_results_in_the_run_folder_are_not_inputs(tree):
    _touch(Path("runs/pose/1/a.png"))
    assert expand_images(["."], recursive=True) == [Path(p) for p in (
        "./photos/a.png", "./photos/b.JPG", "./photos/sub/c.jpg", "./photos/sub/deeper/d.webp")]  # fmt: skip


def test_videos_urls_folders_and_globs(tmp_path, monkeypatch):
    _touch(tmp_path / "v" / "b.mp4", tmp_path / "v" / "a.MKV", tmp_path / "v" / "a.jpg")
    monkeypatch.chdir(tmp_path)
    url = "rtsp://127.0.0.1:8554/cam"
    got = expand_videos([url, "v", "v/*.mp4", "HTTPS://127.0.0.1/x.mp4"])
    assert got == [url, Path("v/a.MKV"), Path("v/b.mp4"), "HTTPS://127.0.0.1/x.mp4"]


def test_run_folders_are_numbered_and_never_reused(tmp_path):
    root = tmp_path / "runs" / "pose"
    assert new_run_dir(root) == root / "1"
    (root / "7").mkdir()
    (root / "notes").mkdir()
    assert new_run_dir(root) == root / "8"
    (root / "9").write_text("a file of the user's")
    assert new_run_dir(root) == root / "10"
    assert (root / "9").read_text() == "a file of the user's"


def test_run_folder_root_that_is_a_file(tmp_path):
    (tmp_path / "runs").write_text("x")
    with pytest.raises(InputError, match="cannot create a run folder|existing file"):
        new_run_dir(tmp_path / "runs" / "pose")


def test_remove_if_empty_keeps_a_folder_with_files(tmp_path):
    run = new_run_dir(tmp_path)
    (run / "a.mp4").write_bytes(b"x")
    remove_if_empty(run)
    assert (run / "a.mp4").exists()
    (run / "a.mp4").unlink()
    remove_if_empty(run)
    assert not run.exists()


def test_video_targets_per_input_in_folders(tmp_path):
    clips = [tmp_path / "a" / "x.mp4", tmp_path / "b" / "x.mp4"]
    _touch(*clips)
    plan = plan_video_outputs([*clips, "http://127.0.0.1/s/live.ts?k=1"], tmp_path / "out",
                              tmp_path / "kp", None, run_dir=None, overwrite=False)  # fmt: skip
    assert [t.video.name for t in plan] == ["x.mp4", "x_1.mp4", "live.mp4"]
    assert [t.json.name for t in plan] == ["x.jsonl", "x_1.jsonl", "live.jsonl"]
    assert all(t.coco is None for t in plan) and (tmp_path / "kp").is_dir()


def test_one_output_file_for_several_inputs_is_refused(tmp_path):
    clips = [tmp_path / "a.mp4", tmp_path / "b.mp4"]
    _touch(*clips)
    with pytest.raises(InputError, match="--json .*2 inputs.*folder"):
        plan_video_outputs(clips, tmp_path / "o", tmp_path / "k.jsonl", None, run_dir=None, overwrite=False)


def test_video_targets_never_overwrite(tmp_path):
    clip = tmp_path / "a.mp4"
    _touch(clip, tmp_path / "out" / "a.mp4")
    with pytest.raises(InputError, match="already exists"):
        plan_video_outputs([clip], tmp_path / "out", None, None, run_dir=None, overwrite=False)
    with pytest.raises(InputError, match="input file"):  # --out the inputs' own folder
        plan_video_outputs([clip], tmp_path, None, None, run_dir=None, overwrite=True)
    run = new_run_dir(tmp_path / "runs")
    (plan,) = plan_video_outputs([clip], None, None, None, run_dir=run, overwrite=False)
    assert plan.video == run / "a.mp4" and os.listdir(run) == []  # planned, nothing written yet
