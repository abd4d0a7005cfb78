"""torch CUDA backend: the GPU warp is checked against cv2.warpAffine on the CPU (grid_sample runs on any
device); the backend itself (fp16, CUDA graphs) is marked ``gpu``."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch

from hhrnet_rt.core.errors import BackendUnavailableError, InputError
from hhrnet_rt.runtime.backends.torch_cuda import TorchCudaBackend
from hhrnet_rt.runtime.device_prep import prepare_on_gpu
from hhrnet_rt.runtime.preprocess import normalize, resize_align
from hhrnet_rt.runtime.warp_torch import warp_affine_torch


def _images():
    rng = np.random.default_rng(0)
    small = rng.integers(0, 256, (60, 80, 3), dtype=np.uint8)
    return {
        "blocky": cv2.resize(small, (640, 480), interpolation=cv2.INTER_NEAREST),  # hard edges
        "smooth": cv2.resize(small, (640, 480), interpolation=cv2.INTER_CUBIC),
        "noise_portrait": rng.integers(0, 256, (500, 300, 3), dtype=np.uint8),
    }


@pytest.mark.parametrize("input_size", [128, 256, 512])
def test_gpu_preprocessing_matches_cv2_within_one_level(input_size):
    for label, image in _images().items():
        resized, affine = resize_align(image, input_size)
        x, affine_t = prepare_on_gpu(image, input_size, device="cpu")
        assert tuple(x.shape) == (1, 3, *resized.shape[:2]), label
        np.testing.assert_array_equal(affine_t.forward, affine.forward)
        warped = (
            warp_affine_torch(torch.from_numpy(image), affine.forward, affine.size)[0]
            .permute(1, 2, 0)
            .numpy()
        )
        diff = np.abs(warped - resized.astype(np.float32))
        # Measured: max 1 level, at most 3.5% of values differ (noise downscaled to 128); OpenCV's
        # fixed-point coordinates (1/32 px) and weights (2**-15) against grid_sample's float math.
        assert diff.max() <= 1, label
        assert (diff > 0).mean() < 0.05, label
        # And after normalisation: one level is 1/255/std ~ 0.0175.
        assert np.abs(x.numpy() - normalize(resized, bgr=True)).max() < 0.018, label


def test_identity_warp_is_exact():
    image = np.random.default_rng(1).integers(0, 256, (64, 96, 3), dtype=np.uint8)
    eye = np.array([[1.0, 0, 0], [0, 1.0, 0]])
    out = warp_affine_torch(torch.from_numpy(image), eye, (96, 64))[0].permute(1, 2, 0).numpy()
    np.testing.assert_array_equal(out, image.astype(np.float32))


def test_prepare_on_gpu_validates_the_frame():
    with pytest.raises(InputError, match="uint8"):
        prepare_on_gpu(np.zeros((32, 32, 3), np.float32), 128, device="cpu")


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the CPU-only refusal")
def test_backend_refuses_without_cuda():
    with pytest.raises(BackendUnavailableError, match="no CUDA GPU"):
        TorchCudaBackend(torch.nn.Identity())


def test_backend_refuses_int8():
    with pytest.raises(InputError, match="int8 needs TensorRT"):
        TorchCudaBackend(torch.nn.Identity(), precision="int8")


@pytest.fixture
def tiny_graph(golden_dir):
    from hhrnet_rt.model.graph import PoseGraph
    from hhrnet_rt.model.weights import build_from_checkpoint

    net, _ = build_from_checkpoint(golden_dir / "tiny_model.npz")
    return PoseGraph(net, flip=True).eval()


@pytest.mark.gpu
@pytest.mark.parametrize("cuda_graphs", [True, False])
def test_fp16_cuda_matches_fp32_cpu(tiny_graph, cuda_graphs):
    x = np.random.default_rng(0).standard_normal((1, 3, 128, 192)).astype(np.float32)
    with torch.inference_mode():
        ref_h, ref_t = (t.numpy() for t in tiny_graph(torch.from_numpy(x)))
    backend = TorchCudaBackend(tiny_graph, device="cuda", precision="fp16", cuda_graphs=cuda_graphs)
    for _ in range(2):  # second call replays the captured graph
        h, t = backend.run(x)
        assert h.dtype == np.float32 and h.shape == ref_h.shape and t.shape == ref_t.shape
        # Same bound as the fp16 ONNX graph (test_quantize: 0.0018 measured on the tiny model).
        assert np.abs(h - ref_h).max() < 0.01
    # A new size re-captures.
    x2 = np.random.default_rng(1).standard_normal((1, 3, 128, 256)).astype(np.float32)
    assert backend.run(x2)[0].shape[-1] == 256


def test_cached_grid_gives_the_same_warp():
    from hhrnet_rt.runtime.warp_torch import sampling_grid

    image = _images()["blocky"]
    _, affine = resize_align(image, 256)
    frame = torch.from_numpy(image)
    grid = sampling_grid(affine.forward, image.shape[:2], affine.size, "cpu")
    assert tuple(grid.shape) == (1, affine.size[1], affine.size[0], 2)
    np.testing.assert_array_equal(
        warp_affine_torch(frame, affine.forward, affine.size, grid=grid).numpy(),
        warp_affine_torch(frame, affine.forward, affine.size).numpy(),
    )


@pytest.mark.gpu
def test_backend_defaults_to_fp32_and_resolves_the_device_index(tiny_graph):
    backend = TorchCudaBackend(tiny_graph, device="cuda", cuda_graphs=False)
    assert backend.precision == "fp32" and backend.device.startswith("cuda:")
    assert torch.backends.cudnn.allow_tf32 is False  # fp32 means IEEE fp32, not TF32
    x = np.random.default_rng(0).standard_normal((1, 3, 128, 192)).astype(np.float32)
    with torch.inference_mode():
        ref_h, _ = (t.numpy() for t in tiny_graph(torch.from_numpy(x)))
    # fp32 on cuDNN vs the CPU: different kernels and summation orders, no TF32.
    assert np.abs(backend.run(x)[0] - ref_h).max() < 1e-4
