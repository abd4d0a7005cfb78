"""Where Numba keeps the compiled decode kernels, so a new process starts in well under a second.

The kernels are cached in the ``numba`` folder of the package's user cache (:mod:`hhrnet_rt.core.paths`:
``~/.cache/hhrnet-rt/numba`` or ``$HHRT_CACHE_DIR/numba``), never beside the sources: a cache in
``site-packages`` is left behind by ``pip uninstall`` (Numba's files are not in the wheel's RECORD) and
cannot be written on a read-only install. ``NUMBA_CACHE_DIR``, when set, wins (Numba's own setting). If
the user cache cannot be written, :func:`hhrnet_rt.core.paths.writable_cache_dir` falls back to a private
temporary folder, and if nothing can be written the kernels compile in every process; no import ever
fails for want of a cache. It must run before any ``@njit(cache=True)`` kernel is defined: the decode
package imports it first.

Numba checks a cached kernel only against its own source file, not against the kernels it calls in
other files: after an edit of ``argmax.py`` the cached ``parse.decode_maps`` would still run the old
``argmax`` code. So the cache also carries a digest of all decode sources, and every decode cache file
is dropped when the digest changes.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any

import numba
from numba import njit

from hhrnet_rt.core import paths

PACKAGE_DIR = Path(__file__).resolve().parent
CACHE_SUBDIR = "numba"
# Numba's settings: numba.config creates them at import from the environment (globals().update), so a
# type checker sees none of them.
_NUMBA_CONFIG: Any = numba.config


def configure() -> tuple[bool, str]:
    """Choose the cache location once, at import.

    Returns:
        ``(usable, description)``; ``usable`` is False only when no folder at all can be written.
    """
    if os.environ.get("NUMBA_CACHE_DIR"):
        return True, f"NUMBA_CACHE_DIR={os.environ['NUMBA_CACHE_DIR']}"
    try:
        folder = paths.writable_cache_dir(CACHE_SUBDIR)
    except OSError:
        return False, "no writable cache folder: the kernels compile in every process"
    # Numba reads config.CACHE_DIR when each cached kernel is defined, i.e. after this.
    _NUMBA_CONFIG.CACHE_DIR = str(folder)
    return True, f"user cache {folder}"


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
    if _NUMBA_CONFIG.CACHE_DIR:
        from numba.core.caching import _CacheLocator

        sub = _CacheLocator.get_suitable_cache_subpath(str(PACKAGE_DIR / "parse.py"))
        return Path(_NUMBA_CONFIG.CACHE_DIR).resolve() / sub
    return PACKAGE_DIR / "__pycache__"  # only when no folder could be written (then nothing is cached)


def _is_kernel_file(path: Path) -> bool:
    stem = path.name.split(".", 1)[0]
    return path.name == _STAMP or (stem in _KERNEL_MODULES and path.suffix in (".nbi", ".nbc"))


def cached_kernel_files() -> list[Path]:
    """Every cache file of the decode kernels that hhrnet-rt wrote: in the folder in use now, and under
    the ``numba`` folders of the package cache and its temporary fallback (other installs and checkouts
    of the package keep their kernels in sub-folders there). Files of other Numba users are not listed.
    """
    folders = [kernel_cache_dir(), *(p for p in paths.cache_candidates(CACHE_SUBDIR))]
    found: dict[Path, None] = {}
    for folder in folders:
        if folder.is_dir():
            for f in folder.rglob("*"):
                if f.is_file() and not f.is_symlink() and _is_kernel_file(f):
                    found[f] = None
    return list(found)


def kernels_cached() -> bool:
    """Whether the disk cache holds the main decode kernels already (their index files), so loading them
    takes a fraction of a second instead of a compile of about half a minute. A guess for messages only:
    Numba may still recompile (another CPU, another Numba)."""
    if not CACHE_USABLE:
        return False
    folder = kernel_cache_dir()
    return all(any(folder.glob(f"{name}.*.nbi")) for name in ("munkres", "parse", "peaks", "refine"))


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
