"""What the user typed as inputs -> the list of inputs: files, folders, glob patterns and (video) URLs.

- a file is kept as given (whatever its extension: the reader checks it and says what is wrong);
- a folder gives the images (or videos) in it, by extension, sorted by name; ``recursive`` walks
  sub-folders too (symlinked folders are not followed: no loops), hidden files and the default run folder
  (earlier results) are skipped;
- a pattern with ``*``, ``?`` or ``[`` that names no existing file is expanded like the shell does
  (quoted patterns reach us unexpanded; ``**`` spans folders with ``recursive``);
- for videos, ``http(s)://``, ``rtsp(s)://`` and ``rtmp://`` addresses are kept as text for FFmpeg.

A folder or pattern that yields nothing is an error (a typo should not look like an empty success).
The same file reached twice (``a.jpg`` and ``*.jpg``) is processed once.
"""

from __future__ import annotations

import glob
import os
from collections.abc import Iterable
from pathlib import Path

from hhrnet_rt.core.errors import InputError
from hhrnet_rt.core.inputs import shown
from hhrnet_rt.core.runs import DEFAULT_RUNS_ROOT
from hhrnet_rt.video.sources import is_url

# The kinds OpenCV's imread decodes in common builds; anything else in a folder is not an image of ours.
IMAGE_SUFFIXES = frozenset(
    ".bmp .dib .jpg .jpeg .jpe .jp2 .png .webp .tif .tiff .pbm .pgm .ppm .pnm .sr .ras .exr .hdr .pic".split()
)
VIDEO_SUFFIXES = frozenset(".mp4 .m4v .mov .mkv .webm .avi .mpg .mpeg .ts .mts .m2ts .wmv .flv .3gp".split())
_GLOB_CHARS = frozenset("*?[")


def expand_images(specs: Iterable[str], *, recursive: bool = False) -> list[Path]:
    """Image paths for ``hhrt image``: files, folders (image extensions), globs; see the module doc."""
    return [Path(p) for p in _expand(specs, IMAGE_SUFFIXES, "image", recursive=recursive)]


def expand_videos(specs: Iterable[str], *, recursive: bool = False) -> list[str | Path]:
    """Inputs for ``hhrt video``: paths as :class:`Path`, URLs as text, in the order given."""
    out: list[str | Path] = []
    seen: set[str | Path] = set()  # a set, not the list: 10,000 inputs must not take n² comparisons
    for spec in specs:
        found = (
            [spec]
            if is_url(spec)
            else map(Path, _expand([spec], VIDEO_SUFFIXES, "video", recursive=recursive))
        )
        for item in found:
            if item not in seen:
                seen.add(item)
                out.append(item)
    return out


def _expand(specs: Iterable[str], suffixes: frozenset[str], kind: str, *, recursive: bool) -> list[str]:
    found: list[str] = []
    seen: set[str] = set()
    for spec in specs:
        for path in _one(spec, suffixes, kind, recursive=recursive):
            key = os.path.realpath(path)
            if key not in seen:
                seen.add(key)
                found.append(path)
    return found


def _one(spec: str, suffixes: frozenset[str], kind: str, *, recursive: bool) -> list[str]:
    if os.path.isdir(spec):
        files = _folder_files(spec, suffixes, recursive=recursive)
        if not files:
            deeper = "" if recursive else " (add --recursive to look in sub-folders)"
            raise InputError(f"folder {spec} holds no {kind} files{deeper}")
        return files
    if _GLOB_CHARS & set(spec) and not os.path.lexists(spec):
        matches = sorted(m for m in glob.glob(spec, recursive=recursive) if not os.path.isdir(m))
        if not matches:
            raise InputError(f"no file matches {spec!r}")
        return matches
    return [spec]  # a file, or a missing name: the reader's check gives the precise message


def _folder_files(folder: str, suffixes: frozenset[str], *, recursive: bool) -> list[str]:
    runs = os.path.realpath(DEFAULT_RUNS_ROOT)
    files: list[str] = []
    unlisted: list[OSError] = []  # a folder that cannot be listed is said, not skipped in silence
    for root, dirs, names in os.walk(folder, onerror=unlisted.append):  # no followlinks: no loops
        dirs[:] = sorted(
            d for d in dirs if not d.startswith(".") and os.path.realpath(os.path.join(root, d)) != runs
        )
        files.extend(
            os.path.join(root, name)
            for name in sorted(names)
            if not name.startswith(".") and os.path.splitext(name)[1].lower() in suffixes
        )
        if not recursive:
            break
    if unlisted:
        first = unlisted[0]
        more = f" (and {len(unlisted) - 1} more folders)" if len(unlisted) > 1 else ""
        raise InputError(
            f"cannot list folder {shown(first.filename or folder)}: {first.strerror or first}{more}; "
            "give hhrt read access to it, or leave it out of the inputs"
        )
    return files
