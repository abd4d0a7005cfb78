"""The preview window (OpenCV HighGUI), driven from the main thread by the pipeline.

GUI toolkits (Qt in the opencv-python wheel) must be used from one thread, normally the main one, so the
pipeline's output thread only hands the newest image over and the main thread shows it here.
"""

from __future__ import annotations

import os
import sys

import numpy as np

from hhrnet_rt.core.errors import InputError

_QUIT_KEYS = (ord("q"), ord("Q"), 27)  # q or Esc


def gui_problem() -> str | None:
    """Why a window cannot be opened here, or ``None`` when it can."""
    if sys.platform.startswith("linux") and not (
        os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")
    ):
        return "no display is available (neither DISPLAY nor WAYLAND_DISPLAY is set)"
    import cv2

    info = cv2.getBuildInformation()
    gui = info.split("GUI:", 1)[1].splitlines()[0].strip() if "GUI:" in info else ""
    if not gui or gui.upper() == "NONE":
        return "this OpenCV build has no GUI support (opencv-python-headless?); install opencv-python"
    return None


class Window:
    """A named OpenCV window; ``show`` returns ``False`` once the user pressed q or Esc or closed it.

    Raises:
        InputError: no display or no GUI-capable OpenCV (see :func:`gui_problem`).
    """

    def __init__(self, title: str = "hhrt") -> None:
        problem = gui_problem()
        if problem:
            raise InputError(f"cannot open a window: {problem}")  # the CLI says what to do instead
        import cv2

        self.title = title
        self._cv2 = cv2
        self._opened = False

    def show(self, image: np.ndarray | None) -> bool:
        """Show ``image`` (``None``: keep the last one) and handle keys; ``False`` means quit."""
        cv2 = self._cv2
        if image is not None:
            cv2.imshow(self.title, image)
            self._opened = True
        key = cv2.waitKey(1) & 0xFF
        if key in _QUIT_KEYS:
            return False
        # The user closed the window with the mouse: treat like q.
        return not (self._opened and cv2.getWindowProperty(self.title, cv2.WND_PROP_VISIBLE) < 1)

    def close(self) -> None:
        if self._opened:
            self._cv2.destroyWindow(self.title)
            self._cv2.waitKey(1)


#: The tiled window of several streams is at most this wide (each tile is shrunk to fit).
TILE_MAX_WIDTH = 1920


def tile(images: list[np.ndarray | None]) -> np.ndarray:
    """Several streams' pictures in one: a near-square grid, every tile the size of the first picture
    (shrunk so the grid fits ``TILE_MAX_WIDTH``); a stream with no picture yet is a black tile."""
    import cv2

    first = next(image for image in images if image is not None)
    cols = int(np.ceil(np.sqrt(len(images))))
    rows = int(np.ceil(len(images) / cols))
    h, w = first.shape[:2]
    shrink = min(1.0, TILE_MAX_WIDTH / (cols * w))
    tw, th = max(1, int(w * shrink)), max(1, int(h * shrink))
    grid = np.zeros((rows * th, cols * tw, 3), np.uint8)
    for k, image in enumerate(images):
        if image is None:
            continue
        r, c = divmod(k, cols)
        cell = (
            image
            if image.shape[:2] == (th, tw)
            else cv2.resize(image, (tw, th), interpolation=cv2.INTER_AREA)
        )
        grid[r * th : (r + 1) * th, c * tw : (c + 1) * tw] = cell
    return grid
