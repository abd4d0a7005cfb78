"""Calibration sources: a folder of images and frames sampled evenly from a generated video."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from hhrnet_rt.core.errors import CalibrationError
from hhrnet_rt.export.calibration import evenly_spaced, open_calibration_source


def _write_images(folder, n, size=(48, 64)):
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        img = np.full((*size, 3), i * 10, np.uint8)
        cv2.imwrite(str(folder / f"img_{i:03d}.png"), img)
    (folder / "notes.txt").write_text("not an image")
    return folder


def _write_video(path, n, size=(48, 64)):
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 10, (size[1], size[0]))
    assert writer.isOpened()
    for i in range(n):
        # The frame index is written in the pixel values so the test can tell which frame came back.
        writer.write(np.full((*size, 3), i * 8, np.uint8))
    writer.release()
    return path


def test_evenly_spaced():
    assert evenly_spaced(10, 3) == [0, 4, 9]
    assert evenly_spaced(3, 5) == [0, 1, 2]
    assert evenly_spaced(100, 1) == [0]


def test_folder_split_and_images(tmp_path):
    src = open_calibration_source(_write_images(tmp_path / "imgs", 20), count=8, holdout=3)
    assert src.kind == "folder" and len(src.items) == 20  # notes.txt ignored
    assert len(src.calib) == 8 and len(src.holdout) == 3
    assert not set(src.calib) & set(src.holdout)
    imgs = list(src.iter_images(src.holdout))
    assert [int(im[0, 0, 0]) for im in imgs] == [10 * i for i in src.holdout]
    assert all(im.shape == (48, 64, 3) and im.dtype == np.uint8 for im in imgs)


def test_small_folder_keeps_one_for_calibration(tmp_path):
    src = open_calibration_source(_write_images(tmp_path / "imgs", 2), count=10, holdout=4)
    assert len(src.calib) == 1 and len(src.holdout) == 1
    one = open_calibration_source(_write_images(tmp_path / "one", 1), count=10, holdout=4)
    assert one.calib == [0] and one.holdout == []


def test_fingerprint_changes_with_content(tmp_path):
    folder = _write_images(tmp_path / "imgs", 5)
    a = open_calibration_source(folder, count=3, holdout=0).fingerprint()
    assert a == open_calibration_source(folder, count=3, holdout=0).fingerprint()
    cv2.imwrite(str(folder / "img_000.png"), np.full((48, 64, 3), 255, np.uint8))
    assert open_calibration_source(folder, count=3, holdout=0).fingerprint() != a


def test_video_frames_sampled_evenly(tmp_path):
    video = _write_video(tmp_path / "v.avi", 25)
    src = open_calibration_source(video, count=5, holdout=2)
    assert src.kind == "video" and len(src.items) == 25
    chosen = sorted(src.calib + src.holdout)
    assert chosen == evenly_spaced(25, 7)
    frames = list(src.iter_images(src.calib))
    assert len(frames) == 5
    # MJPG is lossy: the frame's value identifies it to within a few levels.
    got = [int(round(f.mean())) for f in frames]
    assert np.allclose(got, [8 * i for i in src.calib], atol=3)
    assert src.fingerprint() != open_calibration_source(video, count=4, holdout=2).fingerprint()


def test_errors(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(CalibrationError, match="no calibration images"):
        open_calibration_source(tmp_path / "empty")
    with pytest.raises(CalibrationError, match="does not exist"):
        open_calibration_source(tmp_path / "missing")
    junk = tmp_path / "junk.mp4"
    junk.write_bytes(b"this is not a video" * 100)
    with pytest.raises(CalibrationError, match="calibration video"):
        open_calibration_source(junk)
    folder = _write_images(tmp_path / "imgs", 3)
    (folder / "broken.png").write_bytes(b"not png")
    src = open_calibration_source(folder, count=10, holdout=0)
    with pytest.raises(CalibrationError, match="broken.png"):
        list(src.iter_images(src.calib))
    with pytest.raises(CalibrationError, match="calib_count must be at least 1"):
        open_calibration_source(folder, count=0)
