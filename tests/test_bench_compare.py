"""``hhrt bench --backend all``: every usable backend/precision in one table, and --input-size checked as in
the other commands. Timings are never asserted; the agreement figures are."""

from __future__ import annotations

import importlib
import importlib.util
import json

import pytest
from typer.testing import CliRunner

from hhrnet_rt.bench import compare as bench_compare
from hhrnet_rt.bench.run import BenchConfig
from hhrnet_rt.cli import app

runner = CliRunner()
cli_bench = importlib.import_module("hhrnet_rt.cli.bench")


@pytest.mark.parametrize("size, nearest", [("100", "64 or 128"), ("0", "64"), ("520", "512 or 576")])
def test_bench_input_size_is_checked_before_anything_runs(size, nearest):
    result = runner.invoke(app, ["bench", "--input-size", size, "--weights", "random"])
    assert result.exit_code == 2, result.output
    text = " ".join(result.output.replace("│", " ").split())  # the message wraps inside Rich's error box
    assert "multiple of 64" in text and nearest in text


@pytest.mark.slow
def test_compare_backends_on_the_cpu(golden_dir, monkeypatch, one_torch_thread):
    real_run_bench = bench_compare.run_bench

    def run_bench_failing_for_ort_fp16(cfg, on_step, **kwargs):
        if (cfg.backend, cfg.precision) == ("onnxruntime", "fp16"):
            raise RuntimeError("simulated failure\nsecond line")
        return real_run_bench(cfg, on_step, **kwargs)

    monkeypatch.setattr(bench_compare, "run_bench", run_bench_failing_for_ort_fp16)
    monkeypatch.setattr("hhrnet_rt.runtime.backends.select.cuda_available", lambda: False)
    monkeypatch.setattr("hhrnet_rt.runtime.backends.select.tensorrt_available", lambda: False)
    cfg = BenchConfig(weights=str(golden_dir / "tiny_model.npz"), input_size=64, frames=1, warmup=0,
                      flip=False, end_to_end=False, device="cpu")  # fmt: skip
    steps: list[str] = []
    report = bench_compare.compare_backends(cfg, on_step=steps.append)
    rows = {(r["backend"], r["precision"]): r for r in report["rows"]}
    assert list(rows) == [("torch", "fp32"), ("torch", "fp16"), ("onnxruntime", "fp32"),
                          ("onnxruntime", "fp16"), ("onnxruntime", "int8"), ("openvino", "fp32"),
                          ("openvino", "-"), ("tensorrt", "-")]  # fmt: skip
    ref = rows["torch", "fp32"]
    # The reference against itself: exact by construction.
    assert ref["heatmap_max_abs"] == 0.0 and ref["peak_agreement"] in (1.0, None)
    assert ref["model_only_fps"] > 0 and ref["end_to_end_fps"] is None  # end_to_end off
    assert "CUDA" in rows["torch", "fp16"]["skipped"] and "not installed" in rows["tensorrt", "-"]["skipped"]
    assert rows["onnxruntime", "fp16"]["error"] == "RuntimeError: simulated failure"
    # ONNX Runtime fp32 runs the same graph as torch: float32 rounding only (measured ~1e-6 on maps in
    # 0..1); 1e-3 would still catch a wrong input, layout or flip.
    assert rows["onnxruntime", "fp32"]["heatmap_max_abs"] < 1e-3
    int8 = rows["onnxruntime", "int8"]
    assert int8["precision"] == "int8" and int8["heatmap_max_abs"] > 0  # really quantised
    assert int8["model_only_fps"] > 0
    # OpenVINO (optional): fp32 runs the same graph (same float32 rounding bound as ONNX Runtime); its int8
    # is a file (an IR from `hhrt build-engine --target openvino`), so without one that row says so.
    if importlib.util.find_spec("openvino") is not None:
        assert rows["openvino", "fp32"]["heatmap_max_abs"] < 1e-3
        assert "engine=NAME.xml" in rows["openvino", "-"]["skipped"]
    else:
        assert "not installed" in rows["openvino", "fp32"]["skipped"]
    json.dumps(report)  # JSON-ready
    assert any("skipped" in s for s in steps) and any("failed" in s for s in steps)


def test_bench_all_cli_prints_one_table_and_writes_json(monkeypatch, tmp_path):
    rows = [
        {"backend": "torch", "precision": "fp32", "device": "cpu", "model_only_p50_ms": 12.5,
         "model_only_fps": 80.0, "end_to_end_fps": 30.0, "heatmap_max_abs": 0.0, "peak_agreement": 1.0},
        {"backend": "onnxruntime", "precision": "int8", "device": "cpu", "model_only_p50_ms": 7.25,
         "model_only_fps": 137.9, "end_to_end_fps": 41.0, "heatmap_max_abs": 0.0912,
         "peak_agreement": 0.912},
        {"backend": "torch", "precision": "fp16", "device": "cpu", "skipped": "no CUDA GPU"},
    ]  # fmt: skip
    canned = {
        "config": {"input_size": 64, "flip": False, "weights": "random", "backend": "all"},
        "reference": "torch fp32",
        "agreement_input": [1, 3, 64, 128],
        "rows": rows,
        "machine": {},
    }
    seen = {}

    def fake_compare(cfg, on_step, on_row):
        seen["cfg"] = cfg
        on_row(0, 2)
        on_step("torch fp32 on cpu")
        on_row(1, 2)
        on_step("onnxruntime fp32 on cpu")
        on_row(2, 2)
        return canned

    monkeypatch.setattr(cli_bench, "compare_backends", fake_compare)
    out = tmp_path / "all.json"
    result = runner.invoke(app, ["bench", "--backend", "all", "--input-size", "64", "--json", str(out)])
    assert result.exit_code == 0, result.output
    assert seen["cfg"].input_size == 64
    # Progress (plain lines: no terminal here): each backend as it starts, the rows done and the time left.
    assert "torch fp32 on cpu (0/2 backends)..." in result.stderr
    assert "(1/2 backends, about" in result.stderr and "(2/2 backends)" in result.stderr
    assert result.stdout.count("hhrt bench --backend all") == 1
    lines = result.stdout.splitlines()
    int8 = next(line for line in lines if "int8" in line)
    assert "7.25" in int8 and "137.9" in int8 and "0.0912" in int8 and "91.2%" in int8
    assert "torch fp16: no CUDA GPU" in result.stdout
    assert json.loads(out.read_text()) == canned


def test_bench_all_refuses_a_precision():
    result = runner.invoke(app, ["bench", "--backend", "all", "--precision", "fp16"])
    assert result.exit_code == 2 and "leave --precision out" in result.output
