"""The one per-user cache folder of the package; weights, exported ONNX files and compiled kernels live
in sub-folders of it, so `hhrt info` can show one place and users can clear one place."""

from __future__ import annotations

import os
from pathlib import Path


def cache_dir() -> Path:
    """``$HHRT_CACHE_DIR``, else ``$XDG_CACHE_HOME/hhrnet-rt``, else ``~/.cache/hhrnet-rt``."""
    if env := os.environ.get("HHRT_CACHE_DIR"):
        return Path(env).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base).expanduser() / "hhrnet-rt"
