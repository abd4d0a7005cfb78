"""Input paths that are not regular files: a FIFO, /dev/stdin, a directory, a name over 255 bytes.

Every one must give one line that says what the path is (never "not found" for something that exists,
never a traceback, never a hang on a pipe), and a non-zero exit, for `hhrt video`, `hhrt image`,
`--weights` and `--engine`.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
from typer.testing import CliRunner
from video_helpers import make_video, run_in_thread

from hhrnet_rt.cli import app
from hhrnet_rt.cli.app import EXIT_INPUT, EXIT_WEIGHTS
from hhrnet_rt.core.errors import InputError, WeightsError
from hhrnet_rt.core.inputs import check_input_file, input_file_problem, read_image
from hhrnet_rt.video import FileSource

REPO = Path(__file__).resolve().parents[1]
runner = CliRunner()
pytestmark = pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs POSIX FIFOs")


@pytest.fixture()
def fifo(tmp_path) -> Path:
    path = tmp_path / "stream.mp4"
    os.mkfifo(path)
    return path


@pytest.fixture()
def long_name(tmp_path) -> Path:
    return tmp_path / ("x" * 300 + ".mp4")  # 304 bytes: over the 255-byte limit of one name


@pytest.fixture()
def picture(tmp_path) -> Path:
    path = tmp_path / "p.png"
    cv2.imwrite(str(path), np.zeros((32, 32, 3), np.uint8))
    return path


def invoke(args: list[str]):
    # A pipe opened for reading blocks until a writer appears: a regression must fail, not hang.
    result = run_in_thread(lambda: runner.invoke(app, [str(a) for a in args]), timeout=60)
    assert "Traceback" not in result.output, result.output
    return result


def one_line_error(output: str) -> str:
    errors = [line for line in output.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, output
    return errors[0]


# -- the check itself -----------------------------------------------------------------------------------
def test_each_kind_of_path_is_named(tmp_path, fifo, long_name, picture):
    assert input_file_problem(picture) is None
    assert "is a pipe (FIFO)" in input_file_problem(fifo)
    assert "is a directory" in input_file_problem(tmp_path)
    assert "name is too long (304 bytes" in input_file_problem(long_name)
    assert "does not exist" in input_file_problem(tmp_path / "absent.mp4")
    assert "does not exist" in input_file_problem(picture / "below.mp4")  # a file used as a directory
    assert "standard input" in input_file_problem("-")  # "-" is not a file name hhrt understands
    assert "is a device" in input_file_problem("/dev/null")


def test_message_is_one_short_line_and_the_error_class_is_the_callers(long_name, fifo):
    with pytest.raises(InputError) as info:
        check_input_file(long_name, "video file")
    assert "\n" not in str(info.value) and len(str(info.value)) < 250 and "…" in str(info.value)
    with pytest.raises(WeightsError, match="checkpoint file .* is a pipe"):
        check_input_file(fifo, "checkpoint file", error=WeightsError)


@pytest.mark.skipif(hasattr(os, "geteuid") and os.geteuid() == 0, reason="root reads any file")
def test_unreadable_file(tmp_path):
    locked = tmp_path / "locked.mp4"
    locked.write_bytes(b"x")
    locked.chmod(0)
    assert "cannot be read (Permission denied)" in input_file_problem(locked)


def test_file_source_refuses_a_fifo_without_blocking(fifo):
    with pytest.raises(InputError, match="is a pipe"):
        run_in_thread(lambda: FileSource(fifo), timeout=20)


# -- the commands ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("kind", ["fifo", "long_name", "directory", "folder_with_fifo"])
def test_video_input(kind, tmp_path, fifo, long_name, tiny):
    # A folder is an input of videos (issue 10): one without videos is refused, a FIFO in it too.
    (tmp_path / "empty").mkdir()
    path = {
        "fifo": fifo,
        "long_name": long_name,
        "directory": tmp_path / "empty",
        "folder_with_fifo": fifo.parent,
    }[kind]
    result = invoke(["video", path, "--out", tmp_path / "o.mp4", *tiny])
    assert result.exit_code == EXIT_INPUT, result.output
    line = one_line_error(result.output)
    assert "not found" not in line and "does not exist" not in line
    expected = {"fifo": "is a pipe", "long_name": "name is too long", "directory": "holds no video files",
                "folder_with_fifo": "is a pipe"}  # fmt: skip
    assert expected[kind] in line
    assert not (tmp_path / "o.mp4").exists()


@pytest.mark.parametrize("kind", ["fifo", "long_name"])
def test_image_input(kind, tmp_path, fifo, long_name, tiny):
    path = {"fifo": fifo, "long_name": long_name}[kind]
    result = invoke(["image", path, "--out", tmp_path / "out", *tiny])  # the FIFO hung here before
    assert result.exit_code == EXIT_INPUT, result.output
    line = one_line_error(result.output)
    assert {"fifo": "is a pipe", "long_name": "name is too long"}[kind] in line


@pytest.mark.parametrize("kind", ["fifo", "long_name"])
def test_weights_path(kind, tmp_path, fifo, picture):
    path = {"fifo": fifo, "long_name": tmp_path / ("w" * 300 + ".pth")}[kind]
    result = invoke(["image", picture, "--out", tmp_path / "out", "--weights", path, "--backend", "torch"])
    assert result.exit_code == EXIT_WEIGHTS, result.output
    line = one_line_error(result.output)
    assert {"fifo": "is a pipe", "long_name": "name is too long"}[kind] in line


@pytest.mark.parametrize("kind", ["fifo", "long_name", "directory"])
def test_engine_path(kind, tmp_path, fifo, long_name, picture, tiny):
    path = {"fifo": fifo, "long_name": long_name, "directory": tmp_path}[kind]
    result = invoke(["image", picture, "--out", tmp_path / "out", *tiny, "--engine", path])
    assert result.exit_code == EXIT_INPUT, result.output
    line = one_line_error(result.output)
    assert "engine file" in line and "does not exist" not in line


@pytest.mark.parametrize("command", ["video", "image"])
def test_dev_stdin_as_a_pipe(command, tmp_path, golden_dir):
    """`... | hhrt video /dev/stdin`: stdin is a pipe; say so (it said "not found", or hung for images)."""
    args = [sys.executable, "-m", "hhrnet_rt", command, "/dev/stdin", "--out", str(tmp_path / "o"),
            "--weights", str(golden_dir / "tiny_model.npz"), "--backend", "torch"]  # fmt: skip
    if command == "video":
        args[6] += ".mp4"
    env = {**os.environ, "COLUMNS": "200", "NUMBA_CACHE_DIR": str(tmp_path / "numba")}
    clip = make_video(tmp_path / "in.mp4", 2).read_bytes()
    done = subprocess.run(args, input=clip, capture_output=True, cwd=REPO, env=env, timeout=120)
    err = done.stderr.decode()
    assert done.returncode == EXIT_INPUT, err
    assert "Traceback" not in err and "not found" not in err
    assert "standard input, which here is a pipe" in one_line_error(err)


# -- EXIF orientation (hhrt image) ----------------------------------------------------------------------
def jpeg_with_orientation(path: Path, orientation: int) -> np.ndarray:
    """An 80x40 JPEG (white left quarter) with an EXIF Orientation tag; returns the stored pixels.

    The APP1 segment is written by hand (big-endian TIFF header, one IFD entry: tag 0x0112, SHORT).
    """
    import struct

    image = np.zeros((40, 80, 3), np.uint8)
    image[:, :20] = 255
    ok, encoded = cv2.imencode(".jpg", image)
    assert ok
    tiff = b"MM\x00\x2a" + struct.pack(">IH", 8, 1) + struct.pack(">HHIHH", 0x0112, 3, 1, orientation, 0)
    payload = b"Exif\x00\x00" + tiff + struct.pack(">I", 0)
    app1 = b"\xff\xe1" + struct.pack(">H", len(payload) + 2) + payload
    data = encoded.tobytes()
    path.write_bytes(data[:2] + app1 + data[2:])  # right after the SOI marker
    return image


def test_read_image_applies_exif_orientation_by_default(tmp_path):
    stored = jpeg_with_orientation(tmp_path / "phone.jpg", 6)  # 6: rotate 90 degrees clockwise to view
    upright = read_image(tmp_path / "phone.jpg")
    assert upright.shape == (80, 40, 3)
    assert upright[:20].mean() > 200 and upright[30:].mean() < 50  # the white left strip is now on top
    raw = read_image(tmp_path / "phone.jpg", exif_orientation=False)
    assert raw.shape == stored.shape
    assert np.abs(raw.astype(int) - stored).max() < 40  # JPEG loss only (the 255/0 edge rings a little)


def test_image_command_orientation_option(tmp_path, tiny):
    import json

    jpeg_with_orientation(tmp_path / "phone.jpg", 6)
    sizes = {}
    for flag in ("--exif-orientation", "--ignore-exif-orientation"):
        out = tmp_path / flag.strip("-")
        result = invoke(["image", tmp_path / "phone.jpg", "--out", out, "--json", flag, *tiny])
        assert result.exit_code == 0, result.output
        record = json.loads((out / "phone.json").read_text())
        drawn = cv2.imread(str(out / "phone.jpg"), cv2.IMREAD_COLOR | cv2.IMREAD_IGNORE_ORIENTATION)
        assert drawn.shape[:2] == (record["height"], record["width"])  # the annotated file is upright too
        sizes[flag] = (record["width"], record["height"])
    assert sizes == {"--exif-orientation": (40, 80), "--ignore-exif-orientation": (80, 40)}
