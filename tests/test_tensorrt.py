"""TensorRT: the CPU-side logic (shape profiles, dtype table, refusals before TensorRT is touched) runs
everywhere; building and running a real engine is marked ``tensorrt`` and skipped without TensorRT + GPU."""

from __future__ import annotations

import sys

import numpy as np
import pytest

from hhrnet_rt.artifacts.shape_profile import ShapeProfile, default_profile, parse_shapes, profile_from_dict
from hhrnet_rt.artifacts.sidecar import Sidecar
from hhrnet_rt.core.errors import (
    BackendUnavailableError,
    EngineMismatchError,
    InputError,
    TensorRTUnavailableError,
)
from hhrnet_rt.export.tensorrt_build import build_engine
from hhrnet_rt.runtime.backends.tensorrt_backend import TensorRTBackend, check_input_shape, torch_dtype_name


def test_parse_shapes_forms():
    p = parse_shapes("512:512x960:2x1024x1024")
    assert p == ShapeProfile((1, 3, 512, 512), (1, 3, 512, 960), (2, 3, 1024, 1024))
    assert profile_from_dict(p.as_dict()) == p
    assert parse_shapes(" 256 : 256 : 256 ").opt == (1, 3, 256, 256)


@pytest.mark.parametrize(
    ("spec", "needle"),
    [
        ("512", "MIN:OPT:MAX"),
        ("512:512:512:512", "MIN:OPT:MAX"),
        ("512:x:1024", "integers"),
        ("512:1x2x3x4:1024", "S, HxW or NxHxW"),
        ("32:64:128", "H, W >= 64"),
        ("0x512:512:512", "H, W >= 64"),
        ("512:500:1024", "multiples of 64"),
        ("1024:512:2048", "MIN <= OPT <= MAX"),
        ("512:2x512x512:1x1024x1024", "MIN <= OPT <= MAX"),
    ],
)
def test_parse_shapes_refusals(spec, needle):
    with pytest.raises(InputError, match=needle.replace("(", r"\(")):
        parse_shapes(spec)


def test_the_profile_takes_max_batch_or_explicit_shapes():
    from hhrnet_rt.artifacts.shape_profile import parse_shapes, resolve_profile
    from hhrnet_rt.core.errors import InputError

    assert resolve_profile(256, None, None) == default_profile(256)
    batched = resolve_profile(256, None, 8)
    # opt stays batch 1 (one live stream's shape, which TensorRT tunes for); max takes the batch.
    assert batched.min[0] == batched.opt[0] == 1 and batched.max[0] == 8
    assert batched.max[1:] == default_profile(256).max[1:]
    given = parse_shapes("2x256x256:4x256x448:8x512x512")
    assert resolve_profile(256, given, None) is given
    for bad in (0, -1, True, 2.0):
        with pytest.raises(InputError, match="max_batch"):
            resolve_profile(256, None, bad)
    with pytest.raises(InputError, match="not both"):
        resolve_profile(256, given, 4)


def test_default_profile_covers_resize_align_outputs():
    from hhrnet_rt.runtime.preprocess import multi_scale_size

    for size in (256, 512, 640):
        profile = default_profile(size)
        for hw in ((720, 1280), (1080, 1920), (1280, 720), (480, 640), (512, 512)):
            (w, h), _c, _s = multi_scale_size(hw, size)
            assert profile.contains((1, 3, h, w)), (size, hw, (h, w))
        assert profile.opt == (1, 3, size, profile.opt[3]) and profile.opt[3] % 64 == 0


def test_check_input_shape():
    profile = parse_shapes("256:256x448:512")
    check_input_shape((1, 3, 256, 448), profile)
    with pytest.raises(InputError, match="outside the engine's shape profile"):
        check_input_shape((1, 3, 256, 576), profile)
    with pytest.raises(InputError, match=r"\(N, 3, H, W\)"):
        check_input_shape((1, 256, 256), profile)


def test_dtype_table():
    class FakeDType:
        def __init__(self, name):
            self.name = name

    assert torch_dtype_name(FakeDType("FLOAT")) == "float32"
    assert torch_dtype_name(FakeDType("HALF")) == "float16"
    assert torch_dtype_name("DataType.INT8") == "int8"
    with pytest.raises(BackendUnavailableError, match="FP4"):
        torch_dtype_name(FakeDType("FP4"))


def _sidecar(tmp_path, name="m") -> Sidecar:
    sc = Sidecar(
        name=name,
        precision="fp16",
        input_size=256,
        flip=True,
        weights="random",
        num_joints=17,
        shape_profile=default_profile(256).as_dict(),
        onnx={"file": f"{name}.onnx", "sha256": "0" * 64},
        tensorrt={
            "version": "10.12.0",
            "gpu_name": "G",
            "compute_capability": [9, 0],
            "engine_file": f"{name}.engine",
        },
    )
    sc.write(tmp_path / f"{name}.json")
    return sc


def test_backend_refusals_before_tensorrt(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "tensorrt", None)
    with pytest.raises(InputError, match="does not exist"):
        TensorRTBackend(tmp_path / "absent.engine")
    (tmp_path / "m.engine").write_bytes(b"not really an engine")
    with pytest.raises(EngineMismatchError, match="no sidecar"):
        TensorRTBackend(tmp_path / "m.engine")
    _sidecar(tmp_path)
    with pytest.raises(TensorRTUnavailableError, match="pip install"):
        TensorRTBackend(tmp_path / "m.engine")


def test_build_engine_without_tensorrt_names_the_onnx(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "tensorrt", None)
    with pytest.raises(TensorRTUnavailableError, match="m.onnx"):
        build_engine(tmp_path / "m.onnx", tmp_path / "m.engine", default_profile(256))


# --- the TensorRT calls themselves, against a fake of the API (tests/fake_tensorrt.py) -----------------


@pytest.fixture
def fake_trt(monkeypatch):
    import fake_tensorrt

    module = fake_tensorrt.make_fake("10.12.0")
    monkeypatch.setitem(sys.modules, "tensorrt", module)
    return fake_tensorrt


@pytest.fixture
def pretend_gpu(monkeypatch):
    """torch says a GPU "G" (sm 9.0) is there, matching ``_sidecar``; nothing is run on it."""
    import contextlib

    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda *a: "G")
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda *a: (9, 0))
    monkeypatch.setattr(torch.cuda, "device", lambda *a: contextlib.nullcontext())


def test_fp32_builds_clear_tf32(fake_trt, tmp_path, monkeypatch):
    import hhrnet_rt.export.tensorrt_build as tb

    monkeypatch.setattr(tb, "gpu_facts", lambda: ("G", (9, 0)))
    (tmp_path / "m.onnx").write_bytes(b"onnx")
    facts = build_engine(tmp_path / "m.onnx", tmp_path / "m.engine", default_profile(256))
    config = fake_trt.Builder.last_config
    # TensorRT allows TF32 by default; an engine whose sidecar says fp32 must not round to 10 bits.
    assert fake_trt.BuilderFlag.TF32 in config.cleared and not config.get_flag(fake_trt.BuilderFlag.TF32)
    assert facts["tf32"] is False
    assert (tmp_path / "m.engine").read_bytes() == b"serialized engine"


def test_build_refuses_an_engine_it_cannot_read_back(fake_trt, tmp_path, monkeypatch):
    import hhrnet_rt.export.tensorrt_build as tb

    monkeypatch.setattr(tb, "gpu_facts", lambda: ("G", (9, 0)))
    fake_trt.Runtime.engine = None
    with pytest.raises(EngineMismatchError, match="hhrt build-engine"):
        build_engine(tmp_path / "m.onnx", tmp_path / "m.engine", default_profile(256))


@pytest.mark.parametrize("failure", ["returns None", "raises"])
def test_garbage_engine_file_is_a_clear_error(fake_trt, pretend_gpu, tmp_path, failure):
    (tmp_path / "m.engine").write_bytes(b"\x00garbage, not an engine")
    _sidecar(tmp_path)
    if failure == "raises":
        fake_trt.Runtime.error = RuntimeError("Serialization assertion failed")
    else:
        fake_trt.Runtime.engine = None
    with pytest.raises(EngineMismatchError, match=r"could not deserialize .*m\.engine.*hhrt build-engine"):
        TensorRTBackend(tmp_path / "m.engine")
    assert fake_trt.Runtime.seen == [b"\x00garbage, not an engine"]  # it really was handed to TensorRT


def test_no_execution_context_is_a_clear_error(fake_trt, pretend_gpu, tmp_path):
    (tmp_path / "m.engine").write_bytes(b"engine bytes")
    _sidecar(tmp_path)
    fake_trt.FakeEngine.context = None  # what create_execution_context() answers when GPU memory is short
    with pytest.raises(BackendUnavailableError, match="execution context.*out of memory"):
        TensorRTBackend(tmp_path / "m.engine")


# --- real TensorRT (skipped here: no GPU, no TensorRT) ------------------------------------------------


@pytest.fixture(scope="module")
def built_engine(tmp_path_factory, golden_dir):
    from hhrnet_rt.export.build import build_onnx_files, build_tensorrt_engine

    out = tmp_path_factory.mktemp("trt")
    result = build_onnx_files(
        golden_dir / "tiny_model.npz",
        "fp16",
        input_size=128,
        profile=parse_shapes("128:128x256:256"),
        out_dir=out,
        name="tiny",
        calib_cache_dir=out / "calibration",
    )
    return build_tensorrt_engine(result, workspace_gib=1.0)


@pytest.mark.tensorrt
@pytest.mark.gpu
def test_engine_matches_onnx_runtime(built_engine):
    import onnxruntime as ort

    backend = TensorRTBackend(built_engine.engine_path)
    assert backend.precision == "fp16" and backend.describe()["tensorrt"]
    x = np.random.default_rng(0).standard_normal((1, 3, 128, 192)).astype(np.float32)
    heatmaps, tags = backend.run(x)
    ref_h, ref_t = ort.InferenceSession(str(built_engine.fp32_onnx_path)).run(None, {"image": x})
    assert heatmaps.shape == ref_h.shape and tags.shape == ref_t.shape
    # fp16 engine vs fp32 ORT: same bound as the fp16 ONNX file in test_quantize (0.0018 measured there).
    assert np.abs(heatmaps - ref_h).max() < 0.01


@pytest.mark.tensorrt
@pytest.mark.gpu
def test_run_torch_is_zero_copy_and_checks_profile(built_engine):
    import torch

    backend = TensorRTBackend(built_engine.engine_path)
    x = torch.randn(1, 3, 128, 256, device="cuda")
    heatmaps, tags = backend.run_torch(x)
    # Engine tags are planar (N, K, L, H, W): L = 2 with flip, right after the joints axis.
    assert heatmaps.is_cuda and heatmaps.shape[-2:] == (128, 256)
    assert tags.shape[-2:] == (128, 256) and tags.shape[-3] == 2
    with pytest.raises(InputError, match="outside"):
        backend.run_torch(torch.randn(1, 3, 128, 512, device="cuda"))


@pytest.mark.tensorrt
@pytest.mark.gpu
def test_engine_from_other_gpu_is_refused(built_engine):
    sc = Sidecar.read(built_engine.sidecar_path)
    sc.tensorrt["compute_capability"] = [1, 0]
    sc.write(built_engine.sidecar_path)
    try:
        with pytest.raises(EngineMismatchError, match="compute capability 1.0"):
            TensorRTBackend(built_engine.engine_path)
    finally:
        built_engine.sidecar.write(built_engine.sidecar_path)


@pytest.mark.tensorrt
@pytest.mark.gpu
def test_fp32_engine_computes_in_ieee_fp32(tmp_path_factory, golden_dir):
    """TF32 off: an fp32 engine agrees with fp32 ONNX Runtime to fp32 rounding, not to TF32's 10 bits."""
    import onnxruntime as ort

    from hhrnet_rt.export.build import build_onnx_files, build_tensorrt_engine

    out = tmp_path_factory.mktemp("trt32")
    result = build_onnx_files(
        golden_dir / "tiny_model.npz",
        "fp32",
        input_size=128,
        profile=parse_shapes("128:128x192:256"),
        out_dir=out,
        name="tiny32",
        calib_cache_dir=out / "calibration",
    )
    built = build_tensorrt_engine(result, workspace_gib=1.0)
    assert built.sidecar.tensorrt["tf32"] is False
    x = np.random.default_rng(0).standard_normal((1, 3, 128, 192)).astype(np.float32)
    heatmaps, _tags = TensorRTBackend(built.engine_path).run(x)
    ref, _ = ort.InferenceSession(str(built.fp32_onnx_path)).run(None, {"image": x})
    # Same bound as torch CUDA fp32 vs the CPU (test_torch_cuda): other kernels and summation orders.
    # TF32 rounds conv inputs to 10 mantissa bits (~5e-4 relative each); whether that alone exceeds 1e-4
    # on this tiny network is not measured (no GPU where this was written): the sidecar check above is
    # the part that fails when the flag handling breaks.
    assert np.abs(heatmaps - ref).max() < 1e-4


def test_the_install_hint_names_the_wheel_of_torchs_cuda():
    from hhrnet_rt.core.errors import tensorrt_install_hint

    # Plain `tensorrt` now pulls CUDA 13 wheels; a CUDA 12 torch needs tensorrt-cu12 beside it.
    assert tensorrt_install_hint("12.8").startswith("pip install tensorrt-cu12 ")
    assert '".[tensorrt-cu13]"' in tensorrt_install_hint("13.0")
    assert "tensorrt-cu11" in tensorrt_install_hint(
        "11.8"
    ) and "[tensorrt-cu11]" not in tensorrt_install_hint("11.8")
    assert "torch.version.cuda" in tensorrt_install_hint(None)


def test_import_tensorrt_names_the_wheel_of_torchs_cuda(monkeypatch):
    import torch

    from hhrnet_rt.runtime.backends.tensorrt_backend import import_tensorrt

    monkeypatch.setitem(sys.modules, "tensorrt", None)  # import tensorrt -> ImportError
    monkeypatch.setattr(torch.version, "cuda", "12.6")
    with pytest.raises(TensorRTUnavailableError, match="pip install tensorrt-cu12 "):
        import_tensorrt()


def test_a_refused_timing_cache_is_built_without_and_no_cache_at_all_is_an_error(
    fake_trt, tmp_path, monkeypatch
):
    import hhrnet_rt.export.tensorrt_build as tb

    monkeypatch.setattr(tb, "gpu_facts", lambda: ("G", (9, 0)))
    (tmp_path / "m.onnx").write_bytes(b"onnx")
    cache = tmp_path / "timing.cache"
    build_engine(tmp_path / "m.onnx", tmp_path / "m.engine", default_profile(256), timing_cache=cache)
    (written,) = tmp_path.glob("timing-*.cache")
    written.write_bytes(b"damaged")
    fake_trt.FakeConfig.refused = {b"damaged"}
    build_engine(tmp_path / "m.onnx", tmp_path / "m.engine", default_profile(256), timing_cache=cache)
    assert fake_trt.Builder.last_config.timing_cache.data == b""  # built with a fresh cache instead
    assert written.read_bytes() == b"cache"  # and the damaged file replaced by the new timings
    fake_trt.FakeConfig.no_cache = True
    with pytest.raises(BackendUnavailableError, match="timing cache"):
        build_engine(tmp_path / "m.onnx", tmp_path / "m.engine", default_profile(256))


def test_a_shape_tensorrt_refuses_is_an_input_error_not_minus_one_dims():
    import torch

    class Context:  # set_input_shape answers False for a shape outside the profile (and logs)
        def set_input_shape(self, name, shape):
            return False

        def get_tensor_shape(self, name):  # what the engine would then report
            return (-1, 17, -1, -1)

    backend = TensorRTBackend.__new__(TensorRTBackend)
    backend._torch, backend._input, backend._context = torch, "image", Context()
    backend._dtypes, backend._outputs = {"image": torch.float32}, ["heatmaps", "tags"]
    backend.profile = default_profile(128)
    with pytest.raises(
        InputError, match=r"refused the input shape \(1, 3, 128, 4096\).*rebuild the engine with .*shapes"
    ):
        backend._enqueue(torch.zeros(1, 3, 128, 4096))


@pytest.mark.parametrize(
    "error",
    [MemoryError(), RuntimeError("CUDA out of memory. Tried to allocate 2.00 GiB"),
     RuntimeError("[ONNXRuntimeError] : 6 : RUNTIME_EXCEPTION : Failed to allocate memory for requested buffer")],
    ids=["MemoryError", "torch", "onnxruntime"],
)  # fmt: skip
def test_check_outputs_blames_memory_not_the_file(tmp_path, error):
    from hhrnet_rt.artifacts.engine_settings import EngineSettings
    from hhrnet_rt.runtime.engine_checks import check_outputs

    settings = EngineSettings(
        tmp_path / "m.onnx", "onnx", 17, True, 128, None, False, None, None, "test", None
    )

    class Backend:
        def run(self, x):
            raise error

    with pytest.raises(BackendUnavailableError, match="out of memory running .*m.onnx") as info:
        check_outputs(settings, Backend())
    assert not isinstance(info.value, InputError)  # "the file is wrong" would send the user rebuilding it
    error.args = ("some other failure",)
    if not isinstance(error, MemoryError):
        with pytest.raises(InputError, match="failed on a 64x64 test input"):
            check_outputs(settings, Backend())
