"""One backend called from four threads gives every caller its own answer (issue 8, GPU hygiene).

The CUDA backends share state between calls (a captured CUDA graph's static input and output buffers;
a TensorRT execution context's bindings) and serialise their calls with
:class:`~hhrnet_rt.runtime.backends.stream.BackendStream`. On the CPU the same class runs without a stream, so
the lock is checked here against a model that keeps the same kind of shared static buffers; on a GPU
the real backends are checked (``gpu`` / ``tensorrt`` marks).
"""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest
import torch

from hhrnet_rt.runtime.backends.stream import BackendStream

pytestmark = pytest.mark.usefixtures("one_torch_thread")

THREADS = 4


def hammer(run, inputs, expected, *, calls: int, tol: float) -> list[str]:
    """``THREADS`` threads call ``run(inputs[i])`` ``calls`` times each, all starting together.

    Returns the problems found (empty: every result matched ``expected[i]`` within ``tol``).
    """
    problems: list[str] = []
    barrier = threading.Barrier(THREADS)

    def work(i: int) -> None:
        try:
            barrier.wait(timeout=30)
            for k in range(calls):
                got = run(inputs[i])
                err = float(np.abs(np.asarray(got) - expected[i]).max())
                if err > tol:
                    problems.append(f"thread {i} call {k}: max error {err:.3g}")
        except Exception as exc:  # noqa: BLE001 - reported to the main thread
            problems.append(f"thread {i}: {type(exc).__name__}: {exc}")

    threads = [threading.Thread(target=work, args=(i,)) for i in range(THREADS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not any(t.is_alive() for t in threads), "a thread did not finish (deadlock?)"
    return problems


class StaticBufferNet:
    """What a CUDA-graph replay does, on the CPU: copy into a static input, compute into a static output,
    return a clone. The sleeps hand the GIL to the other threads in the middle of a call, so without the
    lock their copies overwrite each other's input."""

    def __init__(self, stream: BackendStream) -> None:
        torch.manual_seed(0)
        self.net = torch.nn.Conv2d(3, 4, 3, padding=1).eval()
        self.static_in = torch.zeros(1, 3, 8, 8)
        self.static_out = torch.zeros(1, 4, 8, 8)
        self.stream = stream

    def _replay(self, x: torch.Tensor) -> tuple[torch.Tensor]:
        self.static_in.copy_(x)
        time.sleep(0.001)
        with torch.inference_mode():
            self.static_out.copy_(self.net(self.static_in))
        time.sleep(0.001)
        return (self.static_out.clone(),)

    def run(self, x: torch.Tensor) -> np.ndarray:
        return self.stream.call(self._replay, x)[0].numpy()


def _inputs(shape, n=THREADS, seed=0):
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(shape, generator=g) for _ in range(n)]


def test_backend_stream_serialises_calls_on_the_cpu():
    model = StaticBufferNet(BackendStream("cpu"))
    assert model.stream.stream is None  # no CUDA stream on the CPU: only the lock
    xs = _inputs((1, 3, 8, 8))
    expected = [model.run(x) for x in xs]  # one thread: the reference
    # Exact: the same module on the same input in one process, one torch thread.
    assert hammer(model.run, xs, expected, calls=10, tol=0.0) == []


class _NoLock:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


def test_the_same_check_catches_a_missing_lock():
    """The control: with the lock taken away the four threads do corrupt each other's results, so the
    test above can fail."""
    stream = BackendStream("cpu")
    stream.lock = _NoLock()
    model = StaticBufferNet(stream)
    xs = _inputs((1, 3, 8, 8))
    expected = [model.run(x) for x in xs]
    assert hammer(model.run, xs, expected, calls=10, tol=0.0)


class _FakeStream:
    def __init__(self, name, log):
        self.name, self.log = name, log

    def wait_stream(self, other):
        self.log.append(f"{self.name} waits for {other.name}")


class _FakeTensor:
    is_cuda = True

    def __init__(self, name, log):
        self.name, self.log = name, log

    def record_stream(self, stream):
        self.log.append(f"{self.name} used on {stream.name}")


def test_backend_stream_orders_the_callers_stream_and_its_own(monkeypatch):
    """The event/stream protocol, checked on the CPU with torch.cuda's stream calls replaced by recorders:
    the backend waits for the caller's inputs, runs on its own stream, and hands results back ordered."""
    import contextlib

    log: list[str] = []
    caller = _FakeStream("caller", log)
    monkeypatch.setattr(torch.cuda, "Stream", lambda device: _FakeStream("backend", log))
    monkeypatch.setattr(torch.cuda, "current_stream", lambda device=None: caller)

    @contextlib.contextmanager
    def on(stream):
        log.append(f"enter {stream.name}")
        yield
        log.append(f"leave {stream.name}")

    monkeypatch.setattr(torch.cuda, "stream", on)
    bs = BackendStream("cuda:0")
    x, out = _FakeTensor("x", log), _FakeTensor("out", log)

    def work(t):
        log.append(f"work on {t.name}")
        return (out,)

    assert bs.call(work, x) == (out,)
    assert log == [
        "backend waits for caller",  # inputs made on the caller's stream are complete
        "x used on backend",  # the allocator must not reuse x while the backend reads it
        "enter backend",
        "work on x",
        "leave backend",
        "caller waits for backend",  # the caller's later work sees complete results
        "out used on caller",
    ]


def test_torch_cpu_backend_from_four_threads(tiny_graph):
    """The protocol's promise for the CPU torch backend (no shared state between calls)."""
    from hhrnet_rt.runtime.backends.torch_backend import TorchBackend

    backend = TorchBackend(tiny_graph, device="cpu")
    xs = [x.numpy() for x in _inputs((1, 3, 64, 64))]
    expected = [backend.run(x)[0] for x in xs]
    # Same module, same inputs, one torch thread: bit-identical.
    assert hammer(lambda x: backend.run(x)[0], xs, expected, calls=3, tol=0.0) == []


# --- the real CUDA backends --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tiny_graph(tiny_network):
    from hhrnet_rt.model.graph import PoseGraph

    return PoseGraph(tiny_network, flip=True).eval()


@pytest.mark.gpu
@pytest.mark.parametrize("cuda_graphs", [True, False])
def test_torch_cuda_backend_from_four_threads(tiny_graph, cuda_graphs):
    from hhrnet_rt.runtime.backends.torch_cuda import TorchCudaBackend

    backend = TorchCudaBackend(tiny_graph, device="cuda", precision="fp16", cuda_graphs=cuda_graphs)
    xs = [x.numpy() for x in _inputs((1, 3, 128, 192))]
    expected = [backend.run(x)[0] for x in xs]
    # The same kernels on the same inputs; 1e-3 only allows for a cuDNN algorithm that is not
    # bit-deterministic (fp16 heatmaps are ~1e-2..1: a mixed-up input differs by far more).
    problems = hammer(lambda x: backend.run(x)[0], xs, expected, calls=20, tol=1e-3)
    assert problems == []


@pytest.mark.gpu
def test_torch_cuda_results_are_ready_on_the_callers_stream(tiny_graph):
    """run_torch from a thread whose current stream is a side stream: the result, used on that stream
    without any synchronisation by the caller, is complete; the backend ran on a stream of its own."""
    from hhrnet_rt.runtime.backends.torch_cuda import TorchCudaBackend

    backend = TorchCudaBackend(tiny_graph, device="cuda", precision="fp32", cuda_graphs=True)
    x = torch.randn(1, 3, 128, 192, device="cuda")
    reference = backend.run_torch(x)[0].cpu()
    side = torch.cuda.Stream()
    with torch.cuda.stream(side):
        y = x * 1.0  # made on the side stream: the backend must wait for it
        got = backend.run_torch(y)[0] * 1.0  # used on the side stream at once
        host = got.to("cpu", non_blocking=False)
    assert backend._stream.stream not in (side, torch.cuda.default_stream())
    torch.testing.assert_close(host, reference, rtol=0, atol=1e-5)


@pytest.mark.tensorrt
@pytest.mark.gpu
def test_tensorrt_backend_from_four_threads(tmp_path_factory, golden_dir):
    from hhrnet_rt.artifacts.shape_profile import parse_shapes
    from hhrnet_rt.export.build import build_onnx_files, build_tensorrt_engine
    from hhrnet_rt.runtime.backends.tensorrt_backend import TensorRTBackend

    out = tmp_path_factory.mktemp("trt-threads")
    result = build_onnx_files(
        golden_dir / "tiny_model.npz",
        "fp16",
        input_size=128,
        profile=parse_shapes("128:128x192:256"),
        out_dir=out,
        name="tiny",
        calib_cache_dir=out / "calibration",
    )
    backend = TensorRTBackend(build_tensorrt_engine(result, workspace_gib=1.0).engine_path)
    xs = [x.numpy() for x in _inputs((1, 3, 128, 192))]
    expected = [backend.run(x)[0] for x in xs]
    assert hammer(lambda x: backend.run(x)[0], xs, expected, calls=20, tol=1e-3) == []
