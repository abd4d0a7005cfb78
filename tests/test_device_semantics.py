"""The CUDA code paths on the CPU under device semantics (tests/device_semantics): what a frame costs in
device<->host crossings and synchronisations, and that the mode sees each class of mistake.

The budget per frame (issue #18): at most 2 device->host reads of at most 0.5 MB in all, no blocking
upload, no implicit host conversion, no hidden synchronisation. Run alone with ``-m device_semantics``.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from device_semantics import DeviceSemanticsError, device_semantics
from test_decode_on import check_host_decode_copies_the_maps_once
from test_estimator import check_cuda_device_path

from hhrnet_rt.decode import device as device_decode
from hhrnet_rt.runtime.estimator import PoseEstimator
from hhrnet_rt.video.pipeline import run_pipeline
from hhrnet_rt.video.sources import ArraySource

pytestmark = [pytest.mark.device_semantics, pytest.mark.usefixtures("one_torch_thread")]

SIZE = 64  # the network input: the mode's rules do not depend on it, the time does
HW = (48, 80)


def _frames(n: int, hw: tuple[int, int] = HW, seed: int = 0) -> list[np.ndarray]:
    """Blocky noise (like ``warmup``'s): the decode finds candidates, groups and refines them."""
    rng = np.random.default_rng(seed)
    h, w = hw
    small = rng.integers(0, 256, (n, h // 8 + 1, w // 8 + 1, 3), np.uint8)
    big = np.repeat(np.repeat(small, 8, 1), 8, 2)[:, :h, :w]
    return [np.ascontiguousarray(f) for f in big]


@pytest.fixture(scope="module")
def session(one_torch_thread):
    """One device-semantics session for the module (its estimators are made inside it)."""
    with device_semantics() as ledger:
        yield ledger


@pytest.fixture(scope="module")
def cuda_estimator(session, tiny_weights):
    built: dict[tuple, PoseEstimator] = {}

    def get(scales: tuple[float, ...] = (1.0,), **options) -> PoseEstimator:
        key = (scales, *sorted(options.items()))
        if key not in built:
            built[key] = PoseEstimator(
                tiny_weights, input_size=SIZE, backend="torch", device="cuda", scales=scales, **options
            )
        return built[key]

    return get


def test_the_session_stands_in_for_a_gpu(session, cuda_estimator):
    info = cuda_estimator().describe()
    assert info["backend_details"]["gpu"] == "device-semantics CPU"
    assert info["decode_on"] == "device" and info["preprocess"].startswith("torch on cuda:")


def test_one_frame_at_a_time_keeps_the_budget(session, cuda_estimator):
    est = cuda_estimator()
    est.warmup(HW)
    session.reset()
    frames = _frames(4)
    people = [len(est.predict(f)) for f in frames]
    session.assert_budget(frames=len(frames))
    assert sum(people) > 0  # the decode had people to group (the reads are not those of empty frames)
    assert session.replays == len(frames) and session.captures == 0  # the graph of warmup() is replayed
    assert session.summary(len(frames))["async_uploads"] >= 1  # the frame goes up pinned, asynchronously


def test_batches_keep_the_budget(session, cuda_estimator):
    est = cuda_estimator()
    frames = _frames(4, seed=1)
    est.predict_batch(frames)  # captures the batch-4 graph
    session.reset()
    est.predict_batch(frames)
    session.assert_budget(frames=len(frames))


def test_multi_scale_keeps_the_budget(session, cuda_estimator):
    est = cuda_estimator(scales=(0.5, 1.0))
    est.predict(_frames(1, seed=7)[0])  # captures the graph of each scale (warmup() runs this 3 times)
    session.reset()
    frames = _frames(1, seed=2)
    for f in frames:
        est.predict(f)
    session.assert_budget(frames=len(frames))
    assert session.captures == 0  # the sizes warmup() captured are kept, not recaptured in turn


def test_the_threaded_pipeline_keeps_the_budget(session, cuda_estimator):
    est = cuda_estimator()
    est.warmup(HW)
    est.predict_batch(_frames(2, seed=3))  # the batch-2 graph
    session.reset()
    frames = _frames(6, seed=4)
    result = run_pipeline(ArraySource(frames), est, draw=False, batch=2, max_wait_ms=50)
    assert result.frames_processed == len(frames) and result.inference_calls == 3
    session.assert_budget(frames=len(frames))
    # Each pipeline thread that touches the device has a stream of its own: on the legacy default stream
    # inference would wait for queued decode kernels and decode's reads for the next inference.
    on_default = {name: n for name, n in session.default_stream.items() if name.startswith("hhrt-")}
    assert not on_default, f"pipeline threads on the legacy default stream (device operations): {on_default}"


def test_the_cuda_parity_check_runs_on_device_tensors(session, cuda_estimator, tiny_estimator, golden_bgr):
    # The gpu test's logic (tests/test_estimator.py): a numpy comparison of device maps is refused here as
    # on a GPU, so the check must read them through the declared transfer point.
    check_cuda_device_path(cuda_estimator(), tiny_estimator("torch", SIZE), golden_bgr, 2e-2)


def test_host_decode_of_device_maps_copies_each_map_once(session, cuda_estimator, golden_bgr):
    # The gpu test's logic (tests/test_decode_on.py): the planar tags' per-pixel view is not C-contiguous.
    check_host_decode_copies_the_maps_once(cuda_estimator(decode_on="host"), golden_bgr)


# -- the mode sees each class of mistake ------------------------------------------------------------------


def _item(pack):
    pack[0, 0].item()


def _bool_mask(pack):
    _ = pack[pack > 0]


def _if_tensor(pack):
    if (pack > 0).any():
        pass


def _list_index(pack):
    _ = pack[[0, 0]]


def _nonzero(pack):
    torch.nonzero(pack)


def _numpy(pack):
    np.asarray(pack)


def _pageable_upload(pack):
    _ = pack + torch.ones(pack.shape[-1], dtype=pack.dtype).to(pack.device)


def _undeclared_read(pack):
    pack.cpu()


MISTAKES = {
    _item: ("implicit", DeviceSemanticsError),
    _numpy: ("implicit", DeviceSemanticsError),
    _bool_mask: ("hidden", None),
    _if_tensor: ("hidden", None),
    _list_index: ("hidden", None),
    _nonzero: ("hidden", None),
    _pageable_upload: ("blocking upload", None),
    _undeclared_read: ("outside the declared transfer points", None),
}


@pytest.mark.parametrize("mistake", list(MISTAKES), ids=lambda f: f.__name__.strip("_"))
def test_an_injected_mistake_in_a_decode_step_is_reported(session, cuda_estimator, monkeypatch, mistake):
    kind, raises = MISTAKES[mistake]
    est = cuda_estimator()
    real = device_decode.candidate_pack

    def with_mistake(*args, **kwargs):
        pack = real(*args, **kwargs)
        mistake(pack)
        return pack

    monkeypatch.setattr(device_decode, "candidate_pack", with_mistake)
    frame = _frames(1, seed=5)[0]
    session.reset()
    if raises:
        with pytest.raises(raises, match="device tensor"):
            est.predict(frame)
    else:
        est.predict(frame)
    found = session.problems(frames=1)
    assert any(kind in p and "test_device_semantics.py" in p for p in found), found


# -- CUDA graphs: several shapes kept, eager after a failed capture --------------------------------------


class _TwoMaps(torch.nn.Module):
    """A stand-in pose graph (one convolution, two outputs): the backend's graph handling is what counts."""

    def __init__(self, sync_in_forward: bool = False) -> None:
        super().__init__()
        self.conv = torch.nn.Conv2d(3, 4, 3, padding=1)
        self.sync_in_forward = sync_in_forward

    def forward(self, x):
        y = self.conv(x)
        if self.sync_in_forward and bool(y.sum() > 0):  # a hidden sync: refused while capturing
            y = y + 0
        return y[:, :2], y[:, 2:]


def _inputs(*shapes):
    rng = np.random.default_rng(0)
    return {s: rng.standard_normal(s).astype(np.float32) for s in shapes}


def test_graphs_of_several_shapes_are_kept_and_replay_the_eager_result(session):
    from hhrnet_rt.runtime.backends.torch_cuda import TorchCudaBackend

    torch.manual_seed(0)
    module = _TwoMaps().eval()
    backend = TorchCudaBackend(module, device="cuda", max_graphs=2)
    a, b, c = (1, 3, 16, 24), (2, 3, 16, 24), (1, 3, 24, 16)
    xs = _inputs(a, b, c)
    session.reset()
    for shape in (a, b, a, b, a):  # multi-scale / partial batches alternate: each shape captured once
        out = backend.run(xs[shape])
        with torch.inference_mode():
            ref = module(torch.from_numpy(xs[shape]))
        np.testing.assert_allclose(out[0], ref[0].numpy(), rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(out[1], ref[1].numpy(), rtol=1e-5, atol=1e-6)
    assert (session.captures, session.replays) == (2, 5)
    backend.run(xs[c])  # a third shape drops the least recently used one (b), not a
    backend.run(xs[a])
    assert (session.captures, session.replays) == (3, 7)
    backend.run(xs[b])
    assert session.captures == 4
    assert backend.describe()["cuda_graph_shapes"] == 2


def test_a_failed_capture_falls_back_to_eager_once(session):
    from hhrnet_rt.runtime.backends.torch_cuda import TorchCudaBackend

    backend = TorchCudaBackend(_TwoMaps(sync_in_forward=True).eval(), device="cuda")
    x = _inputs((1, 3, 16, 24))[(1, 3, 16, 24)]
    session.reset()
    with pytest.warns(RuntimeWarning, match="CUDA graph capture failed"):
        backend.run(x)
    for _ in range(3):
        backend.run(x)  # eager now: no second capture attempt, no warning
    assert (session.captures, session.capture_failures, session.replays) == (0, 1, 0)
    info = backend.describe()
    assert info["cuda_graphs"] is False and "during CUDA graph capture" in info["cuda_graph_failure"]


def test_inference_time_on_cuda_is_the_gpu_time_between_events(session, cuda_estimator, monkeypatch):
    # On CUDA infer_batch returns once the work is queued; the stage's time must be the GPU's (events),
    # or it lands in decode, which is the first to wait for the maps.
    from device_semantics.fake_cuda import FakeEvent

    est = cuda_estimator()
    est.warmup(HW)
    monkeypatch.setattr(FakeEvent, "elapsed_time", lambda self, end: 123.0)  # ms, what the GPU reports
    result = run_pipeline(ArraySource(_frames(3, seed=6)), est, draw=False)
    inference = result.stages["inference"]
    assert inference.count == 3 and inference.p50_ms == pytest.approx(123.0)
