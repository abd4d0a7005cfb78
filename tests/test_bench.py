"""``hhrt bench`` on the CPU backends with the tiny model at a small size (timings are never asserted)."""

from __future__ import annotations

import json
import sys

import pytest
from typer.testing import CliRunner

from hhrnet_rt.bench.run import BenchConfig, describe_machine, frame_shape, run_bench, synthetic_frames
from hhrnet_rt.cli import app
from hhrnet_rt.core.errors import InputError

runner = CliRunner()


def test_frame_shape_is_what_resize_align_produces():
    assert frame_shape(512) == (512, 960)
    assert frame_shape(128) == (128, 256)


def test_describe_machine_fields():
    m = describe_machine()
    for key in ("cpu", "cores", "gpu", "driver", "torch", "onnxruntime", "tensorrt", "numpy"):
        assert key in m
    assert m["cores"] >= 1 and m["torch"]


def test_synthetic_frames_move():
    frames = synthetic_frames(3)
    assert frames[0].shape == (360, 640, 3) and frames[0].dtype.name == "uint8"
    assert (frames[0] != frames[2]).any()


@pytest.mark.parametrize("backend", ["torch", "onnxruntime"])
def test_run_bench_cpu_backends(backend, golden_dir):
    cfg = BenchConfig(
        backend=backend,
        device="cpu",
        weights=str(golden_dir / "tiny_model.npz"),
        input_size=64,
        frames=3,
        warmup=1,
        flip=False,
        batch=2,
    )
    steps = []
    report = run_bench(cfg, on_step=steps.append)
    assert report["backend"]["name"] == backend and report["backend"]["device"] == "cpu"
    mo = report["model_only"]
    assert mo["input_shape"] == [2, 3, 64, 128]
    assert mo["fps"] > 0 and mo["p95_ms"] >= mo["p50_ms"] > 0
    e2e = report["end_to_end"]
    assert e2e["frames"] == 3 and e2e["fps"] > 0
    assert {"preprocess", "inference", "decode"} <= set(e2e["stages"])
    assert report["memory"]["peak_rss_mib"] > 0
    assert report["weights_note"] == ""  # real (tiny) weights, not random
    json.dumps(report)  # JSON-ready
    assert any("model-only" in s for s in steps)


def test_torch_cpu_refuses_fp16():
    with pytest.raises(InputError, match="onnxruntime"):
        run_bench(BenchConfig(backend="torch", device="cpu", precision="fp16", frames=1))


@pytest.mark.slow
def test_cli_bench_json_and_tables(tmp_path, golden_dir):
    out = tmp_path / "r" / "bench.json"
    args = ["bench", "--backend", "onnxruntime", "--precision", "int8", "--weights", str(golden_dir / "tiny_model.npz"),
            "--input-size", "64", "--frames", "2", "--warmup", "1", "--no-flip", "--no-e2e", "--json", str(out)]  # fmt: skip
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    report = json.loads(out.read_text())
    assert report["backend"]["precision"] == "int8"  # the ORT backend read the precision from the file
    assert report["end_to_end"] is None
    assert "model-only" in result.output and "FPS" in result.output


def test_cli_bench_json_never_replaces_a_file_without_overwrite(tmp_path, golden_dir):
    out = tmp_path / "bench.json"
    out.write_text("the user's notes\n")
    args = ["bench", "--backend", "torch", "--weights", str(golden_dir / "tiny_model.npz"), "--input-size", "64",
            "--frames", "1", "--warmup", "0", "--no-flip", "--no-e2e", "--json", str(out)]  # fmt: skip
    refused = runner.invoke(app, args)
    assert refused.exit_code == 2, refused.output
    assert "--overwrite" in refused.output and "model-only" not in refused.output  # refused before measuring
    assert out.read_text() == "the user's notes\n"
    replaced = runner.invoke(app, [*args, "--overwrite"])
    assert replaced.exit_code == 0, replaced.output
    assert json.loads(out.read_text())["model_only"]["input_shape"][0] == 1


@pytest.mark.parametrize(
    ("args", "code", "needle"),
    [
        (["--precision", "int4"], 2, "int4"),
        (["--backend", "cuda"], 2, "cuda"),
        (["--frames", "0"], 2, "frames"),
    ],
)
def test_cli_bench_bad_arguments(args, code, needle):
    result = runner.invoke(app, ["bench", *args])
    assert result.exit_code == code, result.output
    assert needle in result.output


def test_cli_bench_tensorrt_missing(monkeypatch):
    monkeypatch.setitem(sys.modules, "tensorrt", None)
    import hhrnet_rt.runtime.backends.select as select

    monkeypatch.setattr(select, "tensorrt_available", lambda: False)
    result = runner.invoke(app, ["bench", "--backend", "tensorrt", "--engine", "x.engine"])
    assert result.exit_code == 5, result.output
