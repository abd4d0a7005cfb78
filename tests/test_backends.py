"""Backend choice (this CPU machine and monkeypatched availability), torch and ONNX Runtime backends."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from hhrnet_rt.core.errors import BackendUnavailableError, InputError, TensorRTUnavailableError
from hhrnet_rt.core.tag_layout import by_pixel
from hhrnet_rt.runtime.backends import Backend, choose_backend, create_backend, select

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _flags(monkeypatch, *, cuda: bool, trt: bool, ort: bool = True) -> None:
    monkeypatch.setattr(select, "cuda_available", lambda: cuda)
    monkeypatch.setattr(select, "tensorrt_available", lambda: trt)
    monkeypatch.setattr(select, "onnxruntime_available", lambda: ort)


# -- choose_backend on this machine (no GPU, no TensorRT, onnxruntime installed) ----------------------


def test_auto_on_this_cpu_machine():
    assert not torch.cuda.is_available()
    name, device, reason = choose_backend("auto")
    assert (name, device) == ("onnxruntime", "cpu")
    assert reason == "no CUDA GPU visible to torch; using ONNX Runtime on the CPU"


def test_auto_with_engine_but_no_gpu_says_so():
    name, device, reason = choose_backend("auto", engine="x.engine")
    assert (name, device) == ("onnxruntime", "cpu")
    assert "no CUDA GPU" in reason and "engine" in reason


def test_explicit_backends_on_this_machine():
    assert choose_backend("torch")[:2] == ("torch", "cpu")
    assert choose_backend("torch", device="cpu")[:2] == ("torch", "cpu")
    assert choose_backend("onnxruntime")[:2] == ("onnxruntime", "cpu")
    assert choose_backend("ONNXRuntime")[:2] == ("onnxruntime", "cpu")
    with pytest.raises(BackendUnavailableError, match="no CUDA GPU"):
        choose_backend("torch", device="cuda")
    with pytest.raises(TensorRTUnavailableError, match="pip install"):
        choose_backend("tensorrt", engine="x.engine")
    with pytest.raises(BackendUnavailableError, match="no CUDA GPU"):
        choose_backend("auto", device="cuda")


def test_bad_requests():
    with pytest.raises(InputError, match="unknown backend"):
        choose_backend("tflite")
    with pytest.raises(InputError, match="unknown device"):
        choose_backend("torch", device="tpu")
    with pytest.raises(InputError, match="CPU only"):
        choose_backend("onnxruntime", device="cuda")


# -- other machines, simulated --------------------------------------------------------------------------


def test_auto_prefers_tensorrt_with_engine_gpu_and_package(monkeypatch):
    _flags(monkeypatch, cuda=True, trt=True)
    name, device, reason = choose_backend("auto", engine="m.engine")
    assert (name, device) == ("tensorrt", "cuda")
    assert "TensorRT" in reason


def test_auto_without_engine_uses_torch_cuda(monkeypatch):
    _flags(monkeypatch, cuda=True, trt=True)
    assert choose_backend("auto")[:2] == ("torch", "cuda")
    assert choose_backend("auto", device="cuda:1")[:2] == ("torch", "cuda:1")


def test_auto_with_engine_but_no_tensorrt_uses_torch_cuda(monkeypatch):
    _flags(monkeypatch, cuda=True, trt=False)
    name, device, reason = choose_backend("auto", engine="m.engine")
    assert (name, device) == ("torch", "cuda")
    assert "tensorrt package is not installed" in reason


def test_auto_cpu_requested_on_gpu_machine(monkeypatch):
    _flags(monkeypatch, cuda=True, trt=True)
    assert choose_backend("auto", engine="m.engine", device="cpu")[:2] == ("onnxruntime", "cpu")


def test_auto_without_onnxruntime_falls_back_to_torch_cpu(monkeypatch):
    _flags(monkeypatch, cuda=False, trt=False, ort=False)
    name, device, reason = choose_backend("auto")
    assert (name, device) == ("torch", "cpu")
    assert "onnxruntime is not installed" in reason
    with pytest.raises(BackendUnavailableError, match="onnxruntime"):
        choose_backend("onnxruntime")


def test_tensorrt_requests(monkeypatch):
    _flags(monkeypatch, cuda=True, trt=True)
    assert choose_backend("tensorrt", engine="m.engine")[:2] == ("tensorrt", "cuda")
    with pytest.raises(BackendUnavailableError, match="engine file"):
        choose_backend("tensorrt")
    with pytest.raises(InputError, match="CUDA GPU only"):
        choose_backend("tensorrt", engine="m.engine", device="cpu")
    _flags(monkeypatch, cuda=False, trt=True)
    with pytest.raises(BackendUnavailableError, match="CUDA GPU"):
        choose_backend("tensorrt", engine="m.engine")


def test_torch_cuda_request_on_gpu_machine(monkeypatch):
    _flags(monkeypatch, cuda=True, trt=False)
    assert choose_backend("torch", device="cuda:0")[:2] == ("torch", "cuda:0")


# -- the backends themselves ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tiny_graph(tiny_network):
    from hhrnet_rt.model.graph import PoseGraph

    return PoseGraph(tiny_network).eval()


def test_torch_backend_matches_golden(tiny_graph, golden_npz):
    z = golden_npz("pipeline_case")
    backend = create_backend("torch", tiny_graph, device="cpu")
    assert isinstance(backend, Backend)
    heatmaps, tags = backend.run(z["s128_input"])
    assert heatmaps.dtype == np.float32 and tags.shape == (1, 17, 2, 128, 192)  # planar tags
    final = (z["s128_heatmaps_orig"] + z["s128_heatmaps_flip"]) / np.float32(2.0)
    # Golden made with 2 torch threads; another thread count moves model outputs by ~5e-6 at most.
    np.testing.assert_allclose(heatmaps, final, rtol=0, atol=1e-5)
    np.testing.assert_allclose(by_pixel(tags), z["s128_flip_tags"], rtol=0, atol=1e-5)
    assert backend.describe()["device"] == "cpu"


def test_backend_input_checks(tiny_graph):
    backend = create_backend("torch", tiny_graph, device="cpu")
    with pytest.raises(InputError, match="float32"):
        backend.run(np.zeros((1, 3, 64, 64), np.float64))
    with pytest.raises(InputError, match="N, 3, h, w"):
        backend.run(np.zeros((3, 64, 64), np.float32))


def test_unknown_backend_name(tiny_graph):
    with pytest.raises(BackendUnavailableError, match="unknown backend"):
        create_backend("tflite", tiny_graph)


@pytest.fixture(scope="module")
def noflip_onnx(tiny_graph, tmp_path_factory):
    from hhrnet_rt.model.graph import PoseGraph
    from hhrnet_rt.runtime.backends.onnx_cache import export_cached

    graph = PoseGraph(tiny_graph.network, flip=False).eval()
    cache = tmp_path_factory.mktemp("onnx-cache")
    return graph, cache, export_cached(graph, example_hw=(64, 64), cache_dir=cache)


def test_onnxruntime_export_cache_and_parity(noflip_onnx, golden_npz):
    from hhrnet_rt.runtime.backends.onnx_cache import export_cached
    from hhrnet_rt.runtime.backends.onnxruntime_backend import OnnxRuntimeBackend

    graph, cache, path = noflip_onnx
    mtime = path.stat().st_mtime_ns
    # Same graph again (even at another example size): the cached file is reused, not re-exported.
    assert export_cached(graph, example_hw=(128, 128), cache_dir=cache) == path
    assert path.stat().st_mtime_ns == mtime
    backend = OnnxRuntimeBackend.from_graph(graph, cache_dir=cache, threads=1)
    assert backend.onnx_path == path and isinstance(backend, Backend)
    assert backend.describe()["threads"] == 1 and backend.precision == "fp32"
    z = golden_npz("pipeline_case")
    heatmaps, tags = backend.run(z["s128_input"])  # exported at 64x64, run at 128x192
    # ONNX Runtime vs torch on the same graph: ~2e-6 (different conv/resize kernels), atol 1e-5.
    np.testing.assert_allclose(heatmaps, z["s128_heatmaps_orig"], rtol=0, atol=1e-5)
    np.testing.assert_allclose(by_pixel(tags), z["s128_flip_tags"][..., :1], rtol=0, atol=1e-5)


def test_onnxruntime_cache_key_separates_graphs(noflip_onnx):
    from hhrnet_rt.model.graph import PoseGraph
    from hhrnet_rt.runtime.backends.onnx_cache import graph_cache_key

    graph, _, _ = noflip_onnx
    keys = {
        graph_cache_key(graph),
        graph_cache_key(PoseGraph(graph.network, flip=True)),
        graph_cache_key(PoseGraph(graph.network, flip=False, project=False)),
    }
    assert len(keys) == 3


def test_onnxruntime_runs_a_given_file_through_create_backend(noflip_onnx):
    _, _, path = noflip_onnx
    backend = create_backend("onnxruntime", None, engine=path, onnx_threads=2)
    heatmaps, tags = backend.run(np.zeros((2, 3, 64, 128), np.float32))
    assert heatmaps.shape == (2, 17, 64, 128) and tags.shape == (2, 17, 1, 64, 128)


def test_onnxruntime_refuses_foreign_files(tmp_path):
    import onnx
    from onnx import TensorProto, helper

    from hhrnet_rt.runtime.backends.onnxruntime_backend import OnnxRuntimeBackend

    node = helper.make_node("Identity", ["x"], ["y"])
    graph = helper.make_graph(
        [node],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1])],
    )
    path = tmp_path / "other.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), path)
    with pytest.raises(InputError, match="expected \\['image'\\]"):
        OnnxRuntimeBackend(path)
    with pytest.raises(InputError, match="not found"):
        OnnxRuntimeBackend(tmp_path / "missing.onnx")
    with pytest.raises(InputError, match=">= 1"):
        OnnxRuntimeBackend(path, threads=0)


# -- precision: honoured or refused, never silently switched -------------------------------------------


def test_torch_cpu_runs_fp32_only(tiny_graph):
    assert create_backend("torch", tiny_graph, device="cpu", precision="fp32").precision == "fp32"
    assert create_backend("torch", tiny_graph, device="cpu").precision == "fp32"
    with pytest.raises(InputError, match="fp32 only.*backend='onnxruntime'"):
        create_backend("torch", tiny_graph, device="cpu", precision="fp16")
    with pytest.raises(InputError, match="build-engine --precision int8"):
        create_backend("torch", tiny_graph, device="cpu", precision="int8")
    with pytest.raises(InputError, match="unknown precision"):
        create_backend("torch", tiny_graph, device="cpu", precision="bf16")


class _Recorder:
    """Stands in for a GPU backend class: records its arguments."""

    name = "torch"
    calls: list = []

    def __init__(self, *args, **kwargs):
        _Recorder.calls.append(kwargs)
        self.precision, self.device = kwargs.get("precision"), kwargs.get("device")


def test_torch_cuda_gets_the_requested_precision_and_fp32_by_default(tiny_graph, monkeypatch):
    import hhrnet_rt.runtime.backends as backends

    monkeypatch.setattr(backends, "TorchCudaBackend", _Recorder)
    _Recorder.calls.clear()
    assert create_backend("torch", tiny_graph, device="cuda").precision == "fp32"  # fp16 is opt-in
    assert create_backend("torch", tiny_graph, device="cuda:1", precision="fp16").precision == "fp16"
    assert [(c["device"], c["precision"]) for c in _Recorder.calls] == [("cuda", "fp32"), ("cuda:1", "fp16")]
    with pytest.raises(InputError, match="build-engine --precision int8"):
        create_backend("torch", tiny_graph, device="cuda", precision="int8")
    assert len(_Recorder.calls) == 2


def test_onnxruntime_precision_comes_from_the_file(noflip_onnx, tmp_path):
    graph, _, path = noflip_onnx
    assert create_backend("onnxruntime", None, engine=path).precision == "fp32"
    assert create_backend("onnxruntime", None, engine=path, precision="fp32").precision == "fp32"
    with pytest.raises(InputError, match="is a fp32 ONNX file but precision fp16 was requested"):
        create_backend("onnxruntime", None, engine=path, precision="fp16")
    with pytest.raises(InputError, match="build-engine --precision int8"):
        create_backend("onnxruntime", graph, precision="int8", cache_dir=tmp_path)
    assert not list(tmp_path.iterdir())  # refused before exporting anything


def test_tensorrt_precision_is_the_engines(monkeypatch, tmp_path):
    from hhrnet_rt.runtime.backends import tensorrt_backend

    class FakeEngine:
        name, device, precision = "tensorrt", "cuda:0", "int8"

        def __init__(self, engine_path, *, device):
            self.engine_path = engine_path

    monkeypatch.setattr(tensorrt_backend, "TensorRTBackend", FakeEngine)
    engine = tmp_path / "m-int8.engine"
    assert create_backend("tensorrt", engine=engine, device="cuda").precision == "int8"
    assert create_backend("tensorrt", engine=engine, device="cuda", precision="int8").precision == "int8"
    with pytest.raises(InputError, match="m-int8.engine is a int8 engine but precision fp16 was requested"):
        create_backend("tensorrt", engine=engine, device="cuda", precision="fp16")


def test_auto_runs_an_onnx_file_with_onnxruntime_even_on_a_gpu_machine(monkeypatch):
    _flags(monkeypatch, cuda=True, trt=True)
    name, device, reason = choose_backend("auto", engine="m-int8.onnx")
    assert (name, device) == ("onnxruntime", "cpu") and "ONNX file" in reason
    assert choose_backend("auto", engine="m.engine")[0] == "tensorrt"
    with pytest.raises(InputError, match="ONNX file"):
        choose_backend("auto", engine="m.onnx", device="cuda")


def test_torch_backend_run_torch_equals_run(tiny_graph):
    backend = create_backend("torch", tiny_graph, device="cpu")
    x = np.random.default_rng(0).standard_normal((1, 3, 64, 64)).astype(np.float32)
    heatmaps, tags = backend.run_torch(torch.from_numpy(x))
    ref_h, ref_t = backend.run(x)
    np.testing.assert_array_equal(heatmaps.numpy(), ref_h)
    np.testing.assert_array_equal(tags.numpy(), ref_t)


def test_every_backend_declares_the_protocol_and_describes_with_the_same_keys(tiny_graph, tmp_path):
    """What the estimator calls is declared (no hasattr probing), names are the enum, and describe()
    starts with the same keys on every backend (the CUDA ones are covered by the GPU tests' describe)."""
    from hhrnet_rt.core.names import BackendName
    from hhrnet_rt.runtime.backends import Backend, create_backend
    from hhrnet_rt.runtime.backends.base import DESCRIBE_KEYS

    x = np.random.default_rng(0).standard_normal((1, 3, 64, 64)).astype(np.float32)
    for name in (BackendName.torch, BackendName.onnxruntime):
        backend = create_backend(name, tiny_graph, example_hw=(64, 64), cache_dir=tmp_path)
        assert isinstance(backend, Backend) and backend.name is name
        assert tuple(backend.describe())[: len(DESCRIBE_KEYS)] == DESCRIBE_KEYS
        assert backend.describe()["backend"] == name.value
        # run_torch is part of the protocol on every backend, tensor-native or not; same numbers as run.
        heatmaps, _ = backend.run_torch(torch.from_numpy(x))
        np.testing.assert_array_equal(heatmaps.numpy(), backend.run(x)[0])
    assert (
        create_backend("onnxruntime", tiny_graph, example_hw=(64, 64), cache_dir=tmp_path).tensor_native
        is False
    )


def test_numpy_backends_take_cpu_tensors_only(tiny_graph, tmp_path):
    backend = create_backend("onnxruntime", tiny_graph, example_hw=(64, 64), cache_dir=tmp_path)
    with pytest.raises(InputError, match="the onnxruntime backend takes CPU tensors"):
        backend.run_torch(np.zeros((1, 3, 64, 64), np.float32))


def test_backend_status_uses_the_probes_and_reasons_of_choose_backend(monkeypatch):
    monkeypatch.setattr(select, "cuda_available", lambda: False)
    monkeypatch.setattr(select, "tensorrt_available", lambda: True)
    monkeypatch.setattr(select, "onnxruntime_available", lambda: False)
    status = select.backend_status()
    assert status["torch (CUDA)"] == select.NO_CUDA
    assert status["TensorRT"] == f"installed, but {select.NO_CUDA}"
    assert status["ONNX Runtime"] == select.NO_ONNXRUNTIME
    with pytest.raises(BackendUnavailableError, match=select.NO_CUDA):
        choose_backend("tensorrt", engine="x.engine")
    with pytest.raises(BackendUnavailableError, match=select.NO_ONNXRUNTIME):
        choose_backend("onnxruntime")
    monkeypatch.setattr(select, "tensorrt_available", lambda: False)
    assert select.backend_status()["TensorRT"] == select.NO_TENSORRT
    with pytest.raises(TensorRTUnavailableError, match="not installed"):
        choose_backend("tensorrt", engine="x.engine")
