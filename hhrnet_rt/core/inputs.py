"""Input files: the one check that a path names a regular, readable file, and the image reader.

Every path a user gives for reading (a video, an image, a checkpoint, an engine or ONNX file) goes
through :func:`check_input_file` before anything opens it, so the message says what is actually wrong:
a FIFO or ``/dev/stdin`` is a pipe (opening it would block, and decoders need to seek), a name over
255 bytes is too long (``stat`` fails with ENAMETOOLONG, which ``Path.exists`` turns into a traceback
and Click into "does not exist"), a directory is not a file, and so on. ``stat`` never blocks, so the
check is safe on pipes; only a regular file is opened (to prove it is readable).
"""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path

import numpy as np

from hhrnet_rt.core.errors import HhrtError, InputError
from hhrnet_rt.core.jpeg import CUT_SHORT, SOI_MAGIC, jpeg_cut_short

NAME_MAX = 255  # bytes per path component on ext4, XFS, Btrfs, APFS, NTFS (UTF-16 units there)
_STDIN_NAMES = {"-", "/dev/stdin", "/dev/fd/0", "/proc/self/fd/0"}
_SHOWN_CHARS = 60
# Decoders seek (mp4 keeps its index at the end; checkpoints are zip files), which a stream cannot.
_REGULAR_ONLY = "hhrt reads only regular files: save the data to a file and pass that"


def shown(path: str | os.PathLike) -> str:
    """The path for a one-line message: very long names are cut in the middle."""
    text = os.fspath(path)
    if len(text) <= 2 * _SHOWN_CHARS:
        return text
    return f"{text[:_SHOWN_CHARS]}…{text[-_SHOWN_CHARS // 2 :]}"


def _too_long(path: str) -> str:
    longest = max(path.split(os.sep), key=lambda part: len(os.fsencode(part)))
    size = len(os.fsencode(longest))
    if size > NAME_MAX:
        return f"its name is too long ({size} bytes; file systems allow at most {NAME_MAX} bytes per name)"
    return f"the path is too long ({len(os.fsencode(path))} bytes)"


def _not_a_regular_file(path: str, mode: int) -> str:
    if stat.S_ISDIR(mode):
        return "is a directory; give a file"
    if stat.S_ISFIFO(mode):
        kind = "standard input, which here is a pipe" if path in _STDIN_NAMES else "a pipe (FIFO)"
    elif stat.S_ISCHR(mode):
        kind = "standard input, which here is a terminal or device" if path in _STDIN_NAMES else "a device"
    elif stat.S_ISSOCK(mode):
        kind = "a socket"
    else:
        kind = "not a regular file"
    return f"is {kind}; {_REGULAR_ONLY}"


def input_file_problem(path: str | os.PathLike) -> str | None:
    """Why ``path`` cannot be read as a regular file (a phrase that follows the path), or ``None``."""
    text = os.fspath(path)
    try:
        mode = os.stat(text).st_mode  # follows links: /dev/stdin -> /proc/self/fd/0 -> what stdin is
    except FileNotFoundError:
        if text == "-":  # the Unix habit for "standard input"; hhrt takes files only
            return f"(standard input in other tools) does not exist as a file; {_REGULAR_ONLY}"
        return "does not exist (file not found)"
    except OSError as exc:
        if exc.errno == errno.ENAMETOOLONG:
            return f"cannot be used: {_too_long(text)}"
        if exc.errno == errno.ENOTDIR:
            return "does not exist (a part of the path is a file, not a directory)"
        if exc.errno == errno.ELOOP:
            return "cannot be used: it is a loop of symbolic links"
        return f"cannot be used ({exc.strerror or exc})"
    if not stat.S_ISREG(mode):
        return _not_a_regular_file(text, mode)
    try:  # a regular file: opening it is harmless, and os.access would say yes to root regardless
        os.close(os.open(text, os.O_RDONLY))
    except OSError as exc:
        return f"cannot be read ({exc.strerror or exc})"
    return None


def check_input_file(path: str | os.PathLike, what: str, *, error: type[HhrtError] = InputError) -> Path:
    """``path`` as a Path if it is a regular file this process can read.

    Args:
        path: the user's path.
        what: what the file is for, starting the message ("video file", "checkpoint file").
        error: the exception class to raise (the CLI picks the exit code from it).

    Raises:
        InputError (or ``error``): one line naming the path and what is wrong with it.

    Example:
        >>> check_input_file("/dev/stdin", "video file")   # doctest: +SKIP
        InputError: video file /dev/stdin is standard input, which here is a pipe; hhrt reads only ...
    """
    problem = input_file_problem(path)
    if problem is not None:
        raise error(f"{what} {shown(path)} {problem}")
    return Path(path)


def is_regular_file(path: str | os.PathLike) -> bool:
    """Like ``Path.is_file`` but ``False`` (never an exception) for names the OS refuses."""
    try:
        return stat.S_ISREG(os.stat(os.fspath(path)).st_mode)
    except (OSError, ValueError):
        return False


def check_image_file(path: str | os.PathLike) -> Path:
    """``path`` if it is a readable regular file with an extension OpenCV can decode.

    Raises:
        InputError: see :func:`check_input_file`; or no OpenCV reader for this kind of file.
    """
    import cv2

    path = check_input_file(path, "image")
    if not cv2.haveImageReader(str(path)):  # opens the file: safe only after the regular-file check
        raise InputError(f"{shown(path)} is not an image OpenCV can read")
    return path


def read_image(path: str | os.PathLike, *, exif_orientation: bool = True) -> np.ndarray:
    """Read an image file as (H, W, 3) uint8 BGR.

    Args:
        path: the image file (checked with :func:`check_input_file` first).
        exif_orientation: turn the picture upright as its EXIF Orientation tag says (what phone photos
            need, and what image viewers do). ``False`` keeps the stored pixel order, as the official
            COCO loader does (``cv2.IMREAD_IGNORE_ORIENTATION``), for comparisons with official numbers.

    Raises:
        InputError: not a readable file, not an image OpenCV can decode, or a JPEG cut short (OpenCV
            would fill the rest with grey and say nothing).
    """
    import cv2

    path = check_image_file(path)
    with open(path, "rb") as file:
        if file.read(2) == SOI_MAGIC and jpeg_cut_short(SOI_MAGIC + file.read()):
            raise InputError(f"{shown(path)}: the JPEG image is {CUT_SHORT}")
    flags = cv2.IMREAD_COLOR if exif_orientation else cv2.IMREAD_COLOR | cv2.IMREAD_IGNORE_ORIENTATION
    picture = cv2.imread(str(path), flags)
    if picture is None:
        raise InputError(f"{shown(path)} could not be decoded as an image")
    return picture
