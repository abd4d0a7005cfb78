"""The one per-user cache folder of the package; weights, exported ONNX files and compiled kernels live
in sub-folders of it, so `hhrt info` can show one place and users can clear one place.

When that folder cannot be written (``HHRT_CACHE_DIR`` on a read-only mount, a home directory that is a
file, ...), :func:`writable_cache_dir` falls back to a private per-user temporary folder and logs a
warning once, instead of failing a run over a cache.
"""

from __future__ import annotations

import logging
import os
import stat
import tempfile
from pathlib import Path

log = logging.getLogger(__name__)

_warned: set[str] = set()


def cache_dir() -> Path:
    """``$HHRT_CACHE_DIR``, else ``$XDG_CACHE_HOME/hhrnet-rt``, else ``~/.cache/hhrnet-rt``."""
    if env := os.environ.get("HHRT_CACHE_DIR"):
        return Path(env).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base).expanduser() / "hhrnet-rt"


def is_writable_dir(path: Path) -> bool:
    """True when ``path`` exists (or can be made) and a file can be created in it (tried, not guessed:
    permission bits say nothing for root or on read-only mounts)."""
    try:
        path.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=path, prefix=".hhrt-probe-"):
            pass
        return True
    except OSError:
        return False


def fallback_cache_dir() -> Path:
    """A per-user folder under the system temporary directory, private to this user (mode 0700).

    A folder of that name that another user owns, or that others can write, is not trusted (anyone can
    create names in /tmp); a fresh private folder is made instead.
    """
    uid = os.getuid() if hasattr(os, "getuid") else 0
    path = Path(tempfile.gettempdir()) / f"hhrnet-rt-cache-{uid}"
    try:
        path.mkdir(mode=0o700, exist_ok=True)
        info = path.lstat()
        private = stat.S_ISDIR(info.st_mode) and not info.st_mode & 0o022
        if private and (not hasattr(os, "getuid") or info.st_uid == uid):
            return path
    except OSError:
        pass
    return Path(tempfile.mkdtemp(prefix="hhrnet-rt-cache-"))


def writable_cache_dir(sub: str = "") -> Path:
    """``cache_dir() / sub`` when it can be written, else the same sub-folder of the temporary fallback.

    The fallback is announced once per folder with a logging warning (the CLI shows it on stderr).
    """
    preferred = cache_dir() / sub if sub else cache_dir()
    if is_writable_dir(preferred):
        return preferred
    fallback = fallback_cache_dir() / sub if sub else fallback_cache_dir()
    fallback.mkdir(parents=True, exist_ok=True)
    if str(preferred) not in _warned:
        _warned.add(str(preferred))
        log.warning(
            "warning: the cache folder %s cannot be written; using %s for this run (set HHRT_CACHE_DIR to "
            "a writable folder to keep the cache between runs)",
            preferred,
            fallback,
        )
    return fallback


def cache_candidates(sub: str = "") -> list[Path]:
    """Where a cached file may already be: the configured folder, then the temporary fallback."""
    preferred = cache_dir() / sub if sub else cache_dir()
    uid = os.getuid() if hasattr(os, "getuid") else 0
    fallback = Path(tempfile.gettempdir()) / f"hhrnet-rt-cache-{uid}"
    return [preferred, fallback / sub if sub else fallback]
