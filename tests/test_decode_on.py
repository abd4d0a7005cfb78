"""``PoseEstimator(decode_on=...)``: device and host decode give the same poses; what crosses to the host."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from hhrnet_rt.core.errors import InputError
from hhrnet_rt.core.tag_layout import planar
from hhrnet_rt.runtime.estimator import Maps, PoseEstimator, choose_decode_on

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def estimators(tiny_estimator):
    def get(decode_on, *, size=128, flip=True, scales=(1.0,), backend="torch"):
        return tiny_estimator(backend, size, flip=flip, scales=scales, decode_on=decode_on)

    return get


def _assert_same_poses(got, expected):
    # Exact: both decoders run the official algorithm on the same float32 maps (the device decode
    # computes the same values from the same maps; see hhrnet_rt/decode/device.py).
    assert len(got) == len(expected) > 0
    np.testing.assert_array_equal(got.keypoints, expected.keypoints)
    np.testing.assert_array_equal(got.scores, expected.scores)


# -- the rule and its checks -------------------------------------------------------------------------


def test_auto_decodes_where_the_maps_are():
    assert choose_decode_on("auto", "cuda:0") == "device"
    assert choose_decode_on("auto", "cuda") == "device"
    assert choose_decode_on("auto", "cpu") == "host"
    for explicit in ("device", "host"):
        assert choose_decode_on(explicit, "cpu") == explicit
        assert choose_decode_on(explicit, "cuda:1") == explicit


@pytest.mark.parametrize("bad", ["GPU0", "Device", "", None, 1])
def test_bad_decode_on_is_an_input_error(bad, tiny_weights):
    with pytest.raises(InputError, match="decode_on must be 'auto', 'device' or 'host'"):
        choose_decode_on(bad, "cpu")
    with pytest.raises(InputError, match="decode_on"):
        PoseEstimator(tiny_weights, input_size=64, backend="torch", decode_on=bad)


def test_describe_reports_the_resolved_choice(estimators):
    assert estimators("auto").describe()["decode_on"] == "host"  # torch on the CPU
    assert estimators("device").describe()["decode_on"] == "device"


# -- device decode == host decode ------------------------------------------------------------------


@pytest.mark.parametrize("size", [128, 256])
@pytest.mark.parametrize("flip", [True, False], ids=["flip", "noflip"])
def test_device_decode_gives_the_host_poses_on_the_golden_pipeline_case(estimators, golden_bgr, size, flip):
    host, device = estimators("host", size=size, flip=flip), estimators("device", size=size, flip=flip)
    prepared = device.prepare(golden_bgr)
    maps = device.infer(prepared)
    assert maps.on_device and isinstance(maps.heatmaps, torch.Tensor)
    assert maps.heatmaps.device.type == "cpu" and maps.tags.shape[-1] == (2 if flip else 1)
    _assert_same_poses(device.decode(maps, prepared), host.predict(golden_bgr))


def test_device_decode_gives_the_host_poses_on_the_multiscale_case(estimators, golden_bgr, golden_npz):
    scales = (0.5, 1.0, 2.0)
    host, device = estimators("host", scales=scales), estimators("device", scales=scales)
    prepared = device.prepare(golden_bgr)
    maps = device.infer(prepared)
    assert maps.on_device
    # The aggregation ran in torch next to the network and left the maps there; they are the golden ones.
    m = golden_npz("multiscale_case")
    np.testing.assert_allclose(maps.heatmaps.numpy(), m["final_heatmaps"][0], rtol=0, atol=1e-5)
    _assert_same_poses(device.decode(maps, prepared), host.predict(golden_bgr))


def test_device_decode_with_onnxruntime_wraps_its_arrays(estimators, golden_bgr):
    # ONNX Runtime returns numpy arrays: "device" wraps them as CPU tensors (torch.from_numpy, no copy).
    host, device = (estimators(d, flip=False, backend="onnxruntime") for d in ("host", "device"))
    prepared = device.prepare(golden_bgr)
    maps = device.infer(prepared)
    assert maps.on_device and maps.heatmaps.device.type == "cpu"
    _assert_same_poses(device.decode(maps, prepared), host.predict(golden_bgr))


# -- what crosses to the host ----------------------------------------------------------------------


def test_host_decode_on_a_cpu_backend_copies_nothing(estimators, golden_bgr):
    est = estimators("host")
    prepared = est.prepare(golden_bgr)
    maps = est.infer(prepared)
    assert isinstance(maps.heatmaps, np.ndarray) and maps.heatmaps.flags.c_contiguous
    assert np.shares_memory(planar(maps.tags), maps.tags)  # the decoder reads the tag planes as they are
    est.decode(maps, prepared)
    assert maps.d2h_bytes == 0


def test_device_decode_reports_what_parse_on_device_copied(estimators, golden_bgr):
    from hhrnet_rt.decode.device import parse_on_device

    est = estimators("device")
    prepared = est.prepare(golden_bgr)
    maps = est.infer(prepared)
    assert maps.d2h_bytes == 0  # nothing yet: the maps are still where the network left them
    est.decode(maps, prepared)
    direct = parse_on_device(maps.heatmaps, maps.tags)
    assert maps.d2h_bytes == maps.decode_d2h_bytes == direct.d2h_bytes > 0
    est.decode(maps, prepared)  # decoding again does not count twice
    assert maps.d2h_bytes == direct.d2h_bytes
    full_maps = maps.heatmaps.numel() * 4 + maps.tags.numel() * 4
    assert maps.d2h_bytes < full_maps / 10


def test_maps_d2h_bytes_adds_infer_and_decode():
    maps = Maps(np.zeros((1, 2, 2), np.float32), np.zeros((1, 2, 2, 1), np.float32), infer_d2h_bytes=48)
    maps.decode_d2h_bytes = 7
    assert maps.d2h_bytes == 55 and not maps.on_device


def test_channels_last_maps_reach_the_host_decoder_contiguous(tiny_weights, golden_bgr, monkeypatch):
    """The CUDA backend's default NHWC layout, reproduced on the CPU: strided maps out of the network,
    made contiguous where they are (the device), so the host decoder gets a C-contiguous array and makes
    no full-map copy of its own (np.ascontiguousarray in parse is then a no-op)."""
    from hhrnet_rt.runtime.backends.torch_backend import TorchBackend

    est = PoseEstimator(tiny_weights, input_size=128, backend="torch", decode_on="host")
    reference = est.predict(golden_bgr)
    est.backend = TorchBackend(est.graph, channels_last=True)
    prepared = est.prepare(golden_bgr)
    raw_heatmaps, _ = est.backend.run_torch(torch.from_numpy(prepared.inputs[0][1]))
    # What `.cpu().numpy()` of these gives: a strided heatmap array the decoder would transpose on the
    # host (the tags are stacked into a new tensor, contiguous here, whatever the layout).
    assert not raw_heatmaps[0].is_contiguous() and raw_heatmaps[0].stride()[0] == 1
    assert not raw_heatmaps[0].numpy().flags.c_contiguous

    seen = []
    real_parse = est._parse

    def recording_parse(heatmaps, tags, **kwargs):
        seen.append((heatmaps, tags))
        return real_parse(heatmaps, tags, **kwargs)

    monkeypatch.setattr(est, "_parse", recording_parse)
    maps = est.infer(prepared)
    poses = est.decode(maps, prepared)
    ((heatmaps, tags),) = seen
    assert heatmaps.flags.c_contiguous and np.shares_memory(planar(tags), tags)
    assert heatmaps is maps.heatmaps and tags is maps.tags  # handed over as made, no copy in between
    assert maps.d2h_bytes == 0  # the CPU is the device here: nothing crossed
    # NHWC convolutions sum in another order: measured here, maps within 1.6e-6 of the NCHW run, the same
    # 43 people, keypoints within 6.4e-7 px. Asserted with headroom: same count, within 1e-3 px.
    assert len(poses) == len(reference) > 0
    np.testing.assert_allclose(poses.keypoints, reference.keypoints, rtol=0, atol=1e-3)


# -- warm-up ---------------------------------------------------------------------------------------


def test_warmup_runs_every_stage_once_on_the_cpu_at_the_given_size(estimators, monkeypatch):
    est = estimators("host")
    calls = []
    for stage in ("prepare", "infer", "decode"):
        real = getattr(est, stage)

        def record(*args, _stage=stage, _real=real):
            if _stage == "prepare":
                calls.append((_stage, args[0].shape))
            else:
                calls.append((_stage, None))
            return _real(*args)

        monkeypatch.setattr(est, stage, record)
    est.warmup((90, 200))
    assert calls == [("prepare", (90, 200, 3)), ("infer", None), ("decode", None)]


@pytest.mark.parametrize("bad", [(0, 640), (480,), (480.5, 640), "480x640", (-1, 2)])
def test_warmup_refuses_a_bad_size(estimators, bad):
    with pytest.raises(InputError, match="image_hw"):
        estimators("host").warmup(bad)


# -- pipeline summary and CLI ----------------------------------------------------------------------


class _FakeMaps:
    def __init__(self, nbytes):
        self.d2h_bytes = nbytes


class _TransferringEstimator:
    """Reports 1000 bytes device->host for even frames, 3000 for odd ones."""

    def __init__(self):
        self.n = 0

    def prepare(self, image):
        return image

    def infer(self, prepared):
        self.n += 1
        return _FakeMaps(1000 if self.n % 2 else 3000)

    def decode(self, maps, prepared):
        from hhrnet_rt.poses import Poses

        return Poses(keypoints=np.zeros((0, 17, 3), np.float32), scores=np.zeros(0, np.float32))


@pytest.mark.parametrize("threaded", [True, False])
def test_pipeline_summary_reports_bytes_per_frame(threaded):
    from rich.console import Console

    from hhrnet_rt.video import ArraySource, run_pipeline
    from hhrnet_rt.video.report import summary_table

    frames = [np.zeros((32, 32, 3), np.uint8)] * 4
    result = run_pipeline(ArraySource(frames), _TransferringEstimator(), (), draw=False, threaded=threaded)
    assert result.d2h.count == 4 and result.d2h.total_bytes == 8000
    assert result.d2h.mean_bytes == 2000 and result.d2h.max_bytes == 3000
    console = Console(record=True, width=200)
    console.print(summary_table(result))
    text = console.export_text()
    assert "device→host per frame" in text and "2.00 KB (max 3.00 KB)" in text


def test_cli_decode_on_option(golden_dir, tmp_path):
    import json

    from hhrnet_rt.cli import app

    runner = CliRunner()
    out = tmp_path / "bench.json"
    args = ["bench", "--backend", "torch", "--device", "cpu", "--weights", str(golden_dir / "tiny_model.npz"),
            "--input-size", "64", "--frames", "1", "--warmup", "0", "--no-e2e", "--json", str(out)]  # fmt: skip
    result = runner.invoke(app, [*args, "--decode-on", "device"])
    assert result.exit_code == 0, result.output
    report = json.loads(out.read_text())
    assert report["transfer"]["decode_on"] == "device" and report["transfer"]["frame_hw"] == [360, 640]
    assert report["transfer"]["d2h_bytes_per_frame"] > 0 and "device→host" in result.stdout
    result = runner.invoke(app, [*args, "--decode-on", "host", "--overwrite"])  # replaces the first report
    assert result.exit_code == 0, result.output
    assert json.loads(out.read_text())["transfer"] == {
        "decode_on": "host", "d2h_bytes_per_frame": 0, "frame_hw": [360, 640]
    }  # fmt: skip
    bad = runner.invoke(app, [*args, "--decode-on", "gpu"])
    assert bad.exit_code == 2 and "Traceback" not in bad.output


def check_host_decode_copies_the_maps_once(host, image):
    """Host decode of CUDA maps: one copy of each map, contiguous. Also run under device semantics on the
    CPU (tests/test_device_semantics.py)."""
    prepared = host.prepare(image)
    maps = host.infer(prepared)
    host.decode(maps, prepared)
    k, h, w = maps.heatmaps.shape
    # Made contiguous on the device (a channels_last graph's outputs are strided), then copied once. The
    # tags are the per-pixel (K, H, W, L) view of planar tags: strided by design, their planes contiguous.
    assert maps.heatmaps.flags.c_contiguous and np.moveaxis(maps.tags, -1, -3).flags.c_contiguous
    assert maps.d2h_bytes == 4 * k * h * w * (1 + 2)  # heatmaps + 2-D tags, float32, nothing else


@pytest.mark.gpu
def test_host_decode_on_cuda_copies_the_maps_once(tiny_weights, golden_bgr):
    host = PoseEstimator(tiny_weights, input_size=128, backend="torch", device="cuda", decode_on="host")
    assert PoseEstimator(tiny_weights, input_size=128, backend="torch", device="cuda").decode_on == "device"
    check_host_decode_copies_the_maps_once(host, golden_bgr)


@pytest.mark.parametrize("command", ["video", "webcam"])
def test_video_and_webcam_warm_up_at_the_frame_size_before_the_run(
    golden_dir, tmp_path, monkeypatch, command
):
    from video_helpers import make_video

    import hhrnet_rt.video as video
    from hhrnet_rt.cli import app

    events = []
    monkeypatch.setattr(PoseEstimator, "warmup", lambda self, hw: events.append(("warmup", tuple(hw))))
    real_run = video.run_pipeline

    def run_pipeline(*args, **kwargs):
        events.append(("run", None))
        return real_run(*args, **kwargs)

    monkeypatch.setattr(video, "run_pipeline", run_pipeline)
    clip = make_video(tmp_path / "clip.mp4", 2, width=160, height=120)
    model = ["--weights", str(golden_dir / "tiny_model.npz"), "--backend", "torch", "--input-size", "64"]
    if command == "video":
        args = ["video", str(clip), "--out", str(tmp_path / "o.mp4")]
    else:
        args = ["webcam", "--camera", str(clip), "--no-show", "--json", str(tmp_path / "o.jsonl")]
    result = CliRunner().invoke(app, [*args, *model, "--decode-on", "host"])
    assert result.exit_code == 0, result.output
    assert events == [("warmup", (120, 160)), ("run", None)]
