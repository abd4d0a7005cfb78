"""The Numba disk cache of the decode kernels: the user cache folder, fallbacks, stale-cache invalidation.

Each case copies the package to tmp_path and runs it in a fresh interpreter. The copy is writable, so a
cache beside the sources (what Numba does by default, and what ``pip uninstall`` leaves behind in
site-packages) would be possible: the tests check none is written there.

The probe is the smallest decode kernel, ``refine.quarter_from_neighbours`` (four scalars): the cache
treats every kernel alike, and it compiles in ~0.4 s where ``munkres`` took ~6 s in each fresh interpreter.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import hhrnet_rt

SCRIPT = """
import json, time
t0 = time.perf_counter()
import hhrnet_rt.decode as d
from hhrnet_rt.decode import cache
from hhrnet_rt.decode.refine import quarter_from_neighbours as probe
offsets = [float(v) for v in probe(1.0, 0.0, 0.0, 1.0)]  # right > left: +0.25; down < up: -0.25
print(json.dumps({"location": cache.CACHE_LOCATION, "usable": cache.CACHE_USABLE,
                  "dir": str(cache.kernel_cache_dir()), "offsets": offsets,
                  "hits": sum(probe.stats.cache_hits.values()),
                  "misses": sum(probe.stats.cache_misses.values())}))
"""


def _copy_package(tmp_path: Path) -> Path:
    root = tmp_path / "site"
    shutil.copytree(
        Path(hhrnet_rt.__file__).parent, root / "hhrnet_rt", ignore=shutil.ignore_patterns("__pycache__")
    )
    return root


def _numba_files(folder: Path) -> list[Path]:
    return [f for f in folder.rglob("*") if f.suffix in (".nbi", ".nbc")]


def _run(root: Path, home: Path, tmpdir: Path) -> dict:
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("NUMBA_CACHE_DIR", "XDG_CACHE_HOME", "HHRT_CACHE_DIR", "PYTHONPATH")
    }
    env.update(PYTHONPATH=str(root), HOME=str(home), TMPDIR=str(tmpdir), PYTHONDONTWRITEBYTECODE="1")
    proc = subprocess.run(
        [sys.executable, "-c", SCRIPT], env=env, cwd=root, capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_user_cache_folder_not_site_packages_and_stale_invalidation(tmp_path):
    root = _copy_package(tmp_path)
    home, tmpdir = tmp_path / "home", tmp_path / "tmp"
    home.mkdir()
    tmpdir.mkdir()

    first = _run(root, home, tmpdir)
    assert first["usable"] and first["location"].startswith("user cache")
    assert Path(first["dir"]).is_relative_to(home / ".cache" / "hhrnet-rt" / "numba")
    assert first["offsets"] == [0.25, -0.25]
    assert first["misses"] >= 1  # compiled, then written to the user cache
    assert list(Path(first["dir"]).glob("refine.*.nbi"))
    # Nothing beside the sources: an uninstall leaves no compiled files behind.
    assert _numba_files(root) == []

    second = _run(root, home, tmpdir)
    assert second["hits"] >= 1 and second["misses"] == 0  # loaded from disk, not compiled

    # Editing any decode module drops every decode cache file: a cached caller must never keep
    # running the old code of a kernel it calls from another file.
    argmax = root / "hhrnet_rt" / "decode" / "argmax.py"
    argmax.write_text(argmax.read_text() + "\n# edited\n")
    third = _run(root, home, tmpdir)
    assert third["misses"] >= 1 and third["hits"] == 0


def test_temp_folder_when_home_cache_is_not_writable(tmp_path):
    root = _copy_package(tmp_path)
    home, tmpdir = tmp_path / "home", tmp_path / "tmp"
    home.mkdir()
    tmpdir.mkdir()
    (home / ".cache").write_text("a file where the cache folder would go")
    out = _run(root, home, tmpdir)
    assert out["usable"] and Path(out["dir"]).is_relative_to(tmpdir)
    assert _numba_files(root) == []
    assert out["offsets"] == [0.25, -0.25]


def test_configure_prefers_numba_cache_dir(monkeypatch, tmp_path):
    from hhrnet_rt.decode import cache

    monkeypatch.setenv("NUMBA_CACHE_DIR", str(tmp_path))
    usable, where = cache.configure()
    assert usable and where == f"NUMBA_CACHE_DIR={tmp_path}"
