"""``hhrt info``: versions, devices, backends and caches, offline."""

from __future__ import annotations

import importlib.util
import json

import numpy as np
import torch
from typer.testing import CliRunner

from hhrnet_rt.cli import app
from hhrnet_rt.model.download import NAMED_WEIGHTS

runner = CliRunner()


def test_info_table(monkeypatch, tmp_path):
    monkeypatch.setenv("HHRT_CACHE_DIR", str(tmp_path / "weights"))
    monkeypatch.setenv("NUMBA_CACHE_DIR", str(tmp_path / "numba"))
    result = runner.invoke(app, ["info"])
    assert result.exit_code == 0, result.output
    out = result.stdout
    for label, version in (("torch", torch.__version__), ("numpy", np.__version__), ("python", None)):
        assert label in out
        if version:
            assert version in out
    for name in ("opencv", "numba", "onnxruntime", "PyAV", "tensorrt", "ONNX Runtime", "TensorRT"):
        assert name in out
    if importlib.util.find_spec("tensorrt") is None:
        assert "not installed" in out and "pip install" in out  # the whole hint wraps; JSON test below
    if not torch.cuda.is_available():
        assert "CPU only" in out
    assert "weights cache" in out and "numba cache" in out and "ONNX export cache" in out  # paths: JSON test
    assert "not downloaded" in out


def test_info_json_reports_cached_weights(monkeypatch, tmp_path):
    import hashlib

    from hhrnet_rt.model.download import NamedWeights

    cache = tmp_path / "weights"
    cache.mkdir()
    # "cached" means the hash was checked: w32_512's entry is made to expect this file's hash, while
    # w48_512's file has the right name and the wrong content.
    good = NamedWeights("https://example.invalid/good-" + hashlib.sha256(b"x").hexdigest()[:8] + ".pth",
                        hashlib.sha256(b"x").hexdigest()[:8])  # fmt: skip
    monkeypatch.setitem(NAMED_WEIGHTS, "w32_512", good)
    (cache / good.filename).write_bytes(b"x")
    (cache / NAMED_WEIGHTS["w48_512"].filename).write_bytes(b"x")
    monkeypatch.setenv("HHRT_CACHE_DIR", str(cache))
    monkeypatch.setenv("NUMBA_CACHE_DIR", str(tmp_path / "numba"))
    import tempfile

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))  # the cache's temporary fallback: empty here
    result = runner.invoke(app, ["info", "--json"])
    assert result.exit_code == 0, result.output
    facts = json.loads(result.stdout)
    assert facts["weights_cache"]["dir"] == str(cache)
    cached = facts["weights_cache"]["cached"]
    assert cached["w32_512"] is True and all(v is False for k, v in cached.items() if k != "w32_512")
    assert facts["weights_cache"]["hash_mismatch"] == {
        "w48_512": str(cache / NAMED_WEIGHTS["w48_512"].filename)
    }
    table = runner.invoke(app, ["info"]).stdout
    assert "sha256 verified" in table and "sha256 differs" in table
    from hhrnet_rt.decode import cache as numba_cache

    # The folder this process really uses (set when the decode package was imported), with its files.
    assert facts["numba_cache"]["dir"] == str(numba_cache.kernel_cache_dir())
    assert facts["numba_cache"]["files"] == len(numba_cache.cached_kernel_files())
    assert facts["onnx_cache"]["dir"] == str(cache / "onnx") and facts["onnx_cache"]["files"] == 0
    assert facts["versions"]["torch"] == torch.__version__
    assert len(facts["gpus"]) == (torch.cuda.device_count() if torch.cuda.is_available() else 0)
    if importlib.util.find_spec("tensorrt") is None:
        from hhrnet_rt.runtime.backends import select

        assert facts["backends"]["TensorRT"] == select.NO_TENSORRT  # choose_backend's words
    if importlib.util.find_spec("onnxruntime") is not None:
        assert "CPUExecutionProvider" in facts["backends"]["ONNX Runtime"]
