"""``hhrt bench`` on the CPU: model-only is timed in a worker thread (as the pipeline runs inference), the
ONNX Runtime backend reuses the cached fp32 export, and int8 is the CPU-shaped file. Tiny model, size 64;
timings are never asserted."""

from __future__ import annotations

import threading

import pytest

import hhrnet_rt.bench.run as bench
from hhrnet_rt.bench.run import BenchConfig, in_worker_thread, run_bench


def _cfg(golden_dir, **kw):
    base = dict(backend="onnxruntime", device="cpu", weights=str(golden_dir / "tiny_model.npz"), input_size=64,
                frames=2, warmup=1, flip=False, end_to_end=False)  # fmt: skip
    return BenchConfig(**(base | kw))


def test_in_worker_thread_returns_and_raises():
    assert in_worker_thread(lambda: threading.current_thread() is threading.main_thread()) is False

    def boom():
        raise ValueError("from the worker")

    with pytest.raises(ValueError, match="from the worker"):
        in_worker_thread(boom)


def test_model_only_runs_off_the_main_thread_and_export_is_cached(golden_dir, tmp_path, monkeypatch):
    monkeypatch.setenv("HHRT_CACHE_DIR", str(tmp_path / "cache"))
    seen = []
    real = bench._time_model

    def spy(*args, **kwargs):
        seen.append(threading.current_thread() is threading.main_thread())
        return real(*args, **kwargs)

    monkeypatch.setattr(bench, "_time_model", spy)
    report = run_bench(_cfg(golden_dir))
    assert seen == [False]
    cached = list((tmp_path / "cache" / "onnx").glob("*.onnx"))
    assert len(cached) == 1 and report["backend"]["onnx"] == str(cached[0])

    import hhrnet_rt.model.onnx_export as onnx_export

    def no_export(*args, **kwargs):
        raise AssertionError("the bench exported again instead of reusing the cached file")

    monkeypatch.setattr(onnx_export, "export_onnx", no_export)
    again = run_bench(_cfg(golden_dir))
    assert again["backend"]["onnx"] == str(cached[0])


@pytest.mark.slow
def test_int8_bench_uses_the_cpu_layout(golden_dir, tmp_path, monkeypatch, one_torch_thread):
    monkeypatch.setenv("HHRT_CACHE_DIR", str(tmp_path / "cache"))
    report = run_bench(_cfg(golden_dir, precision="int8"))
    assert report["backend"]["precision"] == "int8"
    assert report["backend"]["onnx"].endswith("bench.int8-cpu.onnx")
    assert report["model_only"]["fps"] > 0
