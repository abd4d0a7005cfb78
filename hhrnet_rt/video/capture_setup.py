"""Opening an OpenCV capture quietly, and asking a camera for a frame size and rate.

OpenCV and the FFmpeg inside it print their own diagnostics straight to the terminal while a capture opens
(``[ WARN:0@0.01] global cap_v4l.cpp:914 open VIDEOIO(V4L2:/dev/video0): can't open camera by index``,
``[tcp @ 0x...] Connection ... refused``), several lines for one missing camera, before hhrt's one-line
message that says the same. They are silenced here; ``HHRT_DEBUG=1`` keeps them, for diagnosing a camera.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from typing import Any

#: FFmpeg's AV_LOG_QUIET; OpenCV passes ``OPENCV_FFMPEG_LOGLEVEL`` to ``av_log_set_level`` when it opens
#: its first FFmpeg capture.
_FFMPEG_QUIET = "-8"


@contextlib.contextmanager
def quiet_opencv() -> Iterator[None]:
    """OpenCV's log silenced for the duration (restored afterwards), FFmpeg's for the process."""
    import cv2

    if os.environ.get("HHRT_DEBUG"):
        yield
        return
    os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", _FFMPEG_QUIET)  # a user's own setting wins
    logging = cv2.utils.logging
    before = logging.getLogLevel()
    logging.setLogLevel(logging.LOG_LEVEL_SILENT)
    try:
        yield
    finally:
        logging.setLogLevel(before)


def request_format(
    cap: Any, *, width: int | None, height: int | None, fps: float | None
) -> tuple[tuple[int, int], float | None, str | None]:
    """Ask ``cap`` for a frame size and rate; returns ((width, height), fps, warning).

    Cameras take the nearest mode they support, or ignore the request (and a file always does), so what
    is returned is what the capture reports afterwards; the warning (``None`` when everything asked for
    was granted) says what differs.
    """
    import cv2

    for prop, value in ((cv2.CAP_PROP_FRAME_WIDTH, width), (cv2.CAP_PROP_FRAME_HEIGHT, height),
                        (cv2.CAP_PROP_FPS, fps)):  # fmt: skip
        if value is not None:
            cap.set(prop, float(value))
    size = (int(cap.get(cv2.CAP_PROP_FRAME_WIDTH)), int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT)))
    got_fps = float(cap.get(cv2.CAP_PROP_FPS) or 0.0) or None
    differs = []
    if (width is not None and size[0] != width) or (height is not None and size[1] != height):
        asked = f"{width or size[0]}x{height or size[1]}"
        differs.append(f"{size[0]}x{size[1]} instead of the requested {asked}")
    if fps is not None and (got_fps is None or abs(got_fps - fps) > 0.01 * fps):
        got = f"{got_fps:g} FPS" if got_fps else "an unreported rate"
        differs.append(f"{got} instead of the requested {fps:g} FPS")
    warning = f"the source delivers {' and '.join(differs)}" if differs else None
    return size, got_fps, warning
