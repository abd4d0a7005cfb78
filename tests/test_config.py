"""One estimator configuration, resolved once: :class:`EstimatorConfig` and :func:`resolve`, and the CLI,
``hhrt serve`` and the Ray recipe building their estimators from it."""

from __future__ import annotations

import dataclasses
import inspect
import json
import os
import pickle
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner
from video_helpers import make_video

from hhrnet_rt.cli import app
from hhrnet_rt.core.errors import InputError
from hhrnet_rt.runtime.backends import choose_backend
from hhrnet_rt.runtime.config import FAST_INPUT_SIZE, EstimatorConfig, Resolution, resolve
from hhrnet_rt.runtime.estimator import PoseEstimator
from hhrnet_rt.video.records import frames_of

REPO = Path(__file__).resolve().parents[1]
runner = CliRunner()


@pytest.fixture(scope="module")
def tiny(golden_dir) -> dict:
    return {
        "weights": str(golden_dir / "tiny_model.npz"),
        "input_size": 64,
        "backend": "torch",
        "device": "cpu",
    }


# -- the config ----------------------------------------------------------------------------------------


def test_config_has_every_estimator_keyword_with_its_default():
    params = inspect.signature(PoseEstimator.__init__).parameters
    keywords = {name: p.default for name, p in params.items() if name != "self"}
    defaults = {f.name: f.default for f in dataclasses.fields(EstimatorConfig)}
    assert {k: defaults[k] for k in keywords} == keywords
    assert set(defaults) - set(keywords) == {"fast", "torch_threads"}  # what the CLI adds


def test_config_is_frozen_keyword_only_and_pickles():
    config = EstimatorConfig(weights="w32_640", backend="auto", engine=Path("/e/m.onnx"), scales=[1.0, 0.5])
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.backend = "torch"  # type: ignore[misc]
    with pytest.raises(TypeError):
        EstimatorConfig("w32_512")  # type: ignore[misc]
    assert config.scales == (1.0, 0.5)  # a list would be mutable behind the frozen config
    assert pickle.loads(pickle.dumps(config)) == config


# -- what resolve decides ------------------------------------------------------------------------------


def _resolved(**kwargs) -> Resolution:
    return resolve(EstimatorConfig(**{"weights": "random", **kwargs}))


def test_fast_preset_and_named_weights_sizes(tmp_path, monkeypatch):
    assert (_resolved().input_size, _resolved().flip) == (512, True)
    assert (_resolved(fast=True).input_size, _resolved(fast=True).flip) == (FAST_INPUT_SIZE, False)
    assert _resolved(fast=True, input_size=256).input_size == 256  # an explicit size wins
    assert _resolved(weights="w32_640").input_size == 640  # the released model's test size
    assert _resolved(weights="w48_640", fast=True).input_size == FAST_INPUT_SIZE
    assert _resolved(weights="w32_640", input_size=512).input_size == 512
    assert _resolved(weights="w32_512").input_size == 512
    monkeypatch.chdir(tmp_path)
    Path("w32_640").write_bytes(b"a local file by that name is a file, not the named weights")
    assert _resolved(weights="w32_640").input_size == 512


def test_an_engine_files_flip_and_size(tiny_onnx_build):
    onnx = tiny_onnx_build.onnx_path  # built with input 64 and no flip test
    resolution = resolve(EstimatorConfig(engine=onnx, backend="onnxruntime"))
    assert (resolution.input_size, resolution.flip, resolution.engine) == (64, False, onnx)
    assert resolution.engine_settings is not None and resolution.engine_settings.path == onnx
    named = resolve(EstimatorConfig(weights="w32_640", engine=onnx, backend="onnxruntime"))
    assert named.input_size == 64  # the file's size, not the named weights' preset
    assert (
        resolve(EstimatorConfig(engine=onnx, backend="onnxruntime", fast=True)).input_size == FAST_INPUT_SIZE
    )
    with pytest.raises(InputError, match="built without the flip test"):
        resolve(EstimatorConfig(engine=onnx, backend="onnxruntime", flip=True))
    with pytest.raises(InputError, match="the torch backend .* cannot run"):
        resolve(EstimatorConfig(engine=onnx, backend="torch"))  # which file the backend runs


def test_backend_device_reason_and_decode_on():
    for request in ("auto", "torch", "onnxruntime"):
        resolution = _resolved(backend=request, device=None)
        assert (resolution.backend, resolution.device, resolution.reason) == choose_backend(
            request, device=None
        )
        assert resolution.decode_on == "host"  # a CPU backend here
    assert _resolved(decode_on="device").decode_on == "device"
    assert _resolved(scales=(0.5, 1.0, 2.0)).scales == (2.0, 1.0, 0.5)  # the official order
    with pytest.raises(InputError, match="decode_on"):
        _resolved(decode_on="gpu")


def test_argument_errors_come_before_the_engine_and_the_backend(tmp_path):
    missing = tmp_path / "missing.engine"
    with pytest.raises(InputError, match="unknown precision"):
        _resolved(precision="fp8", engine=missing, backend="tensorrt")
    with pytest.raises(InputError, match="input size"):
        _resolved(input_size=500, engine=missing, backend="tensorrt")
    with pytest.raises(InputError, match="engine file .*does not exist"):
        _resolved(engine=missing, backend="tensorrt")  # before TensorRT is found missing
    with pytest.raises(InputError, match="needs weights"):
        resolve(EstimatorConfig())


# -- the estimator from a config -----------------------------------------------------------------------


def _golden_frame(golden_npz) -> np.ndarray:
    return np.ascontiguousarray(golden_npz("pipeline_case")["image_rgb_uint8"][..., ::-1])


@pytest.mark.parametrize("extra", [{}, {"flip": False, "scales": (1.0, 0.5)}])
def test_keywords_and_config_build_the_same_estimator(tiny, golden_npz, one_torch_thread, extra):
    kwargs = {**tiny, **extra}
    direct = PoseEstimator(**kwargs)
    configured = PoseEstimator.from_config(EstimatorConfig(**kwargs))
    assert direct.describe() == configured.describe()
    assert direct.resolution == configured.resolution
    frame = _golden_frame(golden_npz)
    expected, got = direct.predict(frame), configured.predict(frame)
    assert len(expected) > 0, "the tiny model should find someone: otherwise nothing is compared"
    np.testing.assert_array_equal(got.keypoints, expected.keypoints)
    np.testing.assert_array_equal(got.scores, expected.scores)


def test_from_config_applies_torch_threads_and_builds_a_resolution_as_it_is(tiny, monkeypatch):
    before = torch.get_num_threads()
    want = 3 if before != 3 else 2
    resolution = resolve(EstimatorConfig(**tiny, torch_threads=want, fast=True))
    monkeypatch.setattr("hhrnet_rt.runtime.estimator.resolve", None)  # resolving again would fail
    try:
        estimator = PoseEstimator.from_config(resolution)
        assert torch.get_num_threads() == want
    finally:
        torch.set_num_threads(before)
    assert estimator.resolution is resolution and estimator.describe()["flip"] is False


# -- the CLI prints what the estimator was built with -----------------------------------------------------


@pytest.mark.parametrize("backend", ["auto", "torch"])
def test_cli_backend_reason_is_the_estimators(backend, tmp_path, golden_dir, monkeypatch, one_torch_thread):
    import cv2

    monkeypatch.setenv("HHRT_CACHE_DIR", str(tmp_path / "cache"))  # auto: ONNX Runtime exports the graph
    described = []
    original = PoseEstimator.describe
    monkeypatch.setattr(
        PoseEstimator, "describe", lambda self: described.append(original(self)) or described[-1]
    )
    picture = tmp_path / "p.png"
    cv2.imwrite(str(picture), np.full((96, 128, 3), 90, np.uint8))
    result = runner.invoke(app, ["image", str(picture), "--out", str(tmp_path / "out"), "--input-size", "64",
                                 "--weights", str(golden_dir / "tiny_model.npz"), "--backend", backend])  # fmt: skip
    assert result.exit_code == 0, result.output
    output = " ".join(result.output.split())  # Rich wraps long lines at the terminal's width
    printed = re.search(r"backend: (\S+) on (\S+) \((.*?)\) loading the model", output)
    assert printed is not None, result.output
    assert described, "the CLI describes the estimator it built"
    facts = described[0]
    assert printed.groups() == (facts["backend"], facts["device"], facts["reason"])
    if backend == "torch":
        assert facts["reason"] == "torch on the CPU as requested"


# -- hhrt serve and the Ray recipe use the config ---------------------------------------------------------


class _Started(Exception):
    pass


def test_serve_hands_one_config_to_the_replicas(tmp_path, golden_dir, monkeypatch):
    import hhrnet_rt.cli.serve as serve_cmd

    seen = {}

    def fake_start(config, settings, **kwargs):
        seen.update(config=config, **kwargs)
        raise _Started

    monkeypatch.setattr(serve_cmd, "require_ray", lambda **_: None)
    monkeypatch.setattr(serve_cmd, "stop_server", lambda **_: None)
    monkeypatch.setattr(serve_cmd, "start_server", fake_start)
    monkeypatch.chdir(golden_dir)
    result = runner.invoke(app, ["serve", "--weights", "tiny_model.npz", "--fast", "--threads", "2"])
    assert "the server did not start: _Started" in result.output, result.output
    config = seen["config"]
    assert isinstance(config, EstimatorConfig) and "torch_threads" not in seen
    assert config.weights == golden_dir / "tiny_model.npz"  # absolute: replicas run elsewhere
    assert (config.backend, config.fast, config.onnx_threads, config.torch_threads) == ("auto", True, 2, 2)
    assert pickle.loads(pickle.dumps(config)) == config


def test_a_serve_replica_builds_from_the_config(tiny, one_torch_thread):
    pytest.importorskip("ray.serve")
    from hhrnet_rt.serve.deployment import PoseDeployment
    from hhrnet_rt.serve.handler import ServeSettings

    config = EstimatorConfig(**tiny, flip=False)
    replica = PoseDeployment(config, ServeSettings())
    assert replica.estimator.describe() == PoseEstimator.from_config(config).describe()


def _recipe(golden_dir, **model):
    from hhrnet_rt.cli.estimator import model_config
    from hhrnet_rt.cli.options import BackendName, DecodeOn
    from hhrnet_rt.cli.ray_video import recipe_for
    from hhrnet_rt.cli.stream_io import RunSettings
    from hhrnet_rt.track.hook import TemporalSettings

    options = {"weights": None, "backend": BackendName.torch, "engine": None, "precision": None, "device": None,
               "input_size": 64, "flip": None, "fast": False, "refine": True, "decode_on": DecodeOn.auto,
               "threads": None, **model}  # fmt: skip
    run = RunSettings(max_frames=3, min_score=0.0, over_time=TemporalSettings(track=True))
    return recipe_for(model_config(**options), run)


def test_the_ray_recipe_carries_the_config(golden_dir, monkeypatch):
    monkeypatch.chdir(golden_dir)
    recipe = _recipe(golden_dir, weights="tiny_model.npz", threads=1)
    assert recipe.estimator == EstimatorConfig(
        weights=golden_dir / "tiny_model.npz", input_size=64, backend="torch", device=None, onnx_threads=1,
        torch_threads=1,
    )  # fmt: skip
    assert (recipe.max_frames, recipe.min_score, recipe.over_time.track) == (3, 0.0, True)
    assert recipe.option_style is not None and recipe.option_style("flip", False) == "--no-flip"
    assert pickle.loads(pickle.dumps(recipe)) == recipe


_WORKER = """
import json, pickle, sys
from hhrnet_rt.cluster.video_task import FileReport, VideoJob, _process

class Remote:
    def remote(self, *args):
        pass

class Ledger:  # what a worker calls on the run's ledger actor
    set_total = advance = Remote()

recipe = pickle.loads(open(sys.argv[1], "rb").read())
job = VideoJob(0, sys.argv[2], {"video": None, "json": sys.argv[3], "coco": None}, "run1", False)
report = FileReport(0, job.source)
with recipe.messages():
    _process(job, recipe, Ledger(), 1, None, report)
print(json.dumps({"frames": report.frames_written, "backend": report.backend, "error": report.error,
                  "cli": sorted(m for m in sys.modules if m.startswith("hhrnet_rt.cli"))}))
"""


def test_a_worker_runs_the_recipe_without_importing_the_cli(tmp_path, golden_dir):
    recipe = _recipe(golden_dir, weights=str(golden_dir / "tiny_model.npz"))
    (tmp_path / "recipe.pkl").write_bytes(pickle.dumps(recipe))
    video = make_video(tmp_path / "walk.mp4", 4)
    out = tmp_path / "walk.jsonl"
    # The worker shares this test run's Numba kernel cache (the package's user cache, as a Ray worker on
    # this machine would): an empty cache of its own recompiled every decode kernel, 40-50 s of the
    # suite on 2 cores, for nothing this test checks.
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run([sys.executable, "-c", _WORKER, str(tmp_path / "recipe.pkl"), str(video), str(out)],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=300)  # fmt: skip
    assert done.returncode == 0, done.stderr
    facts = json.loads(done.stdout.strip().splitlines()[-1])
    assert facts == {"frames": 3, "backend": "torch on cpu", "error": None, "cli": []}
    published = frames_of(json.loads(line) for line in out.read_text().splitlines())
    assert [r["frame"] for r in published] == [0, 1, 2]
