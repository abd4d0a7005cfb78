"""``PoseEstimator.predict_batch`` and the batch stages: one backend call per input shape, same poses."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from hhrnet_rt.core.errors import InputError
from hhrnet_rt.runtime.batch_infer import group_by_shape

pytestmark = pytest.mark.usefixtures("one_torch_thread")

# With oneDNN on, torch's CPU convolutions pick their kernel by batch size, so a frame's maps in a batch
# may differ from its batch-1 maps in the last bits (tests/test_flip_batch.py measured 5.1e-6 on raw
# outputs up to ~11 and 1.7e-6 on projected heatmaps for batch 2 vs 1). Same bound and reason here:
# 5e-5, 10x headroom for other CPUs' kernels. With oneDNN off the batch path is exact, and the poses are
# compared with np.array_equal there.
BATCH_ATOL = 5e-5


@pytest.fixture(scope="module")
def frames(golden_bgr):
    """Three frames of the golden shape (the image, its mirror, a brighter copy), then two other shapes."""
    bgr = golden_bgr
    mirrored = np.ascontiguousarray(bgr[:, ::-1])
    brighter = np.clip(bgr.astype(np.int16) + 25, 0, 255).astype(np.uint8)
    transposed = np.ascontiguousarray(bgr.transpose(1, 0, 2))
    cropped = np.ascontiguousarray(bgr[: bgr.shape[0] * 2 // 3])
    return [bgr, transposed, mirrored, cropped, brighter]


@pytest.fixture(scope="module")
def make(tiny_estimator):
    def get(*, backend="torch", flip=True, scales=(1.0,), decode_on="auto"):
        return tiny_estimator(backend, 128, flip=flip, scales=scales, decode_on=decode_on)

    return get


def _batch_sizes(estimator, monkeypatch) -> list[int]:
    """Record the batch size of every backend call the estimator makes."""
    calls: list[int] = []
    original = estimator.backend.run_torch

    def counting(x):
        calls.append(int(x.shape[0]))
        return original(x)

    monkeypatch.setattr(estimator.backend, "run_torch", counting)
    return calls


def _assert_same_poses(got, expected):
    assert len(got) == len(expected)
    for g, e in zip(got, expected, strict=True):
        np.testing.assert_array_equal(g.keypoints, e.keypoints)
        np.testing.assert_array_equal(g.scores, e.scores)


def test_frames_are_grouped_by_input_shape_in_order_of_first_appearance(make, frames):
    prepared = make().prepare_batch(frames)
    assert group_by_shape(prepared) == [[0, 2, 4], [1], [3]]


def test_one_backend_call_per_shape_group(make, frames, monkeypatch):
    est = make()
    calls = _batch_sizes(est, monkeypatch)
    prepared = est.prepare_batch(frames)
    maps = est.infer_batch(prepared)
    assert calls == [3, 1, 1]
    assert len(maps) == len(frames)
    for m, p in zip(maps, prepared, strict=True):  # each frame's maps, in the caller's order
        w, h = p.affine.size
        assert m.heatmaps.shape == (est.num_joints, h, w)
        # Tags are the per-pixel view of contiguous planes: the decoder reads the planes without a copy.
        assert m.heatmaps.flags.c_contiguous and np.moveaxis(m.tags, -1, -3).flags.c_contiguous


def test_groups_larger_than_the_backends_max_batch_are_split(make, frames, monkeypatch):
    # A TensorRT engine accepts batches up to its profile's max (`hhrt build-engine --max-batch`).
    est = make()
    monkeypatch.setattr(est.backend, "max_batch", 2)
    calls = _batch_sizes(est, monkeypatch)
    with torch.backends.mkldnn.flags(enabled=False):
        got = est.predict_batch(frames)
        expected = [est.predict(f) for f in frames]
    assert calls[:4] == [2, 1, 1, 1]
    _assert_same_poses(got, expected)


@pytest.mark.parametrize("flip", [True, False])
def test_predict_batch_equals_predict_exactly_with_one_kernel_choice(make, frames, flip):
    est = make(flip=flip)
    with torch.backends.mkldnn.flags(enabled=False):  # the same convolution kernel for every batch size
        expected = [est.predict(f) for f in frames]
        got = est.predict_batch(frames)
    assert sum(len(p) for p in expected) > 0  # the comparison has people to compare
    _assert_same_poses(got, expected)


def test_multi_scale_batch_equals_per_frame(make, frames):
    est = make(scales=(1.0, 0.5))
    with torch.backends.mkldnn.flags(enabled=False):
        expected = [est.predict(f) for f in frames]
        got = est.predict_batch(frames)
    _assert_same_poses(got, expected)


def test_device_decode_of_a_batch_equals_host_decode_per_frame(make, frames):
    on_device, on_host = make(decode_on="device"), make(decode_on="host")
    with torch.backends.mkldnn.flags(enabled=False):
        expected = [on_host.predict(f) for f in frames]
        got = on_device.predict_batch(frames)
    _assert_same_poses(got, expected)


@pytest.mark.parametrize("backend", ["torch", "onnxruntime"])
def test_batch_maps_match_per_frame_maps_with_default_kernels(make, frames, backend):
    est = make(backend=backend)
    prepared = est.prepare_batch(frames)
    batched = est.infer_batch(prepared)
    for p, m in zip(prepared, batched, strict=True):
        alone = est.infer(p)
        np.testing.assert_allclose(m.heatmaps, alone.heatmaps, rtol=0, atol=BATCH_ATOL)
        np.testing.assert_allclose(m.tags, alone.tags, rtol=0, atol=BATCH_ATOL)


def test_the_batch_outputs_of_one_call_are_not_overwritten_by_the_next(make, frames):
    # ONNX Runtime reuses output buffers between calls (OutputRing): per-frame views of a batch must keep
    # their base alive, so a later batch of the same shape cannot write into maps still being decoded.
    est = make(backend="onnxruntime")
    first = est.infer_batch(est.prepare_batch(frames[:1] * 3))
    kept = [m.heatmaps.copy() for m in first]
    est.infer_batch(est.prepare_batch([frames[2]] * 3))
    for m, k in zip(first, kept, strict=True):
        np.testing.assert_array_equal(m.heatmaps, k)


def test_empty_and_mismatched_batches(make, frames):
    est = make()
    assert est.predict_batch([]) == []
    prepared = est.prepare_batch(frames[:2])
    with pytest.raises(InputError, match="2 maps for 1 prepared"):
        est.decode_batch(est.infer_batch(prepared), prepared[:1])
