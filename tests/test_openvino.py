"""The OpenVINO backend (optional extra): golden parity in fp32, the int8 IR build on the tiny model,
the refusals, and the CLI. Skipped where openvino is not installed (CI installs it)."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from pathlib import Path

import cv2
import numpy as np
import pytest
from typer.testing import CliRunner

pytest.importorskip("openvino")

from hhrnet_rt.cli import app  # noqa: E402
from hhrnet_rt.core.errors import BackendUnavailableError, InputError  # noqa: E402
from hhrnet_rt.runtime.backends import create_backend, select  # noqa: E402
from hhrnet_rt.runtime.backends.select import choose_backend  # noqa: E402
from hhrnet_rt.runtime.estimator import PoseEstimator  # noqa: E402

pytestmark = [pytest.mark.openvino, pytest.mark.usefixtures("one_torch_thread")]
runner = CliRunner()
REPO = Path(__file__).resolve().parents[1]


# -- fp32: the golden pipeline case end to end -------------------------------------------------------


# x, y must match to 1e-3 px (they are integer peak positions plus the +-0.25 adjust, so any real
# difference is >= 0.25 px). Joint and person scores are read from the maps, so they carry the maps'
# absolute error: OpenVINO's convolution and Resize kernels differ from torch's in the last bits
# (measured on this machine: joint scores <= 1.5e-6, person scores <= 3e-7), the same order as ONNX
# Runtime's, hence the same atol 1e-5 as its parity test (tests/test_estimator.py). Precision is pinned to
# f32 by the backend, so a bf16-capable CPU does not widen this.
@pytest.mark.parametrize("size", [128, 256])
@pytest.mark.parametrize("flip", [True, False], ids=["flip", "noflip"])
def test_fp32_golden_parity(tiny_estimator, golden_npz, golden_bgr, size, flip):
    z = golden_npz("pipeline_case")
    name = f"s{size}_{'flip' if flip else 'noflip'}"
    est = tiny_estimator("openvino", size, flip=flip)
    assert est.backend.name == "openvino" and est.backend.precision == "fp32"
    poses = est.predict(golden_bgr)
    final_preds, scores = z[f"{name}_final_preds"], z[f"{name}_scores"]
    assert len(poses) == len(final_preds)
    np.testing.assert_allclose(poses.keypoints[..., :2], final_preds[..., :2], rtol=0, atol=1e-3)
    np.testing.assert_allclose(poses.keypoints[..., 2], final_preds[..., 2], rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(poses.scores, scores, rtol=1e-5, atol=1e-5)


def test_shares_the_onnx_export_cache_and_reuses_outputs_safely(tiny_weights, onnx_cache):
    from hhrnet_rt.runtime.backends.onnx_cache import cached_export_path

    est = PoseEstimator(tiny_weights, input_size=64, flip=False, backend="openvino",
                        onnx_cache_dir=onnx_cache, onnx_threads=1)  # fmt: skip
    backend = est.backend
    from hhrnet_rt.runtime.backends import Backend

    assert isinstance(backend, Backend) and backend.tensor_native is False and backend.max_batch is None
    # The file it runs is the ONNX Runtime backend's cached export of the same graph (one export for both).
    assert backend.model_path == cached_export_path(est.graph, onnx_cache)
    assert backend.describe()["threads"] == 1 and list(backend.describe())[:3] == [
        "backend",
        "device",
        "precision",
    ]

    rng = np.random.default_rng(0)
    a, b = (rng.standard_normal((1, 3, 64, 96)).astype(np.float32) for _ in range(2))
    first = backend.run(a)
    kept = [o.copy() for o in first]
    held = backend.run(b)  # `first` is still referenced: its buffers must not be written
    for out, copy in zip(first, kept, strict=True):
        np.testing.assert_array_equal(out, copy)
    assert not any(np.shares_memory(x, y) for x, y in zip(first, held, strict=True))
    released = {o.ctypes.data for o in (*first, *held)}
    del first, held, out
    again = backend.run(a)  # nothing references the earlier buffers now: a pair of them is reused
    assert {o.ctypes.data for o in again} <= released
    for out, copy in zip(again, kept, strict=True):
        np.testing.assert_array_equal(out, copy)


_DROP_TWO_THEN_SIGNAL = """
import gc, os, signal, sys
from hhrnet_rt.runtime.backends.openvino_backend import OpenVinoBackend
older, newer = OpenVinoBackend(sys.argv[1]), OpenVinoBackend(sys.argv[1])
del older; gc.collect()  # out of creation order, as when a pipeline drops its first estimator
del newer; gc.collect()
signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(0))
os.kill(os.getpid(), signal.SIGTERM)  # handled on the main thread, on its alternate signal stack
sys.exit(3)
"""


def test_backends_dropped_out_of_order_leave_signals_working(tiny_onnx_build):
    # A fresh interpreter: what is at stake is a process killed by SIGSEGV (exit -11) when the CLI's
    # SIGTERM handler runs. OpenVINO's CPU plugin gives each ov.Core's compiling thread an alternate
    # signal stack and puts back the one it found when that Core goes; with a Core per backend, the older
    # backend dropped first left the newer one's freed stack in place.
    done = subprocess.run([sys.executable, "-c", _DROP_TWO_THEN_SIGNAL, str(tiny_onnx_build.onnx_path)],
                          cwd=REPO, capture_output=True, text=True, timeout=120)  # fmt: skip
    assert done.returncode == 0, f"exit {done.returncode}: {done.stderr[-2000:]}"


def test_concurrent_calls_each_get_their_own_result(tiny_weights, onnx_cache):
    est = PoseEstimator(tiny_weights, input_size=64, flip=False, backend="openvino",
                        onnx_cache_dir=onnx_cache, onnx_threads=1)  # fmt: skip
    rng = np.random.default_rng(1)
    inputs = [rng.standard_normal((1, 3, 64, 64)).astype(np.float32) for _ in range(4)]
    expected = [[o.copy() for o in est.backend.run(x)] for x in inputs]
    results: dict[int, list[np.ndarray]] = {}

    def work(i):
        for _ in range(3):
            results[i] = [o.copy() for o in est.backend.run(inputs[i])]

    threads = [threading.Thread(target=work, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert sorted(results) == [0, 1, 2, 3]
    for i in range(4):
        for got, want in zip(results[i], expected[i], strict=True):
            np.testing.assert_array_equal(got, want)


def test_predict_batch_equals_predict(tiny_estimator, golden_bgr):
    est = tiny_estimator("openvino", 128, flip=True)
    other = np.ascontiguousarray(golden_bgr[:, ::-1])  # same size, another picture: one batch of 2
    batch = est.predict_batch([golden_bgr, other])
    # One call of batch 2 against two calls of batch 1: oneDNN may block the work differently, which
    # moves the maps in the last bits (as for ONNX Runtime); positions are peaks (+-0.25), so exact to 1e-3.
    for poses, image in zip(batch, [golden_bgr, other], strict=True):
        single = est.predict(image)
        assert len(poses) == len(single) > 0
        np.testing.assert_allclose(poses.keypoints[..., :2], single.keypoints[..., :2], rtol=0, atol=1e-3)
        np.testing.assert_allclose(poses.keypoints[..., 2], single.keypoints[..., 2], rtol=0, atol=1e-5)


# -- backend choice and refusals --------------------------------------------------------------------


def test_choice_auto_stays_onnxruntime_without_a_file_and_picks_openvino_for_an_ir():
    assert choose_backend("auto")[:2] == ("onnxruntime", "cpu")
    assert choose_backend("auto", device="cpu")[:2] == ("onnxruntime", "cpu")
    name, device, reason = choose_backend("auto", engine="m.xml")
    assert (name, device) == ("openvino", "cpu") and "OpenVINO" in reason
    assert choose_backend("OpenVINO")[:2] == ("openvino", "cpu")
    with pytest.raises(InputError, match="CPU only"):
        choose_backend("openvino", device="cuda")


def test_missing_package_names_the_extra(monkeypatch, tiny_weights):
    monkeypatch.setattr(select, "openvino_available", lambda: False)
    with pytest.raises(BackendUnavailableError, match=r'pip install -e "\.\[openvino\]"'):
        choose_backend("openvino")
    assert "not installed" in select.backend_status()["OpenVINO"]
    monkeypatch.setitem(sys.modules, "openvino", None)  # installed-but-gone: the lazy import says the same
    from hhrnet_rt.runtime.backends.openvino_backend import OpenVinoBackend

    with pytest.raises(BackendUnavailableError, match=r'pip install -e "\.\[openvino\]"'):
        OpenVinoBackend(tiny_weights)


def test_precision_and_file_refusals(tmp_path, tiny_weights):
    est = PoseEstimator(tiny_weights, input_size=64, flip=False, backend="torch")
    with pytest.raises(InputError, match="--target openvino --precision int8"):
        create_backend("openvino", est.graph, precision="int8", cache_dir=tmp_path)
    bad = tmp_path / "model.xml"
    bad.write_text("<net>not a model</net>")
    with pytest.raises(InputError, match="not a model OpenVINO can read"):
        create_backend("openvino", None, engine=bad)
    with pytest.raises(InputError, match="no sidecar"):  # an IR without its sidecar is refused up front
        PoseEstimator(None, backend="openvino", engine=bad)


@pytest.mark.slow
def test_precision_comes_from_the_file(tmp_path, tiny_weights):
    from hhrnet_rt.export.build import export_graph, load_network
    from hhrnet_rt.runtime.backends.openvino_backend import OpenVinoBackend

    half = export_graph(load_network(tiny_weights), tmp_path / "h.onnx", flip=False, input_size=64, fp16=True)
    assert OpenVinoBackend(half).precision == "fp16"
    with pytest.raises(InputError, match="is a fp16 OpenVINO model but precision fp32 was requested"):
        create_backend("openvino", None, engine=half, precision="fp32")


def test_info_lists_openvino():
    result = runner.invoke(app, ["info", "--json"])
    assert result.exit_code == 0, result.output
    facts = json.loads(result.output)
    assert facts["versions"]["openvino"] != "not installed"
    assert facts["backends"]["OpenVINO"].startswith("available")


# -- int8: build, layout, agreement, run -----------------------------------------------------------


@pytest.fixture(scope="module")
def int8_build(tmp_path_factory, tiny_weights):
    """``hhrt build-engine --target openvino --precision int8`` on the tiny model (input 64, 4 images)."""
    work = tmp_path_factory.mktemp("ov-build")
    folder = work / "calibration"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for i in range(7):
        small = rng.integers(0, 256, (12, 16, 3), dtype=np.uint8)
        cv2.imwrite(str(folder / f"f{i}.png"), cv2.resize(small, (160, 120), interpolation=cv2.INTER_CUBIC))
    args = ["build-engine", "--weights", str(tiny_weights), "--precision", "int8", "--target", "openvino",
            "--input-size", "64", "--out", str(work / "eng"), "--calib", str(folder), "--calib-count", "4"]  # fmt: skip
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(work)
        mp.setitem(sys.modules, "tensorrt", None)  # --target openvino must not need (or try) TensorRT
        result = runner.invoke(app, args)
    return work, result


@pytest.mark.slow
def test_int8_build_layout_sidecar_and_agreement(int8_build):
    from hhrnet_rt.export.openvino_build import openvino_int8_layout

    work, result = int8_build
    assert result.exit_code == 0, result.output
    xml = work / "eng" / "tiny_model-64-int8-openvino.xml"
    assert xml.is_file() and xml.with_suffix(".bin").is_file(), result.output
    assert "--backend openvino --engine" in result.output

    layout = openvino_int8_layout(xml)
    print("layout:", layout)
    assert layout["fake_quantize"] > 100  # activations quantised through the network (tiny model: ~500)
    assert layout["int8_weight_convs"] >= layout["convs"] - layout["final_convs"] > 0  # every other conv int8
    assert layout["final_convs"] > 0 and layout["float_final_convs"] == layout["final_convs"]
    assert layout["quantized_ops_in_tail"] == 0  # the flip/projection tail reads float outputs only

    side = json.loads((work / "eng" / "tiny_model-64-int8-openvino.json").read_text())
    assert side["precision"] == "int8" and side["tensorrt"] is None
    assert side["calibration"]["target"] == "openvino" and side["calibration"]["count"] == 4
    assert side["openvino"]["xml"] == xml.name and side["openvino"]["inference_precision_hint"] == "f32"
    assert side["onnx"]["file"] == "tiny_model-64-int8-openvino.fp32.onnx"
    agreement = side["agreement"]
    print("agreement:", agreement)
    assert "held-out" in agreement["images_from"]
    # Measured on the tiny model (input 64, 4 calibration images, NNCF defaults): heatmap max |err| 0.070,
    # mean 0.012, peak agreement 0.96 -- the ORT CPU int8 file of the same model: 0.064 / 0.011 / 0.97
    # (tests/test_quantize_cpu.py). The tiny model (random weights, 8..64 channels) quantises far worse
    # than a trained W32; these bounds catch broken scales or a quantised output layer (errors of order 1,
    # peaks near 0), with room for NNCF's version-to-version changes.
    assert 0 < agreement["heatmap_max_abs"] < 0.25
    assert agreement["heatmap_mean_abs"] < 0.04
    assert agreement["peak_agreement"] > 0.7


@pytest.mark.slow
def test_int8_ir_runs_from_the_cli_and_is_checked(int8_build, tmp_path):
    work, result = int8_build
    assert result.exit_code == 0, result.output
    xml = work / "eng" / "tiny_model-64-int8-openvino.xml"
    picture = tmp_path / "pic.png"
    cv2.imwrite(str(picture), cv2.imread(str(work / "calibration" / "f0.png")))

    ran = runner.invoke(app, ["image", str(picture), "--backend", "openvino", "--engine", str(xml),
                              "--out", str(tmp_path / "out"), "--json"])  # fmt: skip
    assert ran.exit_code == 0, ran.output
    assert "backend: openvino" in ran.output and "precision int8" in ran.output
    assert (tmp_path / "out" / "pic.png").is_file() and (tmp_path / "out" / "pic.json").is_file()

    est = PoseEstimator(None, backend="auto", engine=xml)  # auto: only OpenVINO runs an IR
    assert est.backend.name == "openvino" and est.input_size == 64 and est.flip is True
    with pytest.raises(InputError, match="precision fp32 was requested"):
        PoseEstimator(None, backend="openvino", engine=xml, precision="fp32")

    refused = runner.invoke(app, ["image", str(picture), "--backend", "onnxruntime", "--engine", str(xml),
                                  "--out", str(tmp_path / "o2")])  # fmt: skip
    assert refused.exit_code == 2 and "only --backend openvino runs" in refused.output

    # A damaged weights file is noticed from the sidecar's hash before OpenVINO reads it.
    copy = tmp_path / "eng"
    copy.mkdir()
    for f in (work / "eng").iterdir():
        (copy / f.name).write_bytes(f.read_bytes())
    weights_bin = copy / xml.with_suffix(".bin").name
    data = bytearray(weights_bin.read_bytes())
    data[len(data) // 2] ^= 0xFF
    weights_bin.write_bytes(bytes(data))
    damaged = runner.invoke(app, ["image", str(picture), "--backend", "openvino", "--engine",
                                  str(copy / xml.name), "--out", str(tmp_path / "o3")])  # fmt: skip
    assert damaged.exit_code == 2 and "sha256 differs" in damaged.output


def test_build_refuses_fp16_and_never_overwrites(tmp_path, tiny_weights, monkeypatch):
    monkeypatch.chdir(tmp_path)
    fp16 = runner.invoke(app, ["build-engine", "--weights", str(tiny_weights), "--precision", "fp16",
                               "--target", "openvino"])  # fmt: skip
    assert fp16.exit_code == 2 and "fp32 or int8" in fp16.output
    (tmp_path / "eng").mkdir()
    mine = tmp_path / "eng" / "tiny_model-64-fp32-openvino.bin"
    mine.write_bytes(b"a user's file")
    clash = runner.invoke(app, ["build-engine", "--weights", str(tiny_weights), "--precision", "fp32",
                                "--target", "openvino", "--input-size", "64", "--out", "eng"])  # fmt: skip
    assert clash.exit_code != 0 and "exists" in clash.output
    assert mine.read_bytes() == b"a user's file"
    assert not (tmp_path / "eng" / "tiny_model-64-fp32-openvino.xml").exists()


@pytest.mark.slow
def test_fp32_ir_build_runs_like_its_onnx(tmp_path, tiny_weights, monkeypatch):
    from hhrnet_rt.runtime.backends.openvino_backend import OpenVinoBackend

    monkeypatch.chdir(tmp_path)
    built = runner.invoke(app, ["build-engine", "--weights", str(tiny_weights), "--precision", "fp32",
                                "--target", "openvino", "--input-size", "64", "--no-flip", "--out", "eng"])  # fmt: skip
    assert built.exit_code == 0, built.output
    xml = tmp_path / "eng" / "tiny_model-64-fp32-openvino-noflip.xml"
    side = json.loads(xml.with_suffix(".json").read_text())
    assert side["precision"] == "fp32" and side["agreement"] is None and side["calibration"] is None
    ir, onnx = (
        OpenVinoBackend(xml, threads=1),
        OpenVinoBackend(tmp_path / "eng" / side["onnx"]["file"], threads=1),
    )
    assert ir.precision == onnx.precision == "fp32"
    x = np.random.default_rng(2).standard_normal((1, 3, 64, 128)).astype(np.float32)
    # The same float graph in the same runtime; the IR keeps fp32 weights (compress_to_fp16=False), so
    # only the order of float operations may differ (fp16 weights would differ by ~1e-3).
    for a, b in zip(ir.run(x), onnx.run(x), strict=True):
        np.testing.assert_allclose(a, b, rtol=0, atol=1e-5)


def test_build_without_openvino_stops_before_any_work(tmp_path, tiny_weights, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setitem(sys.modules, "openvino", None)
    result = runner.invoke(app, ["build-engine", "--weights", str(tiny_weights), "--precision", "fp32",
                                 "--target", "openvino", "--input-size", "64", "--out", "eng"])  # fmt: skip
    from hhrnet_rt.cli.app import EXIT_BACKEND

    assert result.exit_code == EXIT_BACKEND, result.output  # a runtime this machine lacks
    text = " ".join(result.output.split())
    assert 'pip install -e ".[openvino]"' in text and "--target cpu" in text
    assert not (tmp_path / "eng").exists() or not any((tmp_path / "eng").iterdir())  # nothing exported


def test_sidecar_refuses_a_malformed_openvino_entry():
    from hhrnet_rt.artifacts.sidecar import Sidecar
    from hhrnet_rt.core.errors import EngineMismatchError

    good = Sidecar(name="m", precision="int8", input_size=64, flip=True, weights="w", num_joints=17,
                   shape_profile={k: [1, 3, 64, 64] for k in ("min", "opt", "max")},
                   onnx={"file": "m.fp32.onnx", "sha256": "0" * 64},
                   openvino={"version": "x", "xml": "m.xml", "xml_sha256": "1" * 64, "bin": "m.bin",
                             "bin_sha256": "2" * 64}).to_dict()  # fmt: skip
    assert Sidecar.from_dict(good).openvino["xml"] == "m.xml"
    # Files are looked up beside the sidecar only: a path elsewhere on the disk is not a file name.
    for bad in (
        {**good["openvino"], "bin": "../elsewhere.bin"},
        {**good["openvino"], "xml_sha256": 5},
        "m.xml",
    ):
        with pytest.raises(EngineMismatchError, match="openvino must be"):
            Sidecar.from_dict({**good, "openvino": bad})
