"""SIGTERM and SIGHUP end a run like Ctrl-C; a stage busy past the join timeout never aborts the process.

The subprocess tests run ``hhrt video`` in a fresh interpreter (the golden tiny model, torch on the CPU)
and signal it mid-run: exit 128 + the signal, a playable mp4, whole JSON lines and a valid COCO file.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from video_helpers import assert_output_frames, decoded_frames, make_video, read_video

from hhrnet_rt.cli.signals import interrupted_exit_code, stop_signals_interrupt
from hhrnet_rt.core.signals import signals_deferred
from hhrnet_rt.video.records import frames_of

REPO = Path(__file__).resolve().parents[1]


# -- in this process: the handlers themselves ----------------------------------------------------------


@pytest.mark.parametrize(
    ("signum", "code"), [(signal.SIGTERM, 143), (signal.SIGHUP, 129), (signal.SIGINT, 130)]
)
def test_stop_signal_interrupts_like_ctrl_c(signum, code):
    before = signal.getsignal(signum)
    with pytest.raises(KeyboardInterrupt):
        with stop_signals_interrupt():
            os.kill(os.getpid(), signum)
            time.sleep(5)  # the handler runs at the next bytecode; this is never reached in full
    assert interrupted_exit_code() == code
    assert signal.getsignal(signum) is before  # restored


def test_first_signal_decides_the_exit_code():
    with pytest.raises(KeyboardInterrupt), stop_signals_interrupt():
        try:
            os.kill(os.getpid(), signal.SIGHUP)
            time.sleep(5)
        finally:
            with pytest.raises(KeyboardInterrupt):
                os.kill(os.getpid(), signal.SIGTERM)
                time.sleep(5)
    assert interrupted_exit_code() == 129


def test_signals_are_deferred_while_sinks_close():
    noted = []
    with stop_signals_interrupt():
        with signals_deferred(lambda: noted.append(True)):
            os.kill(os.getpid(), signal.SIGTERM)  # would raise KeyboardInterrupt in the middle of a close
            deadline = time.monotonic() + 5
            while not noted and time.monotonic() < deadline:
                time.sleep(0.01)
        assert noted == [True]
        assert interrupted_exit_code() == 143  # the CLI's handler still learnt which signal it was


def test_a_default_handler_is_not_deferred():
    before = signal.getsignal(signal.SIGHUP)
    signal.signal(signal.SIGHUP, signal.SIG_DFL)
    try:
        with signals_deferred(lambda: None):
            assert signal.getsignal(signal.SIGHUP) is signal.SIG_DFL  # a library user's choice stays
    finally:
        signal.signal(signal.SIGHUP, before)


# -- a real run in a fresh interpreter ------------------------------------------------------------------


def _start(cmd: list[str]) -> subprocess.Popen:
    return subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _signal_when(proc: subprocess.Popen, ready, signum: int, timeout: float = 120) -> tuple[str, str]:
    try:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and proc.poll() is None and not ready():
            time.sleep(0.05)
        assert proc.poll() is None, f"finished before it could be signalled: {proc.communicate()}"
        proc.send_signal(signum)
        return proc.communicate(timeout=90)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()


def _lines(path: Path) -> int:
    return len(path.read_text().splitlines()) if path.exists() else 0


def _check_outputs(clip: Path, out: Path, js: Path, coco: Path | None = None) -> list[dict]:
    data = js.read_bytes()
    assert data.endswith(b"\n")
    records = frames_of(json.loads(line) for line in data.decode().splitlines())  # every line parses
    assert [r["frame"] for r in records] == list(range(len(records)))
    assert_output_frames(read_video(out)[0], decoded_frames(clip), records)  # plays, every frame there
    if coco is not None:
        assert {r["image_id"] for r in json.loads(coco.read_text())} <= set(range(len(records)))
    return records


@pytest.mark.slow  # a fresh interpreter imports torch and loads the model: 10-30 s on 2 shared cores
@pytest.mark.parametrize(("signum", "code"), [(signal.SIGTERM, 143), (signal.SIGHUP, 129)])
def test_sigterm_and_sighup_end_a_run_like_ctrl_c(tmp_path, golden_dir, signum, code):
    clip = make_video(tmp_path / "long.mp4", 150)
    out, js, coco = tmp_path / "o.mp4", tmp_path / "o.jsonl", tmp_path / "o.json"
    cmd = [sys.executable, "-m", "hhrnet_rt", "video", str(clip), "--out", str(out), "--json", str(js),
           "--coco", str(coco), "--weights", str(golden_dir / "tiny_model.npz"), "--backend", "torch",
           "--input-size", "64"]  # fmt: skip
    proc = _start(cmd)
    _, stderr = _signal_when(proc, lambda: _lines(js) >= 4, signum)  # the header and 3 frames
    assert proc.returncode == code, stderr
    assert "Traceback" not in stderr and "interrupted" in stderr
    records = _check_outputs(clip, out, js, coco)
    assert 3 <= len(records) < 150
    assert not list(tmp_path.glob(".o.json.*"))  # the COCO temporary file was renamed, not left behind


# Runs `hhrt video` with an inference call that stays busy in torch (native code) for seconds once the
# run has written a few frames, and a join timeout far shorter than that: the situation of a slow GPU
# when Ctrl-C comes. Before the fix the interpreter's shutdown tore torch down under the busy thread:
# "terminate called without an active exception", exit 134.
_BUSY_STAGE = textwrap.dedent(
    """
    import functools, sys, time
    from pathlib import Path
    import torch
    import hhrnet_rt.cli.run_report
    import hhrnet_rt.video
    from hhrnet_rt.cli import main
    from hhrnet_rt.runtime.estimator import PoseEstimator

    marker = Path(sys.argv[1])
    real_infer, calls = PoseEstimator.infer, [0]

    def busy_infer(self, prepared):
        calls[0] += 1
        if calls[0] == 6:
            marker.write_text("busy")
            a, t0 = torch.randn(200, 200), time.perf_counter()
            while time.perf_counter() - t0 < 8:
                a = torch.tanh(a @ a)
        return real_infer(self, prepared)

    PoseEstimator.infer = busy_infer
    hhrnet_rt.video.run_pipeline = functools.partial(hhrnet_rt.video.run_pipeline, join_timeout_s=0.5)
    hhrnet_rt.cli.run_report.JOIN_TIMEOUT_S = 0.5  # what the command passes (overrides the partial's)
    sys.argv = ["hhrt", *sys.argv[2:]]
    main()
    """
)


@pytest.mark.slow
def test_ctrl_c_while_a_stage_is_busy_past_the_join_timeout(tmp_path, golden_dir):
    clip = make_video(tmp_path / "long.mp4", 60)
    out, js, marker = tmp_path / "o.mp4", tmp_path / "o.jsonl", tmp_path / "busy"
    cmd = [sys.executable, "-c", _BUSY_STAGE, str(marker), "video", str(clip), "--out", str(out),
           "--json", str(js), "--weights", str(golden_dir / "tiny_model.npz"), "--backend", "torch",
           "--input-size", "64"]  # fmt: skip
    proc = _start(cmd)
    # Ctrl-C once inference is busy and the output thread has written a frame or two meanwhile.
    _, stderr = _signal_when(proc, lambda: marker.exists() and _lines(js) >= 2, signal.SIGINT)
    assert proc.returncode == 130, stderr
    assert "terminate called" not in stderr and "Traceback" not in stderr
    assert "stages still running at exit: inference" in stderr
    records = _check_outputs(clip, out, js)
    assert 2 <= len(records) <= 5  # frames 0-4 were inferred before the busy call


def test_exit_code_constants_are_128_plus_the_signal():
    # The README's table is checked against the EXIT_* constants (test_exit_codes); these pin the numbers
    # that cli/signals.py computes, so the table, the constants and the behaviour agree.
    import signal

    from hhrnet_rt.cli.app import EXIT_HANGUP, EXIT_INTERRUPTED, EXIT_TERMINATED

    assert EXIT_INTERRUPTED == 128 + signal.SIGINT
    assert EXIT_TERMINATED == 128 + signal.SIGTERM
    assert EXIT_HANGUP == 128 + signal.SIGHUP
