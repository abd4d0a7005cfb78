"""``hhrt demo`` offline: the download fails fast, the same pipeline runs with random weights and says so
(on screen and on every frame), outputs land in runs/pose/N. With the network it would download the
default weights; no test reaches the internet, so the weights' host is a closed port on 127.0.0.1."""

from __future__ import annotations

import json
import socket
import time

import av
import numpy as np
from typer.testing import CliRunner

from hhrnet_rt.cli import app, demo
from hhrnet_rt.model import download
from hhrnet_rt.model.download import NAMED_WEIGHTS, NamedWeights
from hhrnet_rt.video.records import frames_of

runner = CliRunner()


def test_offline_demo_falls_back_to_random_weights_and_labels_the_output(tmp_path, monkeypatch):
    with socket.socket() as s:  # a port that was free a moment ago: nothing listens there now
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    monkeypatch.setitem(NAMED_WEIGHTS, "w32_512", NamedWeights(f"http://127.0.0.1:{port}/w.pth", "8ae85183"))
    monkeypatch.setattr(download, "PLAIN_HTTP_HOSTS", {"127.0.0.1"})
    monkeypatch.setenv("HHRT_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.chdir(tmp_path)
    t0 = time.monotonic()
    result = runner.invoke(app, ["demo", "--backend", "torch", "--max-frames", "2"])
    assert result.exit_code == 0, result.output
    assert "Traceback" not in result.output
    offline = [
        line for line in result.stderr.splitlines() if "no w32_512 weights: could not download" in line
    ]
    assert len(offline) == 1 and "random weights" in offline[0] and "meaningless" in offline[0]
    run = tmp_path / "runs" / "pose" / "1"
    records = frames_of(json.loads(line) for line in (run / "walking.jsonl").read_text().splitlines())
    assert [r["frame"] for r in records] == [0, 1]
    header = json.loads((run / "walking.jsonl").read_text().splitlines()[0])
    assert header["model"]["weights"] == "random"  # a reader of the file learns the poses are meaningless
    with av.open(str(run / "walking.mp4")) as container:
        frames = [f.to_ndarray(format="bgr24") for f in container.decode(video=0)]
    assert len(frames) == 2 and frames[0].shape == (576, 768, 3)
    # The caption's black box at the bottom left of every frame: the video says its poses are random.
    corner = frames[0][-30:-12, 10:300]
    assert (corner.max(axis=2) < 40).mean() > 0.5 and (corner.min(axis=2) > 200).any()
    assert demo.RANDOM_CAPTION in result.stderr.splitlines()[-1]  # said again at the end
    assert "runs/pose/1/walking.mp4" in result.stdout and "runs/pose/1/walking.jsonl" in result.stdout
    assert "FPS" in result.stdout
    assert time.monotonic() - t0 < 120  # the fallback does not wait on the network
    np.testing.assert_array_equal(sorted(p.name for p in run.iterdir()), ["walking.jsonl", "walking.mp4"])
