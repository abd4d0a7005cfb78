"""``hhrt video a b …`` and ``hhrt webcam --camera … --camera …``: several streams, one model (issue 11)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner
from video_helpers import assert_output_frames, decoded_frames, make_video, read_index, read_video

from hhrnet_rt.cli import app
from hhrnet_rt.cli.app import EXIT_INPUT
from hhrnet_rt.video.records import frames_of

runner = CliRunner()


@pytest.fixture(scope="module")
def clips(tmp_path_factory) -> list[Path]:
    folder = tmp_path_factory.mktemp("clips")
    return [make_video(folder / "a.mp4", 7), make_video(folder / "b.mp4", 11, width=192)]


def _invoke(args: list[str]):
    result = runner.invoke(app, args)
    assert "Traceback" not in result.output, result.output
    return result


def _jsonl(path: Path) -> list[dict]:
    return frames_of(json.loads(line) for line in path.read_text().splitlines())  # frame records


@pytest.mark.parametrize("batch", ["1", "4"])
def test_video_inputs_run_together_each_into_its_own_outputs(tmp_path, tiny, clips, batch):
    out, js = tmp_path / "videos", tmp_path / "keypoints"
    args = ["video", *map(str, clips), "--out", str(out), "--json", str(js), "--batch", batch, *tiny]
    if batch != "1":  # and the frames of a batch grouped side by side
        args += ["--decode-threads", "2"]
    result = _invoke(args)
    assert result.exit_code == 0, result.output
    for clip, n in zip(clips, (7, 11), strict=True):
        records = _jsonl(js / f"{clip.stem}.jsonl")
        assert [r["frame"] for r in records] == list(range(n))
        frames = read_video(out / f"{clip.stem}.mp4")[0]
        assert [read_index(f) for f in frames] == list(range(n))
        assert_output_frames(frames, decoded_frames(clip), records)
    # the summary: one row per stream and the aggregate
    assert "streams" in result.output and "a.mp4" in result.output and "b.mp4" in result.output
    assert "all" in result.output


def test_one_file_batched_keeps_every_frame_in_order(tmp_path, tiny, clips):
    js = tmp_path / "b.jsonl"
    result = _invoke(["video", str(clips[1]), "--json", str(js), "--out", str(tmp_path / "b.mp4"),
                      "--batch", "8", "--max-wait-ms", "200", "--verbose", *tiny])  # fmt: skip
    assert result.exit_code == 0, result.output
    assert [r["frame"] for r in _jsonl(js)] == list(range(11))
    assert "inference calls" in result.output  # more than one frame per call happened


def test_streams_option_runs_inputs_in_groups(tmp_path, tiny, clips):
    js = tmp_path / "k"
    result = _invoke(["video", *map(str, clips), "--json", str(js), "--out", str(tmp_path / "v"),
                      "--streams", "1", *tiny])  # fmt: skip
    assert result.exit_code == 0, result.output
    assert [len(_jsonl(js / f"{c.stem}.jsonl")) for c in clips] == [7, 11]
    assert "streams" not in result.output.split("\n")[-3:]  # one stream per run: no per-stream table


def test_webcam_several_cameras_record_one_file_each(tmp_path, tiny):
    live = [
        make_video(tmp_path / f"cam{k}.mp4", 20, fps=60, width=320 + 32 * k, height=240) for k in range(2)
    ]
    out, js = tmp_path / "rec", tmp_path / "kp"
    args = ["webcam", "--camera", str(live[0]), "--camera", str(live[1]), "--no-show",
            "--out", str(out), "--json", str(js), "--batch", "2", *tiny]  # fmt: skip
    result = _invoke(args)
    assert result.exit_code == 0, result.output
    for k, clip in enumerate(live):
        records = _jsonl(js / f"cam{k}.jsonl")
        indices = [r["frame"] for r in records]
        assert indices == sorted(set(indices)) and 1 <= len(indices) <= 20  # newest frame wins: gaps allowed
        frames = read_video(out / f"cam{k}.mp4")[0]
        assert all(f.shape[1] == 320 + 32 * k for f in frames)  # its own camera's frames only
        assert_output_frames(frames, decoded_frames(clip), records, skip_hud=True)


def test_webcam_several_cameras_need_folders(tmp_path, tiny):
    clip = make_video(tmp_path / "c.mp4", 3)
    result = _invoke(["webcam", "--camera", str(clip), "--camera", str(clip), "--no-show",
                      "--out", str(tmp_path / "one.mp4"), *tiny])  # fmt: skip
    assert result.exit_code == EXIT_INPUT
    assert "give a folder" in result.output


def test_track_gives_each_input_its_own_ids(tmp_path, tiny, monkeypatch):
    from hhrnet_rt.track.hook import TemporalSettings

    hooks = []
    real_hook = TemporalSettings.hook
    monkeypatch.setattr(TemporalSettings, "hook", lambda self: hooks.append(real_hook(self)) or hooks[-1])
    # The same clip twice, batched together: each input has its own tracker, so both files get the same
    # IDs, each input's from 0.
    folder = tmp_path / "in"
    folder.mkdir()
    clips = [make_video(folder / f"{name}.mp4", 6) for name in ("left", "right")]
    js = tmp_path / "kp"
    result = _invoke(["video", *map(str, clips), "--track", "--track-min-hits", "1", "--batch", "2",
                      "--json", str(js), "--out", str(tmp_path / "v"), *tiny])  # fmt: skip
    assert result.exit_code == 0, result.output
    assert len(hooks) == 2 and hooks[0] is not hooks[1]  # one tracker per input, none shared
    ids = [[[p["id"] for p in r["people"]] for r in _jsonl(js / f"{c.stem}.jsonl")] for c in clips]
    assert ids[0] == ids[1]
    assert any(frame for frame in ids[0]), "nobody was found: the IDs were not compared"
    assert min(i for frame in ids[0] for i in frame) == 0
