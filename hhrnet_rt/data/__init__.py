"""The sample that ships with the package: a 4-second clip of people walking (``hhrt demo`` runs on it,
the documentation's examples read it) and hand-placed keypoints of its people on one frame.

``walking.mp4`` is 40 frames (768x576, 10 FPS, H.264) cut from OpenCV's sample video ``vtest.avi``
(Apache-2.0 / BSD-3-Clause); where it comes from, how it was cut and its licence: ``README.md`` and
``LICENSE.vtest`` in this folder.

Example:
    >>> frame = sample_frame()
    >>> frame.shape, frame.dtype
    ((576, 768, 3), dtype('uint8'))
"""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path

import numpy as np

SAMPLE_VIDEO = "walking.mp4"
SAMPLE_KEYPOINTS = "walking_frame20_keypoints.json"


def _file(name: str) -> Path:
    """A file of this folder as a real path (an installed wheel holds it as a plain file)."""
    path = Path(str(resources.files(__name__).joinpath(name)))
    if not path.is_file():
        raise FileNotFoundError(f"the package's sample file {path} is missing: reinstall hhrnet-rt")
    return path


def sample_video() -> Path:
    """Path of the bundled clip: 40 frames, 768x576, 10 FPS, several people walking."""
    return _file(SAMPLE_VIDEO)


def sample_frame(index: int = 20) -> np.ndarray:
    """Frame ``index`` (0-39) of the bundled clip as a BGR uint8 array, as ``cv2.imread`` gives pictures.

    The default, frame 20, is the one :func:`sample_keypoints` annotates.

    Raises:
        IndexError: ``index`` is not a frame of the clip.
    """
    import cv2

    capture = cv2.VideoCapture(str(sample_video()))
    try:
        frame = None
        for _ in range(index + 1):
            ok, frame = capture.read()
            if not ok:
                frame = None
                break
    finally:
        capture.release()
    if index < 0 or frame is None:
        raise IndexError(f"the sample clip has frames 0 to 39, not {index}")
    return frame


def sample_keypoints() -> tuple[int, np.ndarray]:
    """``(frame index, keypoints)``: the people of one frame of the clip as placed by hand (not by a model),
    (P, 17, 3) float32 ``x, y, 1.0`` in COCO order; drawing them shows what a correct result looks like."""
    record = json.loads(_file(SAMPLE_KEYPOINTS).read_text())
    xy = np.asarray(record["people"], np.float32)
    keypoints = np.concatenate([xy, np.ones((*xy.shape[:2], 1), np.float32)], axis=2)
    return int(record["frame"]), keypoints
