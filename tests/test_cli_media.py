"""``hhrt video``, ``hhrt webcam``, ``hhrt image`` end to end (golden tiny model) and every bad input."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import av
import cv2
import numpy as np
import pytest
from typer.testing import CliRunner
from video_helpers import (
    assert_output_frames,
    decoded_frames,
    index_image,
    make_video,
    make_video_with_bad_packets,
    read_index,
    read_video,
)

from hhrnet_rt.cli import app
from hhrnet_rt.cli.app import EXIT_INPUT, EXIT_INTERRUPTED, EXIT_WEIGHTS
from hhrnet_rt.video.records import frames_of

runner = CliRunner()
REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def clip(tmp_path_factory) -> Path:
    return make_video(tmp_path_factory.mktemp("clip") / "clip.mp4", 6)


def _invoke(args: list[str]):
    result = runner.invoke(app, args)
    assert "Traceback" not in result.output, result.output
    return result


def _jsonl(path: Path) -> list[dict]:
    return frames_of(json.loads(line) for line in path.read_text().splitlines())  # frame records


def test_video_end_to_end(tmp_path, tiny, clip):
    out, js, coco = tmp_path / "o.mp4", tmp_path / "o.jsonl", tmp_path / "o.json"
    result = _invoke(
        ["video", str(clip), "--out", str(out), "--json", str(js), "--coco", str(coco), "-v", *tiny]
    )
    assert result.exit_code == 0, result.output
    frames, rate = read_video(out)
    records = _jsonl(js)
    assert [r["frame"] for r in records] == list(range(6)) and rate == 25
    assert_output_frames(frames, decoded_frames(clip), records)
    for r in records:
        assert set(r) == {"schema", "type", "frame", "timestamp", "people"}
        for person in r["people"]:
            assert set(person) == {"score", "keypoints"}
            assert np.array(person["keypoints"]).shape == (17, 3)
    results = json.load(coco.open())
    assert isinstance(results, list) and len(results) == sum(len(r["people"]) for r in records)
    for c in results:
        assert set(c) == {"image_id", "category_id", "keypoints", "score"} and len(c["keypoints"]) == 51
    assert "end-to-end FPS" in result.stdout
    for stage in ("capture", "preprocess", "inference", "decode", "draw", "write"):
        assert stage in result.stdout
    assert "backend: torch" in result.stderr


def test_video_auto_backend_says_why_and_max_frames(tmp_path, golden_dir, clip):
    args = [
        "video",
        str(clip),
        "--out",
        str(tmp_path / "o.mp4"),
        "--weights",
        str(golden_dir / "tiny_model.npz"),
    ]
    result = _invoke([*args, "--input-size", "64", "--max-frames", "3", "--device", "cpu", "--no-flip"])
    assert result.exit_code == 0, result.output
    assert "backend: onnxruntime" in result.stderr and "CPU" in result.stderr
    assert len(read_video(tmp_path / "o.mp4")[0]) == 3


def test_undecodable_frames_are_reported(tmp_path, tiny):
    bad = make_video_with_bad_packets(tmp_path / "bad.mkv", 6, {3})
    out, js = tmp_path / "o.mp4", tmp_path / "o.jsonl"
    result = _invoke(["video", str(bad), "--out", str(out), "--json", str(js), *tiny])
    assert result.exit_code == 0, result.output
    assert "1 frame(s) of the input could not be decoded" in result.stderr
    inputs = decoded_frames(bad)
    assert [read_index(f) for f in inputs] == [0, 1, 2, 4, 5]
    assert_output_frames(read_video(out)[0], inputs, _jsonl(js))


def test_webcam_with_file_played_live(tmp_path, tiny):
    clip = make_video(tmp_path / "live.mp4", 30, fps=60, width=320, height=240)
    out, js = tmp_path / "o.mp4", tmp_path / "o.jsonl"
    result = _invoke(
        ["webcam", "--camera", str(clip), "--out", str(out), "--json", str(js), "--no-show", *tiny]
    )
    assert result.exit_code == 0, result.output
    records = _jsonl(js)
    indices = [r["frame"] for r in records]
    assert indices == sorted(set(indices)) and 1 <= len(indices) <= 30
    assert_output_frames(read_video(out)[0], decoded_frames(clip), records, skip_hud=True)


def test_image_command(tmp_path, tiny):
    a, b = tmp_path / "a.png", tmp_path / "sub" / "a.jpg"
    b.parent.mkdir()
    cv2.imwrite(str(a), index_image(3, 256, 192))
    cv2.imwrite(str(b), index_image(5, 256, 192))
    out = tmp_path / "out" / "nested"
    result = _invoke(["image", str(a), str(b), "--out", str(out), "--json", *tiny])
    assert result.exit_code == 0, result.output
    assert cv2.imread(str(out / "a.png")).shape == (192, 256, 3)
    assert cv2.imread(str(out / "a_1.jpg")).shape == (192, 256, 3)
    record = json.loads((out / "a_1.json").read_text())
    assert record["image"] == str(b) and (record["width"], record["height"]) == (256, 192)
    assert isinstance(record["people"], list)


@pytest.mark.slow  # a fresh interpreter imports torch and loads the model: 10-30 s on 2 shared cores
def test_sigint_leaves_playable_outputs(tmp_path, golden_dir):
    clip = make_video(tmp_path / "long.mp4", 150)
    out, js = tmp_path / "o.mp4", tmp_path / "o.jsonl"
    cmd = [sys.executable, "-m", "hhrnet_rt", "video", str(clip), "--out", str(out), "--json", str(js),
           "--weights", str(golden_dir / "tiny_model.npz"), "--backend", "torch", "--input-size", "64"]  # fmt: skip
    proc = subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and proc.poll() is None:
            if js.exists() and len(js.read_text().splitlines()) >= 4:  # the header and 3 frames
                break
            time.sleep(0.05)
        assert proc.poll() is None, f"finished before it could be interrupted: {proc.communicate()}"
        proc.send_signal(signal.SIGINT)
        stdout, stderr = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == EXIT_INTERRUPTED, stderr
    assert "Traceback" not in stderr
    records = _jsonl(js)  # every line parses
    assert 3 <= len(records) < 150
    assert [r["frame"] for r in records] == list(range(len(records)))
    assert_output_frames(read_video(out)[0], decoded_frames(clip), records)


# -- bad input: a clear message, a non-zero exit code, no traceback -------------------------------------


def test_missing_input(tmp_path, tiny):
    result = _invoke(["video", str(tmp_path / "nope.mp4"), "--out", str(tmp_path / "o.mp4"), *tiny])
    assert result.exit_code == EXIT_INPUT and "does not exist" in result.output


def test_not_a_video(tmp_path, tiny):
    fake = tmp_path / "notes.mp4"
    fake.write_text("hello\n" * 100)
    result = _invoke(["video", str(fake), "--out", str(tmp_path / "o.mp4"), *tiny])
    assert result.exit_code == EXIT_INPUT and "not a video file" in result.output


def test_zero_frame_video(tmp_path, tiny):
    empty = tmp_path / "empty.mp4"
    with av.open(str(empty), "w") as c:
        s = c.add_stream("libx264", rate=25)
        s.width, s.height, s.pix_fmt = 64, 64, "yuv420p"
        c.start_encoding()
    result = _invoke(["video", str(empty), "--out", str(tmp_path / "o.mp4"), *tiny])
    assert result.exit_code == EXIT_INPUT and "contains no video frames" in result.output
    assert not (tmp_path / "o.mp4").exists()


def test_camera_that_does_not_open(tmp_path, tiny):
    result = _invoke(["webcam", "--camera", "57", "--out", str(tmp_path / "o.mp4"), "--no-show", *tiny])
    assert result.exit_code == EXIT_INPUT and "camera 57 could not be opened" in result.output


def test_webcam_without_display_suggests_out(monkeypatch, tiny):
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    result = _invoke(["webcam", *tiny])
    assert result.exit_code == EXIT_INPUT and "--out" in result.output and "display" in result.output


@pytest.mark.parametrize(
    ("option", "name", "message"),
    [
        ("--out", "missing_dir/o.mp4", "does not exist"),
        ("--out", "o.avi", "unsupported extension"),
        ("--json", "o.txt", "unsupported extension"),
        ("--coco", "o.csv", "unsupported extension"),
    ],
)
def test_bad_output_paths(tmp_path, tiny, clip, option, name, message):
    outputs = {"--out": str(tmp_path / "o.mp4"), option: str(tmp_path / name)}
    args = ["video", str(clip)] + [x for kv in outputs.items() for x in kv]
    result = _invoke([*args, *tiny])
    assert result.exit_code == EXIT_INPUT and message in result.output


def test_unwritable_output(tmp_path, tiny, clip):
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o555)
    target = Path("/sys/hhrt-test.mp4") if os.geteuid() == 0 else locked / "o.mp4"  # root ignores modes
    try:
        result = _invoke(["video", str(clip), "--out", str(target), *tiny])
    finally:
        locked.chmod(0o755)
    assert result.exit_code == EXIT_INPUT and "cannot write" in result.output


@pytest.mark.parametrize(("size", "nearest"), [("500", "448 or 512"), ("30", "64"), ("700", "640 or 704")])
def test_input_size_not_multiple_of_64(tmp_path, clip, size, nearest):
    result = _invoke(["video", str(clip), "--out", str(tmp_path / "o.mp4"), "--input-size", size])
    assert result.exit_code == EXIT_INPUT and nearest in result.output


def test_weights_that_cannot_be_loaded(tmp_path, clip):
    junk = tmp_path / "model.pth"
    junk.write_text("not a checkpoint")
    result = _invoke(["video", str(clip), "--out", str(tmp_path / "o.mp4"), "--weights", str(junk),
                      "--backend", "torch"])  # fmt: skip
    assert result.exit_code == EXIT_WEIGHTS and "not a PyTorch checkpoint" in result.output
    assert not (tmp_path / "o.mp4").exists()


def test_image_that_is_not_an_image(tmp_path, tiny):
    fake = tmp_path / "photo.jpg"
    fake.write_text("nope")
    result = _invoke(["image", str(fake), "--out", str(tmp_path / "out"), *tiny])
    assert result.exit_code == EXIT_INPUT and "not an image" in result.output


def test_stage_failure_is_one_clear_message(tmp_path, tiny, clip, monkeypatch):
    from hhrnet_rt.cli.app import EXIT_PIPELINE
    from hhrnet_rt.runtime.estimator import PoseEstimator

    def broken(self, maps, prepared):
        raise MemoryError("out of memory in the decoder")

    monkeypatch.setattr(PoseEstimator, "decode", broken)
    out, js = tmp_path / "o.mp4", tmp_path / "o.jsonl"
    result = _invoke(["video", str(clip), "--out", str(out), "--json", str(js), *tiny])
    assert result.exit_code == EXIT_PIPELINE
    assert "the decode stage failed on frame 0: MemoryError: out of memory in the decoder" in result.output
    assert js.read_text() == ""  # closed, valid (empty) JSON lines; no mp4 without frames
    assert not out.exists()


def test_video_show_without_display(tmp_path, tiny, clip, monkeypatch):
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    result = _invoke(["video", str(clip), "--out", str(tmp_path / "o.mp4"), "--show", *tiny])
    assert result.exit_code == EXIT_INPUT and "cannot open a window" in result.output


def test_image_output_dir_is_a_file(tmp_path, tiny):
    picture = tmp_path / "a.png"
    cv2.imwrite(str(picture), index_image(1))
    blocker = tmp_path / "out"
    blocker.write_text("a file where the directory should be")
    result = _invoke(["image", str(picture), "--out", str(blocker), *tiny])
    assert result.exit_code == EXIT_INPUT and "is an existing file" in result.output


def test_precision_option_is_passed_through_and_checked(tmp_path, tiny):
    picture = tmp_path / "a.png"
    cv2.imwrite(str(picture), index_image(1, 128, 96))
    ok = _invoke(["image", str(picture), "--out", str(tmp_path / "o"), "--precision", "fp32", *tiny])
    assert ok.exit_code == 0, ok.output
    said = " ".join(ok.output.split())  # Rich may wrap long lines
    assert "precision fp32" in said and "preprocess OpenCV + numpy on the CPU" in said
    # torch on the CPU cannot run fp16: a clear refusal, not a silent fp32 run.
    bad = _invoke(["image", str(picture), "--out", str(tmp_path / "o2"), "--precision", "fp16", *tiny])
    assert bad.exit_code == EXIT_INPUT, bad.output
    assert "fp32 only" in bad.output
    for command in (["video", str(picture), "--out", str(tmp_path / "x.mp4")], ["webcam", "--no-show"]):
        result = _invoke([*command, "--precision", "int4", *tiny])
        assert result.exit_code == EXIT_INPUT and "int4" in result.output, result.output


def test_int8_without_a_file_says_how_to_get_one(tmp_path, tiny, clip):
    result = _invoke(["video", str(clip), "--out", str(tmp_path / "o.mp4"), "--precision", "int8", *tiny])
    assert result.exit_code == EXIT_INPUT, result.output
    assert "build-engine --precision int8" in result.output
