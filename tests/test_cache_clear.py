"""``hhrt cache clear``: deletes the files hhrnet-rt cached, and never anything else in those folders."""

from __future__ import annotations

import json
import tempfile

import pytest
from typer.testing import CliRunner

from hhrnet_rt.cli import app
from hhrnet_rt.decode import cache as numba_cache
from hhrnet_rt.model.download import NAMED_WEIGHTS

runner = CliRunner()


@pytest.fixture
def caches(monkeypatch, tmp_path):
    """A package cache holding one file of each kind hhrt writes, plus files hhrt did not write."""
    root = tmp_path / "cache"
    kernels = root / "numba" / "decode_1234"  # Numba's per-source-folder sub-folder
    kernels.mkdir(parents=True)
    (root / "onnx").mkdir()
    monkeypatch.setenv("HHRT_CACHE_DIR", str(root))
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "tmp"))  # the temporary fallback: empty
    (tmp_path / "tmp").mkdir()
    # This process's kernel folder (NUMBA_CACHE_DIR of the test run) must not be touched by the test.
    monkeypatch.setattr(numba_cache, "kernel_cache_dir", lambda: kernels)
    ours = {
        "numba": [kernels / "parse.decode_maps-42.py311.nbi", kernels / "parse.decode_maps-42.py311.1.nbc",
                  kernels / "hhrnet_decode_sources.sha1"],
        "onnx": [root / "onnx" / "posegraph_k17_flip_proj_0123456789abcdef.onnx"],
        "weights": [root / NAMED_WEIGHTS["w32_512"].filename],
    }  # fmt: skip
    theirs = [kernels / "other_module.f-1.py311.nbi", root / "onnx" / "my_model.onnx", root / "notes.txt"]
    for f in [*sum(ours.values(), []), *theirs]:
        f.write_bytes(b"x" * 100)
    return ours, theirs


def test_clear_deletes_kernels_and_exports_only(caches):
    ours, theirs = caches
    result = runner.invoke(app, ["cache", "clear"])
    assert result.exit_code == 0, result.output
    assert not any(f.exists() for f in ours["numba"] + ours["onnx"])
    assert all(f.exists() for f in ours["weights"] + theirs)  # weights only with --weights
    assert "3 files, freed 300 B" in result.stdout and "1 file, freed 100 B" in result.stdout


def test_clear_weights_too(caches):
    ours, theirs = caches
    result = runner.invoke(app, ["cache", "clear", "--weights"])
    assert result.exit_code == 0, result.output
    assert not any(f.exists() for f in sum(ours.values(), []))
    assert all(f.exists() for f in theirs)


def test_dry_run_deletes_nothing(caches):
    ours, theirs = caches
    result = runner.invoke(app, ["cache", "clear", "--weights", "--dry-run"])
    assert result.exit_code == 0, result.output
    assert all(f.exists() for f in [*sum(ours.values(), []), *theirs])
    for f in sum(ours.values(), []):
        assert f"would delete {f}" in result.stdout
    assert not any(str(f) in result.stdout for f in theirs)


def test_info_reports_the_caches_hhrt_clear_empties(caches):
    ours, _ = caches
    facts = json.loads(runner.invoke(app, ["info", "--json"]).stdout)
    assert facts["onnx_cache"]["files"] == 1 and facts["onnx_cache"]["bytes"] == 100
    assert facts["numba_cache"]["files"] == 3 and facts["numba_cache"]["bytes"] == 300
    runner.invoke(app, ["cache", "clear"])
    facts = json.loads(runner.invoke(app, ["info", "--json"]).stdout)
    assert facts["onnx_cache"]["files"] == 0 and facts["numba_cache"]["files"] == 0
