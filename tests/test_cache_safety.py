"""Caches and checkpoint files are verified, never trusted: bombs and absurd headers refused before any
allocation, a corrupt cached ONNX export rebuilt, an unwritable cache folder replaced by a temporary one.

Unwritable folders: the tests run as root, which ignores permission bits, so an "unwritable" cache is a
path that cannot be created at all -- its parent is a regular file (mkdir fails for every user).
"""

from __future__ import annotations

import io
import pickle
import resource
import zipfile
from collections import OrderedDict

import numpy as np
import pytest
import torch

from hhrnet_rt.core.errors import InputError, WeightsError
from hhrnet_rt.model.weights import read_checkpoint

pytestmark = pytest.mark.usefixtures("one_torch_thread")

TB = 1 << 40


def _rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # ru_maxrss is KiB on Linux


def _npy_header(shape, dtype="<f4") -> bytes:
    buf = io.BytesIO()
    np.lib.format.write_array_header_1_0(buf, {"descr": dtype, "fortran_order": False, "shape": shape})
    return buf.getvalue()


def test_npz_header_claiming_terabytes_is_refused_before_allocation(tmp_path):
    path = tmp_path / "bomb.npz"
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("w.npy", _npy_header((1 << 20, 1 << 20)) + b"\0" * 64)  # 4 TiB announced, 64 B held
    before = _rss_mib()
    with pytest.raises(WeightsError, match=r"announces shape \(1048576, 1048576\)"):
        read_checkpoint(path)
    assert _rss_mib() - before < 200  # peak RSS did not follow the header


def test_npz_decompression_bomb_is_refused(tmp_path):
    path = tmp_path / "zipbomb.npz"
    # A consistent header and 16 MiB of zeros, which deflate ~1000-fold (a real bomb repeats this to GBs).
    data = _npy_header((4, 1 << 20)) + bytes(16 << 20)
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("w.npy", data)
    assert path.stat().st_size < 100_000
    with pytest.raises(WeightsError, match="expands"):
        read_checkpoint(path)


def test_npz_object_array_and_broken_header(tmp_path):
    path = tmp_path / "obj.npz"
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("w.npy", _npy_header((2,), "|O") + b"\0" * 16)
    with pytest.raises(WeightsError, match="need pickle"):
        read_checkpoint(path)
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("w.npy", b"\x93NUMPY\x01\x00\xff\xffnot a header")
    with pytest.raises(WeightsError, match="no valid .npy header"):
        read_checkpoint(path)


def test_a_real_npz_and_pth_still_load(tmp_path):
    sd = OrderedDict(a=torch.arange(6.0).reshape(2, 3), b=torch.tensor([1, 2], dtype=torch.int64))
    torch.save(sd, tmp_path / "m.pth")
    torch.save(sd, tmp_path / "legacy.pth", _use_new_zipfile_serialization=False)
    np.savez(tmp_path / "m.npz", **{k: v.numpy() for k, v in sd.items()})
    for name in ("m.pth", "legacy.pth", "m.npz"):
        got = read_checkpoint(tmp_path / name)
        assert np.array_equal(np.asarray(got["a"]), sd["a"].numpy()), name


def test_torch_zip_pickle_announcing_a_huge_storage_is_refused(tmp_path):
    src = tmp_path / "m.pth"
    torch.save({"w": torch.arange(7.0)}, src)  # a storage of 7 floats; 7 is pickled as BININT1 7
    bomb = tmp_path / "bomb.pth"
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(bomb, "w") as zout:
        for info in zin.infolist():
            data = zin.read(info)
            if info.filename.endswith("data.pkl"):
                data = data.replace(b"K\x07", b"\x8a\x06" + (TB // 4).to_bytes(6, "little"), 1)
            zout.writestr(info, data)
    before = _rss_mib()
    with pytest.raises(
        WeightsError, match="storage 0 announces 1,099,511,627,776 bytes but the file holds 28"
    ):
        read_checkpoint(bomb)
    assert _rss_mib() - before < 200


def test_legacy_torch_file_announcing_a_huge_storage_is_refused(tmp_path):
    src = tmp_path / "legacy.pth"
    torch.save({"w": torch.arange(7.0)}, src, _use_new_zipfile_serialization=False)
    raw = src.read_bytes()
    # The storage's element count (7) sits in the object pickle's persistent id as BININT1 7.
    bomb = tmp_path / "bomb.pth"
    bomb.write_bytes(raw.replace(b"K\x07", b"\x8a\x06" + (TB // 4).to_bytes(6, "little"), 1))
    with pytest.raises(WeightsError, match="storages announce 1,099,511,627,776 bytes"):
        read_checkpoint(bomb)


def test_scanning_a_pickle_runs_no_code(tmp_path):
    import os

    from hhrnet_rt.model.guard import _StorageScan

    marker = tmp_path / "ran"

    class Boom:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    assert _StorageScan.scan(io.BytesIO(pickle.dumps({"x": Boom(), "y": [Boom()]}))) == {}
    assert not marker.exists()


def test_oversized_file_is_refused_without_reading(tmp_path, monkeypatch):
    from hhrnet_rt.model import guard as weights_guard

    path = tmp_path / "big.pth"
    path.write_bytes(b"\0" * 4096)
    monkeypatch.setattr(weights_guard, "MAX_CHECKPOINT_BYTES", 1024)
    with pytest.raises(WeightsError, match="no HigherHRNet checkpoint is that large"):
        read_checkpoint(path)


# -- the ONNX Runtime export cache ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def tiny_graph(tiny_network):
    from hhrnet_rt.model.graph import PoseGraph

    return PoseGraph(tiny_network, flip=False).eval()


@pytest.mark.slow
def test_corrupt_or_foreign_cached_export_is_rebuilt(tiny_graph, tmp_path, caplog):
    from hhrnet_rt.runtime.backends.onnxruntime_backend import OnnxRuntimeBackend

    first = OnnxRuntimeBackend.from_graph(tiny_graph, example_hw=(64, 64), cache_dir=tmp_path)
    path = first.onnx_path
    good = path.read_bytes()
    x = np.zeros((1, 3, 64, 64), np.float32)
    want = first.run(x)[0]

    path.write_bytes(good[: len(good) // 2])  # truncated (a full disk, a killed copy)
    with caplog.at_level("WARNING"):
        again = OnnxRuntimeBackend.from_graph(tiny_graph, example_hw=(64, 64), cache_dir=tmp_path)
    assert any("unusable" in r.getMessage() for r in caplog.records)
    np.testing.assert_array_equal(again.run(x)[0], want)  # same export, same ONNX Runtime: bit-identical

    # A valid ONNX file of another graph under this graph's cache name is not used either.
    from hhrnet_rt.model.graph import PoseGraph

    other = PoseGraph(tiny_graph.network, flip=False, project=False).eval()
    other_path = OnnxRuntimeBackend.from_graph(other, example_hw=(64, 64), cache_dir=tmp_path).onnx_path
    path.write_bytes(other_path.read_bytes())
    caplog.clear()
    with caplog.at_level("WARNING"):
        fixed = OnnxRuntimeBackend.from_graph(tiny_graph, example_hw=(64, 64), cache_dir=tmp_path)
    assert any("cache key" in r.getMessage() for r in caplog.records)
    assert fixed.run(x)[0].shape == want.shape


def test_unwritable_onnx_cache_falls_back_with_a_warning(tiny_graph, tmp_path, monkeypatch, caplog):
    from hhrnet_rt.runtime.backends.onnxruntime_backend import OnnxRuntimeBackend

    blocker = tmp_path / "file"
    blocker.write_text("")
    monkeypatch.setenv("HHRT_CACHE_DIR", str(blocker / "cache"))  # cannot be created: parent is a file
    monkeypatch.setattr("tempfile.tempdir", str(tmp_path / "tmp"))
    (tmp_path / "tmp").mkdir()
    with caplog.at_level("WARNING", logger="hhrnet_rt.core.paths"):
        backend = OnnxRuntimeBackend.from_graph(tiny_graph, example_hw=(64, 64))
    assert backend.onnx_path.parent.parent.parent == tmp_path / "tmp"
    assert any("cannot be written" in r.getMessage() for r in caplog.records)
    # An explicit folder that cannot be created is the caller's mistake: a clear InputError.
    with pytest.raises(InputError, match="cannot create the ONNX cache folder"):
        OnnxRuntimeBackend.from_graph(tiny_graph, example_hw=(64, 64), cache_dir=blocker / "x")


def test_garbage_onnx_given_directly_is_a_clear_error(tmp_path):
    from hhrnet_rt.runtime.backends.onnxruntime_backend import OnnxRuntimeBackend

    bad = tmp_path / "garbage.onnx"
    bad.write_bytes(b"\xff\xfe not protobuf" * 10)
    with pytest.raises(InputError, match="not an ONNX model ONNX Runtime can load"):
        OnnxRuntimeBackend(bad)
