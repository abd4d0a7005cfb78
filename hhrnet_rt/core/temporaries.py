"""The hidden temporary files hhrt writes beside a final file: their names, and how a dead run's are found.

Every temporary is named ``.NAME.hhrt-TAG.part.EXT``:

- hidden and beside its final file, so one rename publishes it (same file system);
- ``.EXT`` is the final file's suffix, so a tool that goes by suffix still knows what it holds;
- at most :data:`~hhrnet_rt.core.inputs.NAME_MAX` bytes: NAME is cut to fit, because a legal 250-byte
  output name must not make its temporary's name impossible (ENAMETOOLONG after the model has loaded);
- TAG says whose it is: ``p<pid>-<random>`` for a file one process writes (an export, a download, a COCO
  file), or a run id for files written by Ray workers on other machines (``--ray``).

A run that dies without its ``finally`` (SIGKILL, a lost node, a power cut) leaves its temporaries behind.
One is *stale* when nothing has written it for :data:`STALE_AFTER_S` and its process, where the tag names
one, is not alive on this machine: then no run can still publish it, and it is hhrt's by its name. The
caches' stale temporaries are listed by ``hhrt info`` and removed by ``hhrt cache clear``; those in an
output folder are removed by the next ``--ray`` run that writes into that folder (it says so).
"""

from __future__ import annotations

import os
import re
import secrets
import shutil
import time
from pathlib import Path

from hhrnet_rt.core.inputs import NAME_MAX

#: How long a temporary must have gone unwritten before it can be a dead run's: far longer than any pause
#: of a live writer (an export traces for minutes before it writes; a video writes every frame).
STALE_AFTER_S = 3600.0

_PATTERN = re.compile(r"^\.(?P<name>.+)\.hhrt-(?P<tag>[0-9A-Za-z-]+)\.part(?P<suffix>\.[^./]*)?$")


def _cut(text: str, max_bytes: int) -> str:
    """``text`` cut to at most ``max_bytes`` of UTF-8 (never inside a character)."""
    data = os.fsencode(text)
    if len(data) <= max_bytes:
        return text
    return os.fsdecode(data[:max_bytes].decode("utf-8", "ignore").encode())


def temporary_name(final: str | os.PathLike, tag: str) -> Path:
    """The temporary of ``final`` for ``tag``: ``.NAME.hhrt-TAG.part.EXT`` beside it, within NAME_MAX bytes."""
    final = Path(final)
    suffix = final.suffix if len(os.fsencode(final.suffix)) <= 16 else ""
    frame = f"..hhrt-{tag}.part{suffix}"
    name = _cut(final.name, NAME_MAX - len(os.fsencode(frame)))
    return final.parent / f".{name}.hhrt-{tag}.part{suffix}"


def process_tag() -> str:
    """A tag for a temporary this process writes: its pid (so a later run can tell it is dead) and a
    random part (so two temporaries never share a name)."""
    return f"p{os.getpid()}-{secrets.token_hex(4)}"


def is_temporary(path: str | os.PathLike) -> bool:
    """The name is one of hhrt's temporaries."""
    return _PATTERN.match(Path(path).name) is not None


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError, ValueError):  # another user's process (alive), or no pid at all
        return pid > 0
    return True


def is_stale(path: str | os.PathLike, *, now: float | None = None) -> bool:
    """One of hhrt's temporaries, unwritten for :data:`STALE_AFTER_S`, whose process (if named) is gone."""
    match = _PATTERN.match(Path(path).name)
    if match is None:
        return False
    try:
        info = os.lstat(path)
    except OSError:
        return False
    if not os.path.isfile(path) or os.path.islink(path):
        return False
    if (time.time() if now is None else now) - info.st_mtime < STALE_AFTER_S:
        return False
    pid = re.match(r"p(\d+)-", match["tag"])
    return pid is None or not _pid_alive(int(pid[1]))


def stale_temporaries(folder: str | os.PathLike[str]) -> list[Path]:
    """The stale temporaries directly in ``folder`` (none if it cannot be listed)."""
    try:
        with os.scandir(os.fspath(folder)) as entries:
            names = [e.path for e in entries if e.name.startswith(".") and _PATTERN.match(e.name)]
    except OSError:
        return []
    now = time.time()
    return sorted(Path(p) for p in names if is_stale(p, now=now))


def remove_temporary(path: Path) -> None:
    """Remove a temporary (a name :func:`temporary_name` made, never a user's): a file, or a folder (a
    format such as YOLO-pose is a folder of files) with what is in it."""
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    else:
        path.unlink(missing_ok=True)


def remove_stale_temporaries(folders: list[Path] | set[Path]) -> list[Path]:
    """Remove the stale temporaries in ``folders``; returns those removed (one that cannot be removed is
    left, quietly: it is a leftover, not the run's business)."""
    removed = []
    for folder in sorted(set(folders)):
        for path in stale_temporaries(folder):
            try:
                remove_temporary(path)
            except OSError:
                continue
            removed.append(path)
    return removed
