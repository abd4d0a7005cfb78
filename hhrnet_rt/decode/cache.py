"""Where Numba keeps the compiled decode kernels, so a new process starts in well under a second.

Numba caches next to the sources (``hhrnet_rt/decode/__pycache__``) when it can write there. When the
package sits in a read-only place (a system site-packages, a container image) and the user has not set
``NUMBA_CACHE_DIR``, this module points Numba at a user cache folder instead -- and at a per-user
temporary folder if even that is not writable -- so no import ever fails for want of a cache.
It must run before any ``@njit(cache=True)`` kernel is defined: the decode package imports it first.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import numba
from numba import njit

PACKAGE_DIR = Path(__file__).resolve().parent


def _writable_dir(path: Path) -> bool:
    """True when ``path`` exists (or can be made) and a file can be created in it."""
    try:
        path.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=path):
            pass
        return True
    except OSError:
        return False


def user_cache_dir() -> Path:
    """The fallback cache folder: ``$XDG_CACHE_HOME/hhrnet_rt/numba`` or ``~/.cache/hhrnet_rt/numba``."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "hhrnet_rt" / "numba"


def configure() -> tuple[bool, str]:
    """Choose the cache location once, at import.

    Returns:
        ``(usable, description)``; ``usable`` is False only when no folder at all can be written.
    """
    if os.environ.get("NUMBA_CACHE_DIR"):
        return True, f"NUMBA_CACHE_DIR={os.environ['NUMBA_CACHE_DIR']}"
    if _writable_dir(PACKAGE_DIR / "__pycache__"):
        return True, f"in-tree {PACKAGE_DIR / '__pycache__'}"
    uid = os.getuid() if hasattr(os, "getuid") else "user"
    for candidate in (user_cache_dir(), Path(tempfile.gettempdir()) / f"hhrnet_rt-numba-{uid}"):
        if _writable_dir(candidate):
            # Numba reads config.CACHE_DIR when each cached kernel is defined, i.e. after this.
            numba.config.CACHE_DIR = str(candidate)
            return True, f"fallback {candidate}"
    return False, "no writable cache folder: the kernels compile in every process"


CACHE_USABLE, CACHE_LOCATION = configure()


def kernel(func):
    """``@njit(cache=True, nogil=True)``; ``cache`` only when a cache folder is usable (else Numba
    would refuse to define the kernel). No ``parallel=True``: it aborts when called from several threads."""
    return njit(cache=CACHE_USABLE, nogil=True)(func)
