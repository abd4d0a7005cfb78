"""The GPU check's plumbing on the CPU (a fast variant of ``--dry-run``), so it cannot rot between the
rare GPU runs: the script starts, its phases run on the CPU and it writes its summary."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def test_the_gpu_check_dry_run_passes_on_the_cpu(tmp_path, golden_dir):
    out = tmp_path / "gc"
    proc = subprocess.run(
        [sys.executable, "benchmarks/gpucheck/gpu_check.py", "--dry-run", "--phases", "env,d2h_bytes,warp,memory,sanitizer",
         "--out", str(out)],
        cwd=REPO, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["meta"]["dry_run"] is True
    assert {name: p["status"] for name, p in summary["phases"].items()} == dict.fromkeys(
        ["env", "d2h_bytes", "warp", "memory", "sanitizer"], "ok"
    )
    # The bytes target is measured (it read the shape of device maps; np.asarray of them would raise).
    d2h = summary["d2h_bytes_per_frame"]
    assert d2h["device"]["maps_shape"] and "error" not in d2h["device"], d2h
    # The GPU warp against OpenCV, measured on the CPU too: within one level everywhere.
    assert all(row["max_levels"] <= 1 for key, row in summary["warp_vs_opencv"].items() if key != "bound")
    assert "needs CUDA" in summary["stream_sanitizer"]["note"]


def test_the_overlap_summary_reads_kernel_streams_from_a_trace(tmp_path):
    sys.path.insert(0, str(REPO / "benchmarks" / "gpucheck"))
    try:
        from gpucheck_device import kernel_overlap
    finally:
        sys.path.pop(0)

    def kernel(stream, ts, dur):
        return {"cat": "kernel", "ts": ts, "dur": dur, "args": {"stream": stream}}

    trace = tmp_path / "trace.json"
    events = [kernel(7, 0, 1000), kernel(7, 2000, 1000), kernel(9, 500, 1000), kernel(9, 2900, 200)]
    trace.write_text(json.dumps({"traceEvents": [*events, {"cat": "cpu_op", "ts": 0, "dur": 5}]}))
    summary = kernel_overlap(trace)
    assert summary["inference_stream"] == 7  # the busiest stream: the network's
    assert summary["other_streams_overlap_ms"] == 0.6  # 500 us inside the first kernel, 100 in the second
    assert summary["streams"][9] == {"kernels": 2, "busy_ms": 1.2}
