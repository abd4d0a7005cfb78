"""Files, round two (issue 19): planning that stays linear, names that fit the file system, temporaries a
dead run leaves, file names shown as themselves, and inputs that are read exactly.

Each test failed on the code before the issue's fixes (the issue's item number is in its docstring).
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner
from video_helpers import make_video

from hhrnet_rt.cli import app
from hhrnet_rt.cli.app import EXIT_INPUT
from hhrnet_rt.core.inputs import NAME_MAX

runner = CliRunner()
pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _invoke(args):
    result = runner.invoke(app, [str(a) for a in args])
    assert "Traceback" not in result.output, result.output
    return result


# -- item 22: planning is linear ------------------------------------------------------------------------


def test_planning_looks_at_each_input_once(tmp_path, monkeypatch):
    """Item 22: every output was checked against every input (``samefile``: two stats per pair), so
    1,000 inputs took seconds and 4,000 a minute before the first frame. Counted, not timed: the stat
    calls of planning 300 inputs stay a small multiple of 300 (the old code made 180,000)."""
    from hhrnet_rt.cli.inputs_expand import expand_videos
    from hhrnet_rt.cli.targets import plan_video_outputs

    folder = tmp_path / "in"
    folder.mkdir()
    for i in range(300):
        (folder / f"c{i:03d}.mp4").touch()
    sources = expand_videos([str(folder)])
    calls = 0
    real_stat = os.stat

    def counting_stat(*args, **kwargs):
        nonlocal calls
        calls += 1
        return real_stat(*args, **kwargs)

    monkeypatch.setattr(os, "stat", counting_stat)
    plan = plan_video_outputs(
        sources, tmp_path / "out", tmp_path / "out", None, run_dir=None, overwrite=False
    )
    monkeypatch.undo()
    assert len(plan) == 300
    assert calls < 20 * 300, f"{calls} stat calls for 300 inputs: planning is not linear"


# -- items 6 and 7: names that fit -------------------------------------------------------------------------


def test_temporary_names_fit_any_final_name_the_file_system_takes():
    """Items 6/7: a temporary was named ``.NAME.<tag>.part...``, 15-30 bytes longer than NAME, so a legal
    230-250 byte output name made its temporary impossible (ENAMETOOLONG after the model had loaded)."""
    from hhrnet_rt.core import temporaries

    final = Path("/somewhere") / ("é" * 120 + ".coco.json")  # 250 bytes, two-byte characters
    assert len(os.fsencode(final.name)) == 250
    for tag in (temporaries.process_tag(), "0123456789ab"):
        temp = temporaries.temporary_name(final, tag)
        assert temp.parent == final.parent and temp.name.startswith(".") and temp.suffix == ".json"
        assert len(os.fsencode(temp.name)) <= NAME_MAX
        assert temp.name.encode().decode("utf-8")  # never cut inside a character
        assert temporaries.is_temporary(temp)


def test_long_input_names_work_or_are_refused_before_anything_is_written(tmp_path, tiny):
    """Item 7: a ~245-byte input name with ``--coco <folder>`` ended in a traceback after the model
    loaded (the COCO temporary's name was too long) and left an empty .jsonl that blocked the next run.
    Now a name whose outputs fit works, and one whose derived names do not is refused at planning, with
    nothing created."""
    fits = make_video(tmp_path / ("a" * 241 + ".mp4"), 2, width=64, height=64)  # 245 bytes
    out = tmp_path / "out"
    result = _invoke(["video", fits, *tiny, "--json", out, "--coco", out, "--out", out])
    assert result.exit_code == 0, result.output
    coco = out / ("a" * 241 + ".coco.json")  # 251 bytes
    assert isinstance(json.loads(coco.read_text()), list)
    assert not [p for p in out.iterdir() if p.name.startswith(".")], "no temporary may be left"

    too_long = make_video(tmp_path / ("b" * 246 + ".mp4"), 2, width=64, height=64)  # .coco.json: 256 bytes
    other = tmp_path / "other"
    result = _invoke(["video", too_long, *tiny, "--json", other, "--coco", other])
    assert result.exit_code == EXIT_INPUT, result.output
    assert "bytes" in result.output and "COCO" in result.output
    assert not other.exists() or list(other.iterdir()) == [], "planning refused it: nothing may be created"


# -- item 21: temporaries of a dead run ------------------------------------------------------------------


def _age(path: Path, seconds: float) -> None:  # as if written that long ago
    then = time.time() - seconds
    os.utime(path, (then, then))


def test_stale_temporaries_are_those_of_dead_or_long_silent_runs(tmp_path):
    """Item 21: what a killed run leaves is recognised by name, age and (where named) its process."""
    from hhrnet_rt.core import temporaries

    final = tmp_path / "clip.mp4"
    dead = temporaries.temporary_name(final, "p999999999-0badf00d")  # no such process
    mine = temporaries.temporary_name(final, temporaries.process_tag())  # this live process
    ray_run = temporaries.temporary_name(final, "0123456789ab")
    users = tmp_path / ".clip.mp4.part"  # not hhrt's naming: never touched
    for path in (dead, mine, ray_run, users):
        path.write_bytes(b"x")
    assert temporaries.stale_temporaries(tmp_path) == []  # all fresh: a live run may still write them
    for path in (dead, mine, ray_run, users):
        _age(path, temporaries.STALE_AFTER_S + 60)
    assert set(temporaries.stale_temporaries(tmp_path)) == {dead, ray_run}
    assert set(temporaries.remove_stale_temporaries({tmp_path})) == {dead, ray_run}
    assert mine.exists() and users.exists()


# -- item 23: names are not markup -------------------------------------------------------------------------


def test_file_names_show_as_themselves_in_tables(tmp_path, tiny, monkeypatch):
    """Item 23: Rich read file names as markup, so ``[a]b.png`` showed as ``b.png``."""
    import cv2

    monkeypatch.chdir(tmp_path)
    cv2.imwrite("[a]b.png", np.full((64, 64, 3), 90, np.uint8))
    make_video(tmp_path / "[v]w.mp4", 2, width=64, height=64)
    result = _invoke(["image", "[a]b.png", *tiny, "--out", "annotated"])
    assert result.exit_code == 0, result.output
    assert "[a]b.png" in result.output
    result = _invoke(["video", "[v]w.mp4", *tiny, "--out", "v.mp4"])
    assert result.exit_code == 0, result.output
    assert "[v]w" in result.output


# -- item 14: folders that cannot be listed -----------------------------------------------------------------


@pytest.mark.parametrize("where", ["top", "inside"])
def test_a_folder_that_cannot_be_listed_is_said_not_skipped(tmp_path, monkeypatch, where):
    """Item 14: ``--recursive`` skipped folders it could not list (exit 0 with fewer results), and a
    top folder it could not list "holds no image files". (Simulated: root lists any folder.)"""
    import cv2

    top = tmp_path / "photos"
    locked = top / "locked" if where == "inside" else top
    locked.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(top / "a.png"), np.full((64, 64, 3), 90, np.uint8))
    real_scandir = os.scandir

    def scandir(path="."):
        if os.fspath(path) == str(locked):
            raise PermissionError(13, "Permission denied", str(locked))
        return real_scandir(path)

    monkeypatch.setattr(os, "scandir", scandir)
    result = _invoke(["image", top, "--recursive", "--out", tmp_path / "out"])
    assert result.exit_code == EXIT_INPUT, result.output
    assert f"cannot list folder {locked}: Permission denied" in result.output
    assert "holds no image files" not in result.output


# -- item 17: duplicate or backwards timestamps ---------------------------------------------------------------


def test_json_and_mp4_timestamps_agree_when_the_input_repeats_or_goes_back(tmp_path, monkeypatch):
    """Item 17: with duplicate or backwards input pts the mp4 nudged its pts (it must increase) while the
    JSON kept the raw times, so the two no longer agreed (README promises they do). One rule now decides
    both: strictly increasing, a frame not after the previous one gets the previous time plus one tick."""
    import av

    from hhrnet_rt.poses import Poses
    from hhrnet_rt.video import FileSource, JsonLinesSink, Mp4Sink
    from hhrnet_rt.video.sinks import FrameResult

    clip = make_video(tmp_path / "in.mp4", 6, width=64, height=64)
    source = FileSource(clip)
    tick = float(source.time_base)
    raw = [0.04, 0.04, 0.02, 0.12, 0.16]  # after the first frame (read at open): a duplicate, a step back
    real = source._next_image
    monkeypatch.setattr(source, "_next_image", lambda: (lambda item: item and (raw.pop(0), item[1]))(real()))
    mp4 = Mp4Sink(
        tmp_path / "out.mp4", source.fps, rate=source.rate, timestamps="capture", time_base=source.time_base
    )
    jsonl = JsonLinesSink(tmp_path / "out.jsonl")
    while (frame := source.read()) is not None:
        result = FrameResult(frame, Poses.empty(17), frame.image, 0.0)
        mp4.write(result)
        jsonl.write(result)
    mp4.close()
    jsonl.close()
    source.close()
    times = [json.loads(line)["timestamp"] for line in (tmp_path / "out.jsonl").read_text().splitlines()]
    assert times == sorted(set(times)) and len(times) == 6, times
    assert times[:4] == [
        0.0,
        0.04,
        pytest.approx(0.04 + tick, abs=1e-6),
        pytest.approx(0.04 + 2 * tick, abs=1e-6),
    ]
    with av.open(str(tmp_path / "out.mp4")) as container:
        stream = container.streams.video[0]
        pts = sorted(float(f.pts * stream.time_base) for f in container.decode(stream))
    assert pts == pytest.approx([t - times[0] for t in times], abs=1e-3)


# -- item 13: --skip-existing -----------------------------------------------------------------------------------


def test_image_skip_existing_resumes_an_interrupted_batch(tmp_path, tiny):
    """Item 13: a batch job stopped half-way had to start again (or refuse: "already exists").
    ``--skip-existing`` skips the inputs whose outputs are complete (checked, not only present), and an
    output that is present but damaged is redone only with --overwrite."""
    import cv2

    photos = tmp_path / "photos"
    photos.mkdir()
    for name in ("a", "b", "c"):
        cv2.imwrite(str(photos / f"{name}.png"), np.full((64, 64, 3), 90, np.uint8))
    out = tmp_path / "out"
    first = _invoke(["image", photos / "a.png", photos / "b.png", *tiny, "--out", out, "--json"])
    assert first.exit_code == 0, first.output
    done = {p.name: p.stat().st_mtime_ns for p in out.iterdir()}
    (out / "b.json").write_text('{"schema": "hhrnet-rt/keypoints/1", "peo')  # a damaged copy
    resumed = _invoke(["image", photos, *tiny, "--out", out, "--json", "--skip-existing"])
    assert resumed.exit_code == EXIT_INPUT, resumed.output
    assert "b.png" in resumed.output and "not complete" in resumed.output and "--overwrite" in resumed.output
    resumed = _invoke(["image", photos, *tiny, "--out", out, "--json", "--skip-existing", "--overwrite"])
    assert resumed.exit_code == 0, resumed.output
    assert "skipping 1 of 3 images" in resumed.output
    assert (out / "a.png").stat().st_mtime_ns == done["a.png"], "a complete output is not redone"
    assert json.loads((out / "b.json").read_text())["people"] is not None
    assert (out / "c.png").exists() and (out / "c.json").exists()


# -- item 16: --ray results that could not be published -------------------------------------------------------


def test_a_ray_output_that_cannot_be_published_does_not_keep_the_others_back(tmp_path):
    """Item 16: one output of a --ray video that could not be published stopped the others from being
    published, and the message named a temporary already gone. Now the others are published and the
    message names where the results are (a temporary that exists)."""
    from hhrnet_rt.cluster.video_task import FileReport, VideoJob, _publish, temporary_path
    from hhrnet_rt.core.errors import InputError

    out = tmp_path / "out"
    out.mkdir()
    job = VideoJob(0, "clip.mp4", {"coco": str(out / "clip.coco.json"), "json": str(out / "clip.jsonl")},
                   run_id="0123456789ab", overwrite=False)  # fmt: skip
    temps = {key: temporary_path(final, job.run_id) for key, final in job.outputs.items()}
    temps["json"].write_text('{"frame": 0}\n')
    temps["coco"].write_text("[]")
    (out / "clip.coco.json").mkdir()  # the name was taken during the run
    report = FileReport(0, "clip.mp4", frames_read=5, frames_written=5)
    with pytest.raises(InputError) as failed:
        _publish(job, temps, report)
    assert (
        report.published == [str(out / "clip.jsonl")] and (out / "clip.jsonl").read_text() == '{"frame": 0}\n'
    )
    assert f"the results are in {temps['coco']}" in str(failed.value) and temps["coco"].exists()


def test_video_skip_existing_skips_complete_outputs_and_redoes_cut_ones(tmp_path, tiny):
    """Item 13 (video): ``--skip-existing`` skips a video whose mp4 and JSON lines hold every frame,
    and one whose JSON lines were cut short (an interrupted run) is redone with --overwrite."""
    done = make_video(tmp_path / "done.mp4", 3, width=64, height=64)
    cut = make_video(tmp_path / "cut.mp4", 3, width=64, height=64)
    out = tmp_path / "out"
    first = _invoke(["video", done, cut, *tiny, "--out", out, "--json", out])
    assert first.exit_code == 0, first.output
    kept = (out / "done.mp4").stat().st_mtime_ns
    lines = (out / "cut.jsonl").read_text().splitlines()
    (out / "cut.jsonl").write_text(lines[0] + "\n")  # as an interrupted run leaves it
    refused = _invoke(["video", done, cut, *tiny, "--out", out, "--json", out, "--skip-existing"])
    assert (
        refused.exit_code == EXIT_INPUT and "cut.mp4" in refused.output and "not complete" in refused.output
    )
    again = _invoke(
        ["video", done, cut, *tiny, "--out", out, "--json", out, "--skip-existing", "--overwrite"]
    )
    assert again.exit_code == 0, again.output
    assert "skipping 1 of 2 videos" in again.output
    assert (out / "done.mp4").stat().st_mtime_ns == kept
    assert len((out / "cut.jsonl").read_text().splitlines()) == 3
