"""Where Numba keeps the compiled decode kernels, so a new process starts in well under a second.

Numba caches next to the sources (``hhrnet_rt/decode/__pycache__``) when it can write there. When the
package sits in a read-only place (a system site-packages, a container image) and the user has not set
``NUMBA_CACHE_DIR``, this module points Numba at a user cache folder instead -- and at a per-user
temporary folder if even that is not writable -- so no import ever fails for want of a cache.
It must run before any ``@njit(cache=True)`` kernel is defined: the decode package imports it first.

Numba checks a cached kernel only against its own source file, not against the kernels it calls in
other files: after an edit of ``argmax.py`` the cached ``parse.decode_maps`` would still run the old
``argmax`` code. So the cache also carries a digest of all decode sources, and every decode cache file
is dropped when the digest changes.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path

import numba
from numba import njit

from hhrnet_rt.paths import cache_dir

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
    """The fallback cache folder: the ``numba`` folder of the package cache (:mod:`hhrnet_rt.paths`)."""
    return cache_dir() / "numba"


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

# Every module of this package that defines cached kernels.
_KERNEL_MODULES = ("argmax", "device_host", "grouping", "munkres", "npsum", "parse", "peaks", "refine")
_STAMP = "hhrnet_decode_sources.sha1"


def sources_digest() -> str:
    """SHA-1 over the sources of every kernel module (and this one)."""
    h = hashlib.sha1()
    for name in (*_KERNEL_MODULES, "cache"):
        h.update(name.encode())
        h.update((PACKAGE_DIR / f"{name}.py").read_bytes())
    return h.hexdigest()


def kernel_cache_dir() -> Path:
    """The folder where Numba writes this package's cache files under the current configuration."""
    if numba.config.CACHE_DIR:
        from numba.core.caching import _CacheLocator

        sub = _CacheLocator.get_suitable_cache_subpath(str(PACKAGE_DIR / "parse.py"))
        return Path(numba.config.CACHE_DIR).resolve() / sub
    return PACKAGE_DIR / "__pycache__"


def drop_stale_cache() -> bool:
    """Delete the decode kernels' cache files if the sources changed since they were written.

    Returns:
        True if files were checked and the stamp is current, False if the folder is unusable.
    """
    try:
        folder = kernel_cache_dir()
        digest = sources_digest()
        stamp = folder / _STAMP
        if stamp.is_file() and stamp.read_text().strip() == digest:
            return True
        folder.mkdir(parents=True, exist_ok=True)
        for name in _KERNEL_MODULES:
            for pattern in (f"{name}.*.nbi", f"{name}.*.nbc"):
                for f in folder.glob(pattern):
                    f.unlink(missing_ok=True)
        stamp.write_text(digest + "\n")
        return True
    except (OSError, ImportError, AttributeError):
        # A cache we cannot inspect is not worth failing an import for; Numba still works.
        return False


if CACHE_USABLE:
    drop_stale_cache()


def kernel(func):
    """``@njit(cache=True, nogil=True)``; ``cache`` only when a cache folder is usable (else Numba
    would refuse to define the kernel). No ``parallel=True``: it aborts when called from several threads."""
    return njit(cache=CACHE_USABLE, nogil=True)(func)
