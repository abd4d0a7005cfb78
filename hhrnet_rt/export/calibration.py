"""Calibration images for INT8: a folder of images or frames sampled evenly from a video.

The images are split into a calibration set (used to compute activation ranges) and a small held-out
set (used by the agreement report, so INT8 is judged on images it was not calibrated on). Images are
loaded lazily, one at a time: a few hundred decoded 1080p frames would not fit in memory.

Example:
    >>> cs = open_calibration_source("calibration/", count=200)  # doctest: +SKIP
    >>> for bgr in cs.iter_images(cs.calib): ...                  # doctest: +SKIP
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from hhrnet_rt.artifacts.sidecar import sha256_file
from hhrnet_rt.core.errors import CalibrationError, option

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff")
DEFAULT_HOLDOUT = 4


def _fill_hint() -> str:
    return (
        "put 100-500 representative images (JPEG/PNG, people at the sizes you expect) in calibration/, "
        f"or pass {option('calib', 'VIDEO')} to sample frames from a video"
    )


def evenly_spaced(total: int, count: int) -> list[int]:
    """``count`` indices spread evenly over ``range(total)`` (all of them when count >= total)."""
    if count >= total:
        return list(range(total))
    return sorted({int(round(i)) for i in np.linspace(0, total - 1, count)})


def _split(indices: Sequence[int], holdout: int) -> tuple[list[int], list[int]]:
    """Take ``holdout`` items spread over ``indices`` out of it; keep at least one for calibration."""
    holdout = min(holdout, len(indices) - 1)
    if holdout <= 0:
        return list(indices), []
    picks = set(evenly_spaced(len(indices), holdout + 2)[1:-1][:holdout]) if len(indices) > 2 else {1}
    hold = [indices[i] for i in sorted(picks)]
    return [i for i in indices if i not in hold], hold


@dataclass
class CalibrationSource:
    """A folder or video, with the chosen calibration and held-out item indices.

    Attributes:
        path: the folder or video.
        kind: ``"folder"`` or ``"video"``.
        items: image paths (folder) or frame indices (video), in order.
        calib: indices into ``items`` used for calibration.
        holdout: indices into ``items`` kept for the agreement report.
    """

    path: Path
    kind: str
    items: list = field(repr=False)
    calib: list[int]
    holdout: list[int]

    def fingerprint(self) -> str:
        """sha256 over the calibration images' bytes (folder) or the video bytes and the frame indices."""
        h = hashlib.sha256()
        if self.kind == "folder":
            for i in self.calib:
                p = Path(self.items[i])
                h.update(p.name.encode())
                h.update(hashlib.sha256(p.read_bytes()).digest())
        else:
            h.update(sha256_file(self.path).encode())
            h.update(",".join(str(self.items[i]) for i in self.calib).encode())
        return h.hexdigest()

    def iter_images(self, which: Sequence[int]) -> Iterator[np.ndarray]:
        """Yield BGR uint8 images for the given indices into ``items``, in order."""
        if self.kind == "folder":
            for i in which:
                img = cv2.imread(str(self.items[i]), cv2.IMREAD_COLOR)
                if img is None:
                    raise CalibrationError(
                        f"cannot read calibration image {self.items[i]}; remove or replace it"
                    )
                yield img
        else:
            yield from _read_frames(self.path, [self.items[i] for i in which])


def _read_frames(video: Path, frame_indices: Sequence[int]) -> Iterator[np.ndarray]:
    # Sequential grab() + retrieve() of the wanted frames: seeking (CAP_PROP_POS_FRAMES) is not frame
    # accurate for every codec, and grab() skips the colour conversion of frames we do not keep.
    wanted = sorted(set(frame_indices))
    cap = cv2.VideoCapture(str(video))
    try:
        if not cap.isOpened():
            raise CalibrationError(
                f"cannot open calibration video {video}; is it a video file OpenCV can read?"
            )
        index, pos = 0, 0
        while pos < len(wanted):
            if not cap.grab():
                raise CalibrationError(
                    f"calibration video {video} ended at frame {index}, before frame {wanted[pos]}"
                )
            if index == wanted[pos]:
                ok, frame = cap.retrieve()
                if not ok:
                    raise CalibrationError(f"cannot decode frame {index} of calibration video {video}")
                yield frame
                pos += 1
            index += 1
    finally:
        cap.release()


def _count_frames(video: Path) -> int:
    cap = cv2.VideoCapture(str(video))
    try:
        if not cap.isOpened():
            raise CalibrationError(
                f"cannot open calibration video {video}; is it a video file OpenCV can read?"
            )
        # The container's frame count is an estimate for some formats; count by grabbing to be exact.
        n = 0
        while cap.grab():
            n += 1
    finally:
        cap.release()
    if n == 0:
        raise CalibrationError(f"calibration video {video} has no readable frames")
    return n


def open_calibration_source(
    path: str | Path, count: int = 200, holdout: int = DEFAULT_HOLDOUT
) -> CalibrationSource:
    """Open a folder of images or a video and choose ``count`` calibration items plus ``holdout`` others.

    Raises:
        CalibrationError: the path does not exist, holds no images, or the video cannot be read.
    """
    path = Path(path)
    if count < 1:
        raise CalibrationError(f"{option('calib_count')} must be at least 1, got {count}")
    items: list[Path] | list[int]  # image files, or frame indices of the video
    if path.is_dir():
        files = sorted(p for p in path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
        if not files:
            raise CalibrationError(f"no calibration images (*.jpg, *.png, ...) in {path}: {_fill_hint()}")
        kind, items = "folder", files
    elif path.is_file():
        kind, items = "video", list(range(_count_frames(path)))
    else:
        raise CalibrationError(f"calibration source {path} does not exist: {_fill_hint()}")
    # Calibration gets its `count` first; the held-out set gets what is left (at least one image when
    # there are two or more, so the agreement report is never measured on calibration images).
    holdout = min(holdout, max(len(items) - count, 1 if len(items) >= 2 else 0))
    chosen = evenly_spaced(len(items), count + holdout)
    calib, hold = _split(chosen, holdout)
    return CalibrationSource(path=path, kind=kind, items=items, calib=calib, holdout=hold)
