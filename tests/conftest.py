"""Shared fixtures: the golden reference data beside the checkout, the golden tiny model in the forms many
modules use (CLI options, network, estimators, one ONNX export, one export cache), one local Ray cluster,
markers for GPU/TensorRT, and how pytest-xdist splits the suite between its workers.

Shared fixtures are session-scoped where nothing mutates them (paths, read-only arrays, estimators that
tests only call) and handed out as fresh copies where a test may change them (networks, option lists).
A test that damages a shared file copies it first.
"""

from __future__ import annotations

import copy
import importlib.util
import os
import sys
from pathlib import Path

import numpy as np
import pytest

# Before anything loads torch: the package defaults OMP_WAIT_POLICY to PASSIVE on import (see
# hhrnet_rt/core/threads.py), which libgomp reads once. Test modules import torch first, so without this
# the test process ran torch's CPU kernels with spinning OpenMP workers, which no user's process does (the
# CLI and `import hhrnet_rt` set it first), and which slow everything else on a shared 2-core machine.
import hhrnet_rt  # noqa: F401

REPO_ROOT = Path(__file__).resolve().parents[1]
GOLDEN_DIR = (REPO_ROOT / ".." / "shared" / "golden").resolve()


def _require_golden() -> Path:
    if not (GOLDEN_DIR / "README.md").is_file():
        pytest.fail(
            f"golden reference data not found at {GOLDEN_DIR}: the tests expect the shared folder "
            "beside the checkout (../shared/golden relative to the repository root)",
            pytrace=False,
        )
    return GOLDEN_DIR


@pytest.fixture(scope="session")
def golden_dir() -> Path:
    """Path of ../shared/golden; fails (not skips) when it is missing."""
    return _require_golden()


@pytest.fixture(scope="session")
def golden_npz(golden_dir):
    """Load a golden .npz by stem, e.g. ``golden_npz("tiny_forward")``; cached per session."""
    cache: dict[str, dict[str, np.ndarray]] = {}

    def load(stem: str) -> dict[str, np.ndarray]:
        if stem not in cache:
            with np.load(golden_dir / f"{stem}.npz") as z:
                cache[stem] = {k: z[k] for k in z.files}
        return cache[stem]

    return load


@pytest.fixture(scope="module")
def one_torch_thread():
    """Run a module's torch work on one thread, restoring the count afterwards.

    On a loaded 2-core machine torch's OpenMP workers spin against each other (one tiny-model call took
    14 s with 2 threads and 0.15 s with 1, measured here); the golden data itself was made with 2 threads,
    which changes floats by about 1e-6 and no decision (golden README).
    """
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def tiny_onnx_build(golden_dir, tmp_path_factory):
    """``build_onnx_files`` of the golden tiny model: fp32, no flip, input 64 (fast to export), once per
    session. Tests that damage or rename the files copy them first."""
    from hhrnet_rt.export.build import build_onnx_files

    out = tmp_path_factory.mktemp("tiny_onnx")
    return build_onnx_files(golden_dir / "tiny_model.npz", "fp32", input_size=64, flip=False, out_dir=out,
                            name="t", calib_cache_dir=out / "calibration")  # fmt: skip


@pytest.fixture(scope="session")
def tiny_weights(golden_dir) -> Path:
    """The golden tiny checkpoint (random weights, exact HigherHRNet shapes)."""
    return golden_dir / "tiny_model.npz"


@pytest.fixture
def tiny(tiny_weights) -> list[str]:
    """CLI model options for a fast run: the golden tiny checkpoint, torch on the CPU, the smallest input.
    A new list for each test, so one test's edit cannot reach another."""
    return ["--weights", str(tiny_weights), "--backend", "torch", "--input-size", "64"]


@pytest.fixture(scope="session")
def golden_bgr(golden_npz) -> np.ndarray:
    """The golden pipeline image as ``predict`` takes it (BGR; the stored one is RGB, as valid.py sees it
    after cvtColor). Read-only: shared by every module, so a write would be a bug in the code under test."""
    image = np.ascontiguousarray(golden_npz("pipeline_case")["image_rgb_uint8"][:, :, ::-1])
    image.flags.writeable = False
    return image


@pytest.fixture(scope="session")
def _tiny_network_once(tiny_weights):
    from hhrnet_rt.model.weights import build_from_checkpoint

    model, _ = build_from_checkpoint(tiny_weights)
    return model.eval()


@pytest.fixture(scope="module")
def tiny_network(_tiny_network_once):
    """The golden tiny network (eval mode), a copy of its own for each module: modules wrap it, count its
    calls or export it, and none of that may reach another module."""
    return copy.deepcopy(_tiny_network_once)


@pytest.fixture(scope="session")
def onnx_cache(tmp_path_factory) -> Path:
    """One ONNX export cache for the modules that only read it (exports are keyed by graph, so each graph
    is exported once per session). Tests that damage cached files use a folder of their own."""
    return tmp_path_factory.mktemp("onnx-cache")


@pytest.fixture(scope="session")
def tiny_estimator(tiny_weights, onnx_cache):
    """``tiny_estimator(backend="torch", input_size=128, flip=True, scales=(1.0,), decode_on="auto",
    **options)``: a ``PoseEstimator`` of the golden tiny model (ONNX Runtime and OpenVINO on one thread,
    exports in ``onnx_cache``), built once per session for each set of options. Tests only call it; one
    that changes an estimator for a test does so through ``monkeypatch``, which puts it back."""
    from hhrnet_rt.runtime.estimator import PoseEstimator

    built: dict[tuple, PoseEstimator] = {}

    def get(backend: str = "torch", input_size: int = 128, *, flip: bool = True,
            scales: tuple[float, ...] = (1.0,), decode_on: str = "auto", **options) -> PoseEstimator:  # fmt: skip
        key = (backend, input_size, flip, tuple(scales), decode_on, *sorted(options.items()))
        if key not in built:
            built[key] = PoseEstimator(tiny_weights, input_size=input_size, flip=flip, scales=scales,
                                       backend=backend, decode_on=decode_on, onnx_cache_dir=onnx_cache,
                                       onnx_threads=1, **options)  # fmt: skip
        return built[key]

    return get


# -- one local Ray cluster for the session -----------------------------------------------------------------

#: The modules whose tests use ``ray_cluster`` (collection refuses any other user): one worker runs them
#: all under pytest-xdist (``pytest_xdist_make_scheduler``), so the run starts one cluster.
RAY_MODULES = ("tests/test_ray_jobs.py", "tests/test_serve.py", "tests/test_serve_interop.py")


@pytest.fixture(scope="session")
def ray_faults_file(tmp_path_factory) -> Path:
    """The test-only faults file :mod:`hhrnet_rt.cluster.video_task` reads in the workers (tests add
    entries keyed by their own video paths)."""
    path = tmp_path_factory.mktemp("faults") / "faults.json"
    path.write_text("{}")
    return path


@pytest.fixture(scope="session")
def ray_cluster(ray_faults_file):
    """A 2-CPU local Ray started as ``hhrt video --ray`` starts one (``ray_session``: 127.0.0.1 only, no
    dashboard), whose workers see the faults file; yields its address. Starting and stopping a cluster
    costs 5-8 s on 2 quiet cores, so the Ray Serve tests and the Ray task tests share this one; subprocesses
    join it with ``--address``."""
    pytest.importorskip("ray")
    from hhrnet_rt.cluster import ray_session
    from hhrnet_rt.cluster.video_task import FAULTS_ENV

    if "ray" in sys.modules and sys.modules["ray"].is_initialized():
        pytest.fail("Ray is already connected in this test process; the session's cluster must be its own")
    saved = {k: os.environ.get(k) for k in (FAULTS_ENV, "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER")}
    os.environ[FAULTS_ENV] = str(ray_faults_file)  # before init: the workers inherit the raylet's environment
    try:
        with ray_session(num_cpus=2) as ray:
            address = ray.get_runtime_context().gcs_address
            assert address.startswith("127.0.0.1:"), f"the cluster must stay on loopback, got {address}"
            assert {n["NodeManagerAddress"] for n in ray.nodes()} == {"127.0.0.1"}
            yield address
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


@pytest.fixture(scope="session")
def tiny_server(ray_cluster, golden_dir):
    """``hhrt serve`` of the golden tiny model on the session's cluster (tests/serve_helpers.py): its URL.
    Shared by the Ray Serve modules (in RAY_MODULES, so one worker runs them all): starting and stopping a
    server costs ~20 s on 2 busy cores. Its settings and the token are serve_helpers' constants."""
    from serve_helpers import tiny_server as serving

    with serving(golden_dir) as url:
        yield url


@pytest.fixture(scope="session")
def chromium():
    """One headless Chromium per test session (xdist worker), driven by Selenium; skips where the browser
    is missing (fails under HHRT_REQUIRE_BROWSER=1, as in CI). Starting it costs ~0.5 s. Tests load their
    own page; they share the browser, not its state, so each test opens what it needs with ``get``."""
    from browser_helpers import start_chromium

    driver = start_chromium()
    try:
        yield driver
    finally:
        driver.quit()


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config, log):
    """pytest-xdist (``-n``, on by default: pyproject.toml): whole modules per worker, so module-scoped
    fixtures (a calibrated int8 build, a server) are made once, not once in each worker, and the Ray
    modules go to one worker together, so the run starts one cluster. Modules with the most tests go out
    first (xdist's order for scopes). Each worker is a session of its own for session-scoped fixtures."""
    from xdist.scheduler import LoadScopeScheduling

    class ModuleScheduling(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            module = nodeid.split("::", 1)[0]
            return "ray" if module in RAY_MODULES else module

    return ModuleScheduling(config, log)


@pytest.hookimpl(tryfirst=True)  # before pytest's own: `-m "not slow"` must see the slow marks added here
def pytest_collection_modifyitems(config, items):
    has_cuda = False
    try:
        import torch

        has_cuda = torch.cuda.is_available()
    except Exception:  # pragma: no cover - torch is a hard dependency
        pass
    has_trt = importlib.util.find_spec("tensorrt") is not None
    skip_gpu = pytest.mark.skip(reason="needs a CUDA GPU; none is visible to torch on this machine")
    skip_trt = pytest.mark.skip(reason="needs TensorRT (pip install tensorrt) and a CUDA GPU")
    for item in items:
        if (
            "ray_cluster" in getattr(item, "fixturenames", ())
            and item.nodeid.split("::")[0] not in RAY_MODULES
        ):
            raise pytest.UsageError(
                f"{item.nodeid} uses ray_cluster: add its module to RAY_MODULES (conftest)"
            )
        if "ray_cluster" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.slow)  # the cluster alone takes ~5 s to start on 2 cores
        if "gpu" in item.keywords and not has_cuda:
            item.add_marker(skip_gpu)
        if "tensorrt" in item.keywords and not (has_trt and has_cuda):
            item.add_marker(skip_trt)
