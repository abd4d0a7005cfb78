"""ONNX Runtime backend: reused output buffers (same results, never overwritten while referenced) and the
spinning setting. A two-output conv net stands in for the PoseGraph (same input/output names)."""

from __future__ import annotations

import threading

import numpy as np
import pytest
import torch
from torch import nn

from hhrnet_rt.model.onnx_export import export_onnx
from hhrnet_rt.runtime.backends.onnxruntime_backend import OnnxRuntimeBackend
from hhrnet_rt.runtime.backends.output_ring import MAX_OUTPUT_BUFFERS, OutputRing


class _TwoHeads(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.heat = nn.Conv2d(3, 4, 3, padding=1)
        self.tag = nn.Conv2d(3, 4, 1)

    def forward(self, x):
        return torch.sigmoid(self.heat(x)), self.tag(x).unsqueeze(-1)


@pytest.fixture(scope="module")
def onnx_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("ort") / "two.onnx"
    axes = {
        "image": {0: "n", 2: "h", 3: "w"},
        "heatmaps": {0: "n", 2: "h", 3: "w"},
        "tags": {0: "n", 2: "h", 3: "w"},
    }
    return export_onnx(_TwoHeads().eval(), path, example_input=torch.zeros(1, 3, 16, 16), input_names=["image"],
                       output_names=["heatmaps", "tags"], dynamic_axes=axes)  # fmt: skip


def _inputs(n, shape=(1, 3, 16, 24)):
    rng = np.random.default_rng(0)
    return [rng.standard_normal(shape).astype(np.float32) for _ in range(n)]


def test_reused_outputs_equal_fresh_outputs(onnx_file):
    fresh = OnnxRuntimeBackend(onnx_file, threads=1, reuse_outputs=False)
    reused = OnnxRuntimeBackend(onnx_file, threads=1)
    for x in _inputs(5):
        h_ref, t_ref = fresh.run(x)
        h, t = reused.run(x)
        # Same session settings and kernels, one thread: the same floats bit for bit.
        np.testing.assert_array_equal(h, h_ref)
        np.testing.assert_array_equal(t, t_ref)
        del h, t  # frees the buffers, so the next call writes into them
    assert len(reused._ring) == 1, "one buffer pair serves a caller that drops its outputs each frame"


def test_outputs_in_use_are_never_overwritten(onnx_file):
    backend = OnnxRuntimeBackend(onnx_file, threads=1)
    xs = _inputs(6)
    kept = []  # like the pipeline: several frames' maps in flight (as views, as the estimator keeps them)
    for x in xs:
        h, t = backend.run(x)
        kept.append((h[0], t[0], h[0].copy(), t[0].copy()))
        del h, t
    for view_h, view_t, copy_h, copy_t in kept:
        np.testing.assert_array_equal(view_h, copy_h)
        np.testing.assert_array_equal(view_t, copy_t)
    addresses = {v[0].__array_interface__["data"][0] for v in kept}
    assert len(addresses) == len(xs), "a buffer still referenced was handed out again"
    kept.clear()
    h, _t = backend.run(xs[0])
    assert len(backend._ring) == len(xs)  # the buffers came back for reuse...
    assert h.__array_interface__["data"][0] in addresses  # ...and one of them was reused


def test_ring_stops_growing_at_capacity():
    ring = OutputRing(capacity=2)
    held = [[np.zeros(2), np.zeros(2)] for _ in range(3)]  # the arrays, as a caller of run() holds them
    for heatmaps, tags in held:
        ring.adopt((1,), (heatmaps, tags))
    assert len(ring) == 2
    assert ring.take((1,)) is None  # every kept pair is still referenced by ``held``
    held.clear()
    assert ring.take((1,)) is not None


def test_concurrent_callers_get_distinct_buffers(onnx_file):
    backend = OnnxRuntimeBackend(onnx_file, threads=1)
    results, errors = {}, []

    def work(i):
        try:
            for x in _inputs(3):
                results.setdefault(i, []).append(backend.run(x))
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(2)]
    for th in threads:
        th.start()
    for th in threads:
        th.join(timeout=60)
    assert not errors
    ptrs = [h.__array_interface__["data"][0] for outs in results.values() for h, _t in outs]
    assert len(ptrs) == len(set(ptrs)) == 6
    assert len(backend._ring) <= MAX_OUTPUT_BUFFERS


def test_spinning_is_off_by_default_and_reported(onnx_file):
    backend = OnnxRuntimeBackend(onnx_file, threads=1)
    assert backend.describe()["spinning"] is False
    assert (
        backend.session.get_session_options().get_session_config_entry("session.intra_op.allow_spinning")
        == "0"
    )
    spinning = OnnxRuntimeBackend(onnx_file, threads=1, spinning=True)
    assert (
        spinning.session.get_session_options().get_session_config_entry("session.intra_op.allow_spinning")
        == "1"
    )
