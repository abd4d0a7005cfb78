"""Outputs never destroy anything they did not create, and a full disk leaves usable files.

Sink level (library) and command level (``hhrt video`` / ``hhrt image``): existing files need
``--overwrite``, the input is never an output, COCO results are streamed to a temporary file and renamed,
a full disk is a clear DiskFullError (exit 8) with whole JSON lines and a playable mp4. The full disk is
real where the tests may mount a small tmpfs (root), and simulated by a failing write otherwise.
"""

from __future__ import annotations

import errno
import json
import os
import subprocess
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner
from video_helpers import FakeEstimator, PacedSource, index_image, make_video, read_index, read_video

from hhrnet_rt.cli import app
from hhrnet_rt.cli.app import EXIT_DISK_FULL, EXIT_INPUT
from hhrnet_rt.core.errors import DiskFullError, InputError
from hhrnet_rt.core.outputs import RecordFile
from hhrnet_rt.poses import Poses
from hhrnet_rt.video import CocoSink, Frame, FrameResult, JsonLinesSink, Mp4Sink, coco_records, run_pipeline
from hhrnet_rt.video import sinks as sinks_module
from hhrnet_rt.video.records import frames_of

runner = CliRunner()
OLD = b"the user's own file, not ours\n"


def _result(i: int, people: int = 1) -> FrameResult:
    image = index_image(i)
    keypoints = FakeEstimator().decode(None, {"index": i}).keypoints.repeat(people, axis=0)
    poses = Poses(keypoints, np.full(people, 0.5, np.float32)) if people else Poses.empty(17)
    return FrameResult(Frame(i, i / 25, image, 0.0), poses, image, 0.0)


def _jsonl(path: Path) -> list[dict]:
    data = path.read_bytes()
    assert data == b"" or data.endswith(b"\n"), "the last line is cut"
    return frames_of(json.loads(line) for line in data.decode().splitlines())  # frame records


def _invoke(args: list[str]):
    result = runner.invoke(app, args)
    assert "Traceback" not in result.output, result.output
    return result


# -- existing files: never replaced without consent; never removed unless this run created them ---------


@pytest.mark.parametrize(
    ("name", "make"),
    [
        ("keep.mp4", lambda p, ow: Mp4Sink(p, 30, overwrite=ow)),
        ("keep.jsonl", lambda p, ow: JsonLinesSink(p, overwrite=ow)),
        ("keep.json", lambda p, ow: CocoSink(p, overwrite=ow)),
    ],
)
def test_sink_refuses_an_existing_file(tmp_path, name, make):
    target = tmp_path / name
    target.write_bytes(OLD)
    with pytest.raises(InputError, match="already exists; add overwrite=True"):
        make(target, False)
    assert target.read_bytes() == OLD


@pytest.mark.parametrize(
    ("name", "make"),
    [
        ("keep.mp4", lambda p: Mp4Sink(p, 30, overwrite=True)),
        ("keep.jsonl", lambda p: JsonLinesSink(p, overwrite=True)),
        ("keep.json", lambda p: CocoSink(p, overwrite=True)),
    ],
)
def test_sink_without_frames_leaves_an_existing_file_alone(tmp_path, name, make):
    target = tmp_path / name
    target.write_bytes(OLD)
    make(target).close()  # consent to replace, but the run wrote nothing (e.g. it failed at once)
    assert target.read_bytes() == OLD
    assert [p.name for p in tmp_path.iterdir()] == [name]  # and no temporary file is left behind


def test_an_empty_run_still_leaves_valid_new_files(tmp_path):
    for sink in (
        Mp4Sink(tmp_path / "o.mp4", 30),
        JsonLinesSink(tmp_path / "o.jsonl"),
        CocoSink(tmp_path / "o.json"),
    ):
        sink.close()
    assert not (tmp_path / "o.mp4").exists()  # an mp4 without frames plays nowhere
    assert (tmp_path / "o.jsonl").read_bytes() == b""
    assert json.loads((tmp_path / "o.json").read_text()) == []
    assert sorted(p.name for p in tmp_path.iterdir()) == ["o.json", "o.jsonl"]


def test_coco_file_gets_the_usual_permissions(tmp_path):
    sink = CocoSink(tmp_path / "o.json")
    sink.write(_result(0))
    sink.close()
    probe = tmp_path / "probe"
    probe.write_text("")  # created the ordinary way: what the umask gives
    assert (tmp_path / "o.json").stat().st_mode == probe.stat().st_mode


def test_mp4_sink_removes_only_its_own_empty_file(tmp_path):
    sink = Mp4Sink(tmp_path / "o.mp4", 30)
    sink._open(160, 120)  # created the file, then no frame came (the encoder failed on the first one)
    assert (tmp_path / "o.mp4").exists()
    sink.close()
    assert not (tmp_path / "o.mp4").exists()


def test_overwrite_replaces_the_name_not_a_hard_linked_twin(tmp_path):
    target, twin = tmp_path / "o.jsonl", tmp_path / "twin.jsonl"
    target.write_bytes(OLD)
    os.link(target, twin)
    sink = JsonLinesSink(target, overwrite=True)
    sink.write(_result(0))
    sink.close()
    assert [r["frame"] for r in _jsonl(target)] == [0]
    assert twin.read_bytes() == OLD


def test_coco_is_streamed_to_a_temporary_file_and_renamed_at_close(tmp_path):
    target = tmp_path / "o.json"
    sink = CocoSink(target)
    sizes = []
    for i in range(5):
        sink.write(_result(i, people=i % 3))  # frames with 0, 1, 2, 0 and 1 people
        sizes.append(sink._file.size)
    assert not target.exists()  # the name appears only with a whole file behind it
    temporary = sink._file.path
    assert temporary.parent == tmp_path and temporary.stat().st_size == sizes[-1]
    assert sizes[0] == 0 and sizes[1] < sizes[2] == sizes[3] < sizes[4]  # on disk as they come
    sink.close()
    assert not temporary.exists()
    expected = [rec for i in range(5) for rec in coco_records(i, _result(i, people=i % 3).poses)]
    assert json.loads(target.read_text()) == json.loads(json.dumps(expected))


def test_coco_with_no_people_is_an_empty_list(tmp_path):
    sink = CocoSink(tmp_path / "o.json")
    sink.write(_result(0, people=0))
    sink.close()
    assert json.loads((tmp_path / "o.json").read_text()) == []


def test_coco_never_replaces_a_file_that_appeared_during_the_run(tmp_path):
    target = tmp_path / "o.json"
    sink = CocoSink(target)
    sink.write(_result(0))
    target.write_bytes(OLD)  # someone else took the name meanwhile
    with pytest.raises(InputError, match="created by someone else"):
        sink.close()
    assert target.read_bytes() == OLD
    assert len(json.loads(sink._file.path.read_text())) == 1  # our results are kept, not lost


# -- a full disk, simulated: the write that fails is cut back, the error names the file -----------------


def _fail_after(monkeypatch, calls: int):
    """Make RecordFile writes fail like a full disk after ``calls`` writes; the failing one writes half."""
    count = {"n": 0}

    def write(fd, data):
        count["n"] += 1
        if count["n"] > calls:
            os.write(fd, bytes(data[: len(data) // 2]))  # a real full disk takes part of a write...
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))  # ...then refuses the rest
        return os.write(fd, data)

    monkeypatch.setattr(RecordFile, "_write", staticmethod(write))


def test_json_lines_keep_only_whole_lines_when_the_disk_fills(tmp_path, monkeypatch):
    _fail_after(monkeypatch, 3)
    sink = JsonLinesSink(tmp_path / "o.jsonl")
    for i in range(3):
        sink.write(_result(i))
    with pytest.raises(DiskFullError, match=r"no space left for .*o\.jsonl"):
        sink.write(_result(3))
    sink.close()
    assert [r["frame"] for r in _jsonl(tmp_path / "o.jsonl")] == [0, 1, 2]


def test_coco_after_a_full_disk_is_whole_json(tmp_path, monkeypatch):
    _fail_after(monkeypatch, 2)
    sink = CocoSink(tmp_path / "o.json")
    sink.write(_result(0))
    sink.write(_result(1))
    with pytest.raises(DiskFullError, match=r"o\.json"):  # the user's name, not the temporary one
        sink.write(_result(2))
    monkeypatch.undo()  # the space came back (the run stopped): the closing bracket fits
    sink.close()
    assert [r["image_id"] for r in json.loads((tmp_path / "o.json").read_text())] == [0, 1]


def test_pipeline_reports_a_full_disk_as_disk_full(tmp_path, monkeypatch):
    _fail_after(monkeypatch, 5)
    with pytest.raises(DiskFullError, match="no space left for .*o.jsonl.*the outputs hold the 5 frames"):
        run_pipeline(
            PacedSource(30, fps=1e6, live=False), FakeEstimator(), [JsonLinesSink(tmp_path / "o.jsonl")]
        )
    assert [r["frame"] for r in _jsonl(tmp_path / "o.jsonl")] == list(range(5))


def test_mp4_stops_while_there_is_room_to_end_it(tmp_path, monkeypatch):
    free = {"bytes": 1 << 40}
    monkeypatch.setattr(sinks_module, "_free_bytes", lambda directory: free["bytes"])
    sink = Mp4Sink(tmp_path / "o.mp4", 25)
    for i in range(6):
        sink.write(_result(i))
    free["bytes"] = 100 * 1024  # below what ending the file needs
    with pytest.raises(DiskFullError, match="kept to end the video"):
        sink.write(_result(6))
    sink.close()
    frames, _ = read_video(tmp_path / "o.mp4")
    assert [read_index(f) for f in frames] == list(range(6))


def test_cli_disk_full_exit_code_and_message(tmp_path, golden_dir, monkeypatch):
    clip = make_video(tmp_path / "clip.mp4", 8)
    _fail_after(monkeypatch, 4)
    js = tmp_path / "o.jsonl"
    tiny = ["--weights", str(golden_dir / "tiny_model.npz"), "--backend", "torch", "--input-size", "64"]
    result = _invoke(["video", str(clip), "--out", str(tmp_path / "o.mp4"), "--json", str(js), *tiny])
    assert result.exit_code == EXIT_DISK_FULL, result.output
    assert "no space left for" in result.output and "o.jsonl" in result.output
    assert [r["frame"] for r in _jsonl(js)] == [0, 1, 2, 3]
    frames, _ = read_video(tmp_path / "o.mp4")
    assert len(frames) == 5  # the mp4 (written first) also got the frame the JSON lines file could not take


# -- a full disk, real: a small tmpfs (needs root; skipped elsewhere) ------------------------------------


@pytest.fixture
def small_disk(tmp_path):
    """A 4 MiB tmpfs, filled up to ``leave`` bytes free by a call: ``small_disk(leave)`` -> its path."""
    mount = tmp_path / "disk"
    mount.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(mount)], capture_output=True, timeout=10
    )
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.decode().strip() or done.returncode}")

    def fill(leave: int) -> Path:
        free = os.statvfs(mount).f_bavail * os.statvfs(mount).f_frsize
        (mount / "filler").write_bytes(b"\0" * (free - leave))
        return mount

    yield fill
    subprocess.run(["umount", str(mount)], capture_output=True, timeout=10)


def test_full_disk_real_mp4_and_json(small_disk):
    disk = small_disk(1200 * 1024)
    sinks = [Mp4Sink(disk / "o.mp4", 25), JsonLinesSink(disk / "o.jsonl"), CocoSink(disk / "o.json")]
    with pytest.raises(DiskFullError, match=r"o\.mp4"):
        run_pipeline(PacedSource(5000, fps=1e6, live=False), FakeEstimator(), sinks)
    frames, _ = read_video(disk / "o.mp4")  # ended properly: it plays
    records = _jsonl(disk / "o.jsonl")
    assert len(frames) > 50 and [read_index(f) for f in frames] == [i % 256 for i in range(len(frames))]
    assert [r["frame"] for r in records] == list(range(len(frames)))
    assert len({r["image_id"] for r in json.loads((disk / "o.json").read_text())}) == len(frames)


def test_full_disk_real_json_lines_only(small_disk):
    disk = small_disk(64 * 1024)
    with pytest.raises(DiskFullError, match=r"o\.jsonl"):
        run_pipeline(
            PacedSource(5000, fps=1e6, live=False), FakeEstimator(), [JsonLinesSink(disk / "o.jsonl")]
        )
    records = _jsonl(disk / "o.jsonl")
    assert len(records) > 20 and [r["frame"] for r in records] == list(range(len(records)))


# -- the command line: --overwrite, and the input is never an output ------------------------------------


@pytest.mark.parametrize(
    ("option", "name"), [("--out", "o.mp4"), ("--json", "o.jsonl"), ("--coco", "o.json")]
)
def test_cli_existing_output_needs_overwrite(tmp_path, tiny, option, name):
    clip = make_video(tmp_path / "clip.mp4", 3)
    outputs = {"--out": tmp_path / "o.mp4", option: tmp_path / name}
    outputs[option].write_bytes(OLD)
    args = ["video", str(clip), *[str(x) for kv in outputs.items() for x in kv], *tiny]
    result = _invoke(args)
    assert result.exit_code == EXIT_INPUT and "already exists; add --overwrite" in result.output
    assert outputs[option].read_bytes() == OLD
    assert name == "o.mp4" or not (tmp_path / "o.mp4").exists()  # refused before anything was opened
    result = _invoke([*args, "--overwrite"])
    assert result.exit_code == 0, result.output
    assert outputs[option].read_bytes() != OLD


@pytest.mark.parametrize("how", ["same path", "symlink", "hard link"])
@pytest.mark.parametrize("option", ["--out", "--json", "--coco"])
def test_cli_output_that_is_the_input_is_refused_even_with_overwrite(tmp_path, tiny, how, option):
    # The input gets the output's extension so only the identity check can catch it.
    suffix = {"--out": ".mp4", "--json": ".jsonl", "--coco": ".json"}[option]
    clip = make_video(tmp_path / "clip.mp4", 3)
    if suffix != ".mp4":
        clip = clip.rename(tmp_path / f"clip{suffix}")
    before = clip.read_bytes()
    target = tmp_path / f"alias{suffix}"
    if how == "same path":
        target = clip
    elif how == "symlink":
        target.symlink_to(clip)
    else:
        os.link(clip, target)
    args = ["video", str(clip), option, str(target), "--overwrite", *tiny]
    if option != "--out":
        args += ["--out", str(tmp_path / "o.mp4")]
    result = _invoke(args)
    assert result.exit_code == EXIT_INPUT and "is the input file" in result.output, result.output
    assert clip.read_bytes() == before


def test_cli_image_never_replaces_its_input(tmp_path, tiny):
    import cv2

    picture = tmp_path / "a.png"
    cv2.imwrite(str(picture), index_image(3))
    before = picture.read_bytes()
    for extra in ([], ["--overwrite"]):
        result = _invoke(["image", str(picture), "--out", str(tmp_path), *extra, *tiny])
        assert result.exit_code == EXIT_INPUT and "is the input file" in result.output, result.output
        assert picture.read_bytes() == before


def test_cli_image_existing_output_needs_overwrite(tmp_path, tiny):
    import cv2

    picture, out = tmp_path / "a.png", tmp_path / "out"
    cv2.imwrite(str(picture), index_image(3))
    out.mkdir()
    (out / "a.json").write_bytes(OLD)
    result = _invoke(["image", str(picture), "--out", str(out), "--json", *tiny])
    assert result.exit_code == EXIT_INPUT and "a.json already exists; add --overwrite" in result.output
    assert (out / "a.json").read_bytes() == OLD and not (out / "a.png").exists()  # checked up front
    result = _invoke(["image", str(picture), "--out", str(out), "--json", "--overwrite", *tiny])
    assert result.exit_code == 0, result.output
    assert json.loads((out / "a.json").read_text())["image"] == str(picture)
    assert cv2.imread(str(out / "a.png")) is not None


def test_cli_webcam_follows_the_same_rules(tmp_path, tiny):
    clip = make_video(tmp_path / "clip.mp4", 3)  # a file played live as a camera
    before = clip.read_bytes()
    result = _invoke(["webcam", "--camera", str(clip), "--out", str(clip), "--no-show", "--overwrite", *tiny])
    assert result.exit_code == EXIT_INPUT and "is the input file" in result.output
    assert clip.read_bytes() == before
    (tmp_path / "rec.jsonl").write_bytes(OLD)
    result = _invoke(
        ["webcam", "--camera", str(clip), "--json", str(tmp_path / "rec.jsonl"), "--no-show", *tiny]
    )
    assert result.exit_code == EXIT_INPUT and "already exists; add --overwrite" in result.output
    assert (tmp_path / "rec.jsonl").read_bytes() == OLD
