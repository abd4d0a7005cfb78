"""Camera ``--width/--height/--fps``, ``--threads``, and OpenCV's own messages kept off the terminal."""

from __future__ import annotations

import importlib
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from typer.testing import CliRunner
from video_helpers import make_video

from hhrnet_rt.cli import app
from hhrnet_rt.core.errors import InputError
from hhrnet_rt.video.sources import CameraSource

runner = CliRunner()
REPO = Path(__file__).resolve().parents[1]
UNUSED_CAMERA = 57  # no machine running the tests has 58 cameras


@pytest.fixture(scope="module")
def clip(tmp_path_factory) -> Path:
    return make_video(tmp_path_factory.mktemp("clip") / "clip.mp4", 4, width=160, height=120, fps=25)


def test_camera_source_reports_what_it_delivers_when_the_request_is_not_granted(clip):
    # A file (played live) keeps its own size and rate whatever is asked: the same path as a camera
    # without that mode.
    source = CameraSource(str(clip), width=1280, height=720, fps=60, pace=False)
    try:
        assert source.size == (160, 120) and source.fps == pytest.approx(25.0)
        assert source.warning == (
            "the source delivers 160x120 instead of the requested 1280x720 and 25 FPS instead of the "
            "requested 60 FPS"
        )
    finally:
        source.close()
    plain = CameraSource(str(clip), pace=False)
    try:
        assert plain.warning is None and plain.size == (160, 120)
    finally:
        plain.close()


@pytest.mark.parametrize("option", [{"width": 0}, {"height": -5}, {"fps": 0.0}])
def test_camera_source_refuses_non_positive_requests(clip, option):
    with pytest.raises(InputError, match="must be positive"):
        CameraSource(str(clip), **option)


_OPEN_TWO_MISSING = f"""
from hhrnet_rt.core.errors import InputError
from hhrnet_rt.video.sources import CameraSource
for spec, needle in (({UNUSED_CAMERA}, "camera {UNUSED_CAMERA} could not be opened"),
                     ("rtsp://127.0.0.1:1/none", "could not open the stream")):  # port 1: refused at once
    try:
        CameraSource(spec)
    except InputError as exc:
        assert needle in str(exc), exc
    else:
        raise SystemExit("opened?")
"""


def test_camera_that_does_not_open_prints_one_line_not_opencvs():
    # In a fresh process: OpenCV reads its FFmpeg log level once, at the first FFmpeg capture of the
    # process, which is what a CLI run is; inside the test session another test may have opened one first.
    proc = subprocess.run([sys.executable, "-c", _OPEN_TWO_MISSING], cwd=REPO, capture_output=True, text=True,
                          timeout=120)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    # OpenCV writes these from C++ straight to file descriptor 2
    err = proc.stderr
    assert "WARN" not in err and "VIDEOIO" not in err and "[tcp @" not in err, err


def test_webcam_missing_camera_is_one_line_on_stderr(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "hhrnet_rt", "webcam", "--camera", str(UNUSED_CAMERA), "--no-show",
         "--json", str(tmp_path / "o.jsonl")],  # fmt: skip
        cwd=REPO, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.strip().splitlines() == [
        f"error: camera {UNUSED_CAMERA} could not be opened: check that it is connected and not used by "
        "another program (on Linux, `ls /dev/video*` lists cameras), or pass a video file or stream URL"
    ]


def test_webcam_passes_camera_options_and_warns_about_what_differs(tmp_path, clip, golden_dir):
    tiny = ["--weights", str(golden_dir / "tiny_model.npz"), "--backend", "torch", "--input-size", "64"]
    args = ["webcam", "--camera", str(clip), "--no-show", "--json", str(tmp_path / "o.jsonl"),
            "--width", "640", "--height", "480", "--fps", "15", "--max-frames", "2", *tiny]  # fmt: skip
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "160x120 instead of the requested 640x480" in result.output
    assert "instead of the requested 15 FPS" in result.output
    bad = runner.invoke(app, ["webcam", "--camera", str(clip), "--no-show", "--width", "0", *tiny])
    assert bad.exit_code == 2


class _Recorded(Exception):
    pass


@pytest.mark.parametrize("command", ["image", "video", "webcam"])
def test_threads_reach_torch_and_onnx_runtime(tmp_path, clip, monkeypatch, command, golden_dir):
    """--threads sets torch's CPU threads and is passed on as ONNX Runtime's intra-op threads."""
    estimator_module = importlib.import_module("hhrnet_rt.runtime.estimator")  # where the backend is made
    seen = {}

    def fake_backend(name, graph, **kwargs):  # after the estimator applied the config's torch threads
        seen.update(kwargs, torch_threads=torch.get_num_threads())
        raise _Recorded

    monkeypatch.setattr(estimator_module, "create_backend", fake_backend)
    picture = tmp_path / "p.png"
    cv2.imwrite(str(picture), np.zeros((32, 32, 3), np.uint8))
    args = {
        "image": ["image", str(picture), "--out", str(tmp_path / "o")],
        "video": ["video", str(clip), "--out", str(tmp_path / "o.mp4")],
        "webcam": ["webcam", "--camera", str(clip), "--no-show", "--json", str(tmp_path / "o.jsonl")],
    }[command]
    before = torch.get_num_threads()
    try:
        want = 3 if before != 3 else 2
        result = runner.invoke(app, [*args, "--weights", str(golden_dir / "tiny_model.npz"), "--backend", "torch",
                                     "--device", "cpu", "--threads", str(want)])  # fmt: skip
        assert isinstance(result.exception, _Recorded), result.output
        assert seen["onnx_threads"] == want and seen["torch_threads"] == want
    finally:
        torch.set_num_threads(before)
    assert runner.invoke(app, [*args, "--threads", "0"]).exit_code == 2
