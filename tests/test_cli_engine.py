"""``hhrt build-engine`` through Typer's CliRunner: ONNX + sidecar without TensorRT (exit 5), INT8 with
calibration and its cache, and every error path. Tiny golden model at input size 64 to stay fast."""

from __future__ import annotations

import json
import sys

import cv2
import numpy as np
import onnx
import pytest
from typer.testing import CliRunner

from hhrnet_rt.cli import app

runner = CliRunner()


@pytest.fixture
def no_tensorrt(monkeypatch):
    # Makes `import tensorrt` fail even where it is installed, so the exit-5 path is what runs.
    monkeypatch.setitem(sys.modules, "tensorrt", None)


@pytest.fixture
def workdir(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # calibration/ (the default source) lives under the cwd
    monkeypatch.setenv("HHRT_CACHE_DIR", str(tmp_path / "cache"))  # the range caches go there
    return tmp_path


def _images(folder, n=6):
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for i in range(n):
        small = rng.integers(0, 256, (12, 16, 3), dtype=np.uint8)
        cv2.imwrite(str(folder / f"f{i}.png"), cv2.resize(small, (160, 120), interpolation=cv2.INTER_CUBIC))
    return folder


def _build(*args):
    return runner.invoke(app, ["build-engine", *args])


@pytest.mark.slow
def test_fp16_without_tensorrt_writes_onnx_and_sidecar_then_exits_5(workdir, golden_dir, no_tensorrt):
    weights = str(golden_dir / "tiny_model.npz")
    result = _build("--weights", weights, "--precision", "fp16", "--input-size", "64", "--out", "eng", "--name", "t",
                    "--no-flip", "--max-batch", "3")  # fmt: skip
    assert result.exit_code == 5, result.output
    # "[tensorrt]" would vanish if handle_errors printed the message as Rich markup.
    assert 'pip install -e ".[tensorrt]"' in result.output and "NVIDIA GPU" in result.output
    assert "eng/t.onnx" in result.output.replace("\\", "/")
    assert (workdir / "eng" / "t.onnx").is_file() and (workdir / "eng" / "t.fp32.onnx").is_file()
    model = onnx.load(str(workdir / "eng" / "t.onnx"))
    assert any(i.data_type == onnx.TensorProto.FLOAT16 for i in model.graph.initializer)
    sidecar = json.loads((workdir / "eng" / "t.json").read_text())
    assert sidecar["precision"] == "fp16" and sidecar["tensorrt"] is None
    assert sidecar["shape_profile"]["min"] == [1, 3, 64, 64]
    # --max-batch sets the largest batch; TensorRT still tunes for batch 1 (opt), one live stream's shape.
    assert sidecar["shape_profile"]["max"][0] == 3 and sidecar["shape_profile"]["opt"][0] == 1
    agreement = sidecar["agreement"]
    assert agreement["images"] == 2 and "synthetic" in agreement["images_from"]
    assert 0 < agreement["heatmap_max_abs"] < 0.01  # see test_quantize for the measured fp16 error
    assert "keypoint_agreement" in agreement and "people_agreement" in agreement
    assert "peak agreement" in result.output  # the Rich table was printed


@pytest.mark.slow
def test_int8_calibrates_once_then_uses_the_cache(workdir, golden_dir, no_tensorrt):
    _images(workdir / "calibration")
    weights = str(golden_dir / "tiny_model.npz")
    args = ["--weights", weights, "--precision", "int8", "--input-size", "64", "--out", "eng", "--name", "q",
            "--calib-count", "4", "--calib-method", "minmax", "--shapes", "64:64x128:128", "--no-flip"]  # fmt: skip
    first = _build(*args)
    assert first.exit_code == 5, first.output
    # Said while it works (plain lines: no terminal here): the calibration's images read and time left.
    assert "calibrating on 4 images" in first.output and "(4/4 images)" in first.output
    assert "(1/4 images, about" in first.output and "warning" not in first.output
    side = json.loads((workdir / "eng" / "q.json").read_text())
    assert side["calibration"]["cache_hit"] is False and side["calibration"]["images"] == 4
    assert side["agreement"]["images"] == 2 and "held-out" in side["agreement"]["images_from"]
    assert side["shape_profile"]["opt"] == [1, 3, 64, 128]
    caches = list((workdir / "cache" / "calibration").glob("*.calib.json"))
    assert len(caches) == 1
    ops = {n.op_type for n in onnx.load(str(workdir / "eng" / "q.onnx")).graph.node}
    assert {"QuantizeLinear", "DequantizeLinear"} <= ops
    # The line a first int8 build prints per deconvolution (TensorRT's part follows the engine build).
    assert "deconvolution /network/deconv_layers.0/" in first.output
    assert "weight scales on axis 0 (42); ONNX Runtime int8 vs fp32 output: max |err|" in first.output
    assert side["calibration"]["deconv_weight_axis"] == 0
    (deconv,) = side["agreement"]["deconvolutions"]
    assert deconv["weight_axis"] == 0 and deconv["scales"] == 42 and deconv["max_abs"] > 0
    # The first build's files are the user's now: a second build into the same names needs --overwrite.
    before = (workdir / "eng" / "q.onnx").read_bytes()
    refused = _build(*args)
    assert refused.exit_code == 2, refused.output
    assert "already exists" in refused.output and "--overwrite" in refused.output
    assert (workdir / "eng" / "q.onnx").read_bytes() == before
    second = _build(*args, "--overwrite", "--deconv-weight-axis", "1")
    assert second.exit_code == 5, second.output
    side2 = json.loads((workdir / "eng" / "q.json").read_text())
    assert side2["calibration"]["cache_hit"] is True and side2["calibration"]["images"] is None
    assert "calibrating" not in second.output  # the weight axis does not change activation ranges
    assert side2["calibration"]["deconv_weight_axis"] == 1 and "weight scales on axis 1 (8)" in second.output


def test_fewer_calibration_images_than_asked_is_a_warning(workdir, golden_dir):
    from hhrnet_rt.export.build import build_onnx_files

    _images(workdir / "few", n=3)
    said = []

    class Stop(Exception):
        pass

    def warn(message):  # said before any export work; stop there, the rest is tested above
        said.append(message)
        raise Stop

    with pytest.raises(Stop):
        build_onnx_files(golden_dir / "tiny_model.npz", "int8", input_size=64, calib="few", calib_count=200,
                         out_dir="eng", warn=warn)  # fmt: skip
    assert "only 2 calibration images (1 more held out" in said[0] and "calib_count=200 asked for" in said[0]


def test_int8_without_calibration_images(workdir, golden_dir):
    (workdir / "calibration").mkdir()
    result = _build(
        "--weights", str(golden_dir / "tiny_model.npz"), "--precision", "int8", "--input-size", "64"
    )
    assert result.exit_code == 7, result.output
    assert "no calibration images" in result.output
    assert not (workdir / "engines").exists() or not list((workdir / "engines").glob("*.onnx"))


def test_unreadable_calibration_video(workdir, golden_dir):
    bad = workdir / "clip.mp4"
    bad.write_bytes(b"\x00not a video" * 50)
    result = _build(
        "--weights", str(golden_dir / "tiny_model.npz"), "--precision", "int8", "--calib", str(bad)
    )
    assert result.exit_code == 7, result.output
    assert "calibration video" in result.output


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--precision", "int4"], "int4"),
        (["--shapes", "512:256"], "MIN:OPT:MAX"),
        (["--shapes", "512:300:1024"], "multiples of 64"),
        (["--shapes", "1024:512:512"], "MIN <= OPT <= MAX"),
        (["--shapes", "a:b:c"], "integers"),
        (["--input-size", "100"], "multiple of 64"),
        (["--deconv-weight-axis", "2"], "--deconv-weight-axis"),
    ],
)
def test_bad_arguments_exit_2(workdir, args, needle):
    result = _build("--weights", "random", *args)
    assert result.exit_code == 2, result.output
    assert needle in result.output


def test_max_batch_and_shapes_are_one_or_the_other(workdir):
    result = _build("--weights", "random", "--max-batch", "4", "--shapes", "512:512:1024")
    assert result.exit_code != 0 and "Traceback" not in result.output
    assert "--max-batch" in result.output and "--shapes" in result.output and "NxHxW" in result.output


def test_tensorrt_missing_message_names_the_onnx_and_the_extra(no_tensorrt, tmp_path):
    from hhrnet_rt.core.errors import TensorRTUnavailableError
    from hhrnet_rt.runtime.backends.tensorrt_backend import import_tensorrt

    with pytest.raises(TensorRTUnavailableError) as info:
        import_tensorrt(tmp_path / "m.onnx")
    msg = str(info.value)
    assert "pip install tensorrt" in msg and str(tmp_path / "m.onnx") in msg
    assert "hhrnet-rt[tensorrt]" not in msg  # hhrnet-rt is not published on PyPI


def test_missing_weights_file(workdir):
    result = _build("--weights", str(workdir / "nope.pth"), "--precision", "fp32")
    assert result.exit_code == 3, result.output


def test_build_never_replaces_existing_files_without_overwrite(workdir, golden_dir, no_tensorrt):
    # Checked before any export work: the user's file under a build name stays as it was.
    (workdir / "eng").mkdir()
    mine = workdir / "eng" / "t.json"
    mine.write_text("not a sidecar: the user's file\n")
    result = _build("--weights", str(golden_dir / "tiny_model.npz"), "--precision", "fp32", "--input-size", "64",
                    "--out", "eng", "--name", "t", "--no-flip")  # fmt: skip
    assert result.exit_code == 2, result.output
    assert "t.json already exists" in result.output.replace("\n", "") and "--overwrite" in result.output
    assert mine.read_text() == "not a sidecar: the user's file\n"
    assert not (workdir / "eng" / "t.onnx").exists()
