"""``hhrt video ... --ray``: the session's real local Ray cluster (127.0.0.1, no dashboard).

The cluster (``ray_cluster`` in conftest, shared with the Ray Serve tests) is started by ``ray_session``,
as ``hhrt video --ray`` starts one: the in-process runs find it connected and use it; the subprocess runs
join it with ``--address``, as a user joins a running cluster. Worker deaths are injected through the
test-only faults file that :mod:`hhrnet_rt.cluster.video_task` reads.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner
from video_helpers import make_video, read_video, run_in_thread

from hhrnet_rt.cli import app
from hhrnet_rt.cli.app import EXIT_BACKEND, EXIT_INPUT, EXIT_INTERRUPTED, EXIT_SOME_FAILED
from hhrnet_rt.cluster.archive import Ledger, progress_of
from hhrnet_rt.cluster.video_task import VideoJob, remove_temporaries, temporary_path
from hhrnet_rt.video.records import frames_of

# Only the tests that use the cluster need Ray (and carry the marker); the rest run everywhere.
NO_RAY = importlib.util.find_spec("ray") is None

REPO = Path(__file__).resolve().parents[1]
RUN_TIMEOUT_S = 240  # a bound, not a figure: a hung cluster fails the test instead of the CI job
runner = CliRunner()


@pytest.fixture(scope="module")
def cluster(ray_cluster, one_torch_thread) -> str:
    """The session's cluster address; this module's local runs on one torch thread."""
    return ray_cluster


def _inject(faults_file: Path, video: Path, *, crash_attempts: int, at_frame: int) -> None:
    faults = json.loads(faults_file.read_text())
    faults[str(video.absolute())] = {"crash_attempts": crash_attempts, "at_frame": at_frame}
    faults_file.write_text(json.dumps(faults))


def _invoke(args: list[str]):
    result = run_in_thread(lambda: runner.invoke(app, args), timeout=RUN_TIMEOUT_S)
    assert "Traceback" not in result.output, result.output
    return result


def _records(path: Path) -> list[dict]:
    return frames_of(json.loads(line) for line in path.read_text().splitlines())


def _leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if ".part" in p.name)


def _assert_same_records(got: list[dict], expected: list[dict]) -> None:
    assert [r["frame"] for r in got] == [r["frame"] for r in expected]
    assert [r["timestamp"] for r in got] == [r["timestamp"] for r in expected]
    for a, b in zip(got, expected, strict=True):
        assert len(a["people"]) == len(b["people"]), f"frame {a['frame']}"
        for p, q in zip(a["people"], b["people"], strict=True):
            # Same code on the same pixels, but the Ray workers run torch on one thread (Ray sets
            # OMP_NUM_THREADS) and the local run may not: sums in another order move floats by ~1e-6,
            # which can flip the file's last rounded digit (x/y to 0.01 px, scores to 1e-4).
            np.testing.assert_allclose(p["keypoints"], q["keypoints"], rtol=0, atol=1e-4 + 0.01)
            assert p["score"] == pytest.approx(q["score"], abs=1e-4 + 1e-6)
            assert p.get("id") == q.get("id")  # --track: the same IDs, from a fresh tracker per video


@pytest.mark.ray
@pytest.mark.skipif(NO_RAY, reason="needs Ray: pip install -e '.[ray]'")
def test_three_videos_on_ray_equal_the_local_run(tmp_path, cluster, tiny):
    videos = [make_video(tmp_path / f"{name}.mp4", n) for name, n in (("a", 6), ("b", 8), ("c", 5))]
    local, remote = tmp_path / "local", tmp_path / "ray"
    options = ["--json", str(local), "--track", "--format", "csv,yolo", *tiny]
    done = _invoke(["video", *map(str, videos), "--out", str(local), *options])
    assert done.exit_code == 0, done.output
    options[1] = str(remote)
    # What a --ray driver killed with SIGKILL leaves (#19 item 21): found by name and age, and removed.
    from hhrnet_rt.core.temporaries import STALE_AFTER_S, temporary_name

    remote.mkdir()
    stale = temporary_name(remote / "old.mp4", "0123456789ab")
    stale.write_bytes(b"x")
    os.utime(stale, (time.time() - STALE_AFTER_S - 60,) * 2)
    done = _invoke(["video", *map(str, videos), "--ray", "--out", str(remote), *options])
    assert done.exit_code == 0, done.output
    assert not stale.exists() and "a temporary file an earlier, killed run left" in done.output

    assert sorted(p.name for p in remote.iterdir()) == sorted(p.name for p in local.iterdir())
    people = ids = 0
    for video in videos:
        got, expected = _records(remote / f"{video.stem}.jsonl"), _records(local / f"{video.stem}.jsonl")
        _assert_same_records(got, expected)
        people += sum(len(r["people"]) for r in got)
        ids += sum(p.get("id") is not None for r in got for p in r["people"])
        frames, _ = read_video(remote / f"{video.stem}.mp4")
        reference, _ = read_video(local / f"{video.stem}.mp4")
        assert len(frames) == len(reference) == len(expected)
        # Same frames, same people drawn, same encoder settings; only a drawn person whose score sat on
        # the drawing threshold could differ (see above), so allow a little, far below another frame's.
        for f, r in zip(frames, reference, strict=True):
            assert float(np.mean(np.abs(f.astype(np.int16) - r))) < 0.5
        # --format on the workers: the same bytes as hhrt convert of the JSON lines they wrote (a local
        # run's records may differ a little, see above; the writers are the same code either way).
        again = tmp_path / "again" / video.stem
        assert (
            _invoke(
                ["convert", str(remote / f"{video.stem}.jsonl"), "--format", "csv,yolo", "--out", str(again)]
            ).exit_code
            == 0
        )
        for name in (
            f"{video.stem}.csv",
            f"{video.stem}.yolo/data.yaml",
            *(
                f"{video.stem}.yolo/labels/{p.name}"
                for p in (again / f"{video.stem}.yolo" / "labels").iterdir()
            ),
        ):
            assert (remote / name).read_bytes() == (again / name).read_bytes(), name
        assert len(list((remote / f"{video.stem}.yolo" / "labels").iterdir())) == len(got)
    assert people > 0, "the tiny model finds someone: otherwise the comparison above compared nothing"
    assert ids > 0, "--track reached the workers"
    assert re.search(r"3 of 3 videos done, 19 frames written", done.output), done.output


@pytest.mark.ray
@pytest.mark.skipif(NO_RAY, reason="needs Ray: pip install -e '.[ray]'")
def test_a_worker_that_dies_once_is_retried_and_the_video_completes(tmp_path, cluster, tiny, ray_faults_file):
    video = make_video(tmp_path / "d.mp4", 8)
    _inject(ray_faults_file, video, crash_attempts=1, at_frame=3)  # dies mid-file: its files are half written
    out = tmp_path / "out"
    done = _invoke(["video", str(video), "--ray", "--out", str(out), "--json", str(out), *tiny])
    assert done.exit_code == 0, done.output
    assert re.search(r"d\.mp4\s*│\s*8/8\s*│[^│]*│\s*1\s*│\s*ok", done.output), done.output  # one retry
    assert [r["frame"] for r in _records(out / "d.jsonl")] == list(range(8))
    frames, _ = read_video(out / "d.mp4")
    assert len(frames) == 8
    assert _leftovers(out) == [], "the dead attempt's temporary files must be gone"


@pytest.mark.ray
@pytest.mark.skipif(NO_RAY, reason="needs Ray: pip install -e '.[ray]'")
def test_a_video_that_always_fails_fails_alone(tmp_path, cluster, tiny, ray_faults_file):
    good = make_video(tmp_path / "good.mp4", 4)
    doomed = make_video(tmp_path / "doomed.mp4", 6)
    _inject(ray_faults_file, doomed, crash_attempts=99, at_frame=2)
    junk = tmp_path / "junk.mp4"
    junk.write_bytes(b"not a video at all" * 100)
    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "hhrnet_rt", "video", str(good), str(doomed), str(junk), "--ray",
           "--address", cluster, "--max-retries", "1", "--out", str(out), "--json", str(out), *tiny]  # fmt: skip
    done = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=RUN_TIMEOUT_S)
    message = done.stderr
    assert done.returncode == EXIT_SOME_FAILED, done.stdout + message
    assert "Traceback" not in message
    assert "2 of 3 videos failed" in message and "; the other video is complete" in message
    assert "doomed.mp4: the worker running it died on every attempt" in message
    assert re.search(r"junk\.mp4: .*junk\.mp4", message), message  # the library's message names the file
    assert re.search(r"doomed\.mp4\s*│\s*0/0\s*│[^│]*│\s*1\s*│\s*failed", done.stdout), done.stdout
    assert [r["frame"] for r in _records(out / "good.jsonl")] == list(range(4))
    assert len(read_video(out / "good.mp4")[0]) == 4
    assert sorted(p.name for p in out.iterdir()) == ["good.jsonl", "good.mp4"]  # nothing else, no .part


@pytest.mark.ray
@pytest.mark.skipif(NO_RAY, reason="needs Ray: pip install -e '.[ray]'")
def test_a_workers_message_names_the_commands_flags(tmp_path, cluster, tiny):
    video = make_video(tmp_path / "h.mp4", 2)
    done = _invoke(
        ["video", str(video), "--ray", "--precision", "int8", "--out", str(tmp_path / "h_out.mp4"), *tiny]
    )
    assert done.exit_code != 0, done.output
    assert "h.mp4: the torch backend runs fp32 or fp16" in done.output
    assert "--backend tensorrt" in done.output and "backend='tensorrt'" not in done.output
    assert not (tmp_path / "h_out.mp4").exists()


@pytest.mark.ray
@pytest.mark.skipif(NO_RAY, reason="needs Ray: pip install -e '.[ray]'")
def test_ctrl_c_cancels_the_tasks_and_leaves_usable_files(tmp_path, cluster, tiny):
    video = make_video(tmp_path / "long.mp4", 300)
    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "hhrnet_rt", "video", str(video), "--ray", "--address", cluster,
           "--out", str(out), "--json", str(out), *tiny]  # fmt: skip
    proc = subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + RUN_TIMEOUT_S
        while time.monotonic() < deadline and proc.poll() is None:  # until the task has written frames
            parts = list(out.glob(".long.jsonl.*.part.jsonl")) if out.is_dir() else []
            if parts and parts[0].read_text().count("\n") >= 4:  # the header and 3 frames
                break
            time.sleep(0.1)
        assert proc.poll() is None, "the run ended before it could be interrupted"
        proc.send_signal(signal.SIGINT)
        _, stderr = proc.communicate(timeout=RUN_TIMEOUT_S)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == EXIT_INTERRUPTED, stderr
    records = _records(out / "long.jsonl")  # published: whole lines, the frames processed before the stop
    assert 3 <= len(records) < 300 and [r["frame"] for r in records] == list(range(len(records)))
    assert len(read_video(out / "long.mp4")[0]) == len(records)  # the mp4 plays and holds the same frames
    assert _leftovers(out) == []


# -- no cluster needed ------------------------------------------------------------------------------------


def test_ray_options_need_ray_and_no_window(tmp_path, tiny, monkeypatch):
    clip = make_video(tmp_path / "e.mp4", 2)
    monkeypatch.chdir(tmp_path)
    done = _invoke(["video", str(clip), "--address", "auto", *tiny])
    assert done.exit_code == EXIT_INPUT and "need --ray" in done.output
    done = _invoke(["video", str(clip), "--ray", "--show", *tiny])
    assert done.exit_code == EXIT_INPUT and "--show cannot be used with --ray" in done.output
    done = _invoke(["video", str(clip), "--ray", "--server", "http://127.0.0.1:9", *tiny])
    assert done.exit_code == EXIT_INPUT and "--server cannot be used with --ray" in done.output
    assert not (tmp_path / "runs").exists(), "refused before anything was created"


def test_without_ray_the_message_names_the_extra(tmp_path, tiny, monkeypatch):
    clip = make_video(tmp_path / "f.mp4", 2)
    monkeypatch.setitem(sys.modules, "ray", None)  # what `import ray` meets where Ray is not installed
    monkeypatch.chdir(tmp_path)
    done = _invoke(["video", str(clip), "--ray", *tiny])
    assert done.exit_code == EXIT_BACKEND, done.output
    assert "Ray is not installed" in done.output and 'pip install -e ".[ray]"' in done.output
    assert not (tmp_path / "runs" / "pose" / "1").exists(), "the empty run folder is removed again"


def test_ledger_counts_attempts_and_ignores_a_dead_attempts_frames():
    ledger = Ledger(2)
    assert ledger.begin(0) == 1
    ledger.set_total(0, 1, 10)
    ledger.advance(0, 1, 4)
    assert ledger.begin(0) == 2  # the worker died: Ray runs the task again
    ledger.advance(0, 1, 3)  # a late message from the dead attempt
    ledger.advance(0, 2, 2)
    assert ledger.snapshot() == ([2, 0], [2, 0], [10, None])


def test_temporaries_are_hidden_beside_the_output_and_only_the_runs_own_are_removed(tmp_path):
    final = tmp_path / "walk.mp4"
    temp = temporary_path(final, "abc123")
    assert temp.parent == tmp_path and temp.name.startswith(".walk.mp4.") and temp.suffix == ".mp4"
    job = VideoJob(0, "walk.mp4", {"video": str(final), "json": None, "coco": None}, "abc123", False)
    other_run = temporary_path(final, "ffffff")
    for path in (final, temp, other_run):
        path.write_bytes(b"x")
    remove_temporaries(job)
    assert not temp.exists() and final.exists() and other_run.exists()


@pytest.mark.skipif(NO_RAY, reason="needs Ray: pip install -e '.[ray]'")
def test_an_address_where_no_cluster_answers_fails_at_once(tmp_path, tiny):
    clip = make_video(tmp_path / "g.mp4", 2)
    with socket.socket() as closed:  # a port that is bound but not listening: connections are refused
        closed.bind(("127.0.0.1", 0))
        address = f"127.0.0.1:{closed.getsockname()[1]}"
        done = _invoke(
            ["video", str(clip), "--ray", "--address", address, "--out", str(tmp_path / "o.mp4"), *tiny]
        )
    assert done.exit_code == EXIT_BACKEND, done.output
    assert f"cannot reach the Ray cluster at {address}" in done.output
    assert not (tmp_path / "o.mp4").exists()


def test_progress_counts_files_not_started_as_the_average_one():
    ledger = Ledger(3)
    assert progress_of(ledger.snapshot(), 0).frames_total is None
    ledger.begin(0)
    ledger.set_total(0, 1, 100)
    ledger.begin(1)
    ledger.set_total(1, 1, 50)
    ledger.advance(0, 1, 30)
    progress = progress_of(ledger.snapshot(), 0)
    assert (progress.frames_done, progress.frames_total, progress.estimated) == (30, 225, True)
    ledger.begin(2)
    ledger.set_total(2, 1, 10)
    progress = progress_of(ledger.snapshot(), 1)
    assert (progress.frames_total, progress.estimated, progress.files) == (160, False, 3)
