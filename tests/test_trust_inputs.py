"""Inputs, round two (issue 19): images whose network input would be out of bounds, refused before any work
for the library, ``hhrt image`` and the server alike.

Each test failed on the code before the issue's fixes (the issue's item number is in its docstring).
"""

from __future__ import annotations

import asyncio
import json

import cv2
import numpy as np
import pytest
from typer.testing import CliRunner

from hhrnet_rt.cli import app
from hhrnet_rt.cli.app import EXIT_INPUT
from hhrnet_rt.core.errors import ImageShapeError
from hhrnet_rt.runtime.preprocess import DEFAULT_MAX_ASPECT, check_aspect
from hhrnet_rt.serve.handler import RequestHandler, ServeSettings

runner = CliRunner()
pytestmark = pytest.mark.usefixtures("one_torch_thread")


# -- item 3: the aspect-ratio bomb ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("hw", "ok"),
    [((512, 2048), True), ((2048, 512), True), ((480, 640), True), ((100, 401), False), ((1, 250), False),
     ((250, 1), False), ((1, 1), True)],
)  # fmt: skip
def test_the_network_input_is_bounded_by_the_aspect_ratio(hw, ok):
    """Item 3: a 1x250 PNG (233 bytes) passed every check and became a 512x128000 input (3.3 GB in a
    replica); the bound is area <= 4 x input_size², i.e. aspect ratios up to 4:1."""
    if ok:
        check_aspect(hw, 512)
    else:
        with pytest.raises(ImageShapeError, match=r"aspect ratio .*the bound is 4:1"):
            check_aspect(hw, 512)
    check_aspect((1, 250), 512, max_aspect=512.0)  # the option raises it


def test_the_estimator_refuses_a_strip_at_once_and_takes_it_with_a_raised_bound(tiny_estimator, monkeypatch):
    """Item 3 (library): ``predict`` on a 1x500 strip took 50 s and 6.9 GB; now it is refused before the warp."""
    strip = np.full((2, 500, 3), 120, np.uint8)
    estimator = tiny_estimator()
    assert estimator.max_aspect == DEFAULT_MAX_ASPECT
    with pytest.raises(ImageShapeError, match="max_aspect=250"):
        estimator.predict(strip)
    wide = np.full((64, 320, 3), 120, np.uint8)  # 5:1 at input 128: a 640x128 input
    with pytest.raises(ImageShapeError):
        estimator.predict(wide)
    monkeypatch.setattr(estimator, "max_aspect", 5.0)  # as max_aspect=5 builds it (not built twice here)
    assert len(estimator.predict(wide)) >= 0


def test_hhrt_image_says_the_ratio_and_the_bound(tmp_path, tiny):
    """Item 3 (CLI): exit 2 with the ratio, the bound and the option; no traceback, no output written."""
    cv2.imwrite(str(tmp_path / "strip.png"), np.full((1, 250, 3), 200, np.uint8))
    out = tmp_path / "out"
    result = runner.invoke(app, ["image", str(tmp_path / "strip.png"), *tiny, "--out", str(out)])
    assert result.exit_code == EXIT_INPUT, result.output
    assert "Traceback" not in result.output
    assert "250:1" in result.output and "4:1" in result.output and "--max-aspect" in result.output
    assert not out.exists() or list(out.iterdir()) == []


def test_the_server_answers_413_before_batching():
    """Item 3 (serve): the handler refuses the image with 413 before it reaches the batch (where it would
    have failed the other requests batched with it)."""
    predicted = []

    async def predict(image):
        predicted.append(image.shape)
        raise AssertionError("the model must not run")

    def check_shape(hw):
        check_aspect(hw, 512)

    handler = RequestHandler(ServeSettings(), predict, {}, check_shape)
    ok, png = cv2.imencode(".png", np.full((1, 250, 3), 200, np.uint8))
    assert ok

    async def body():
        yield png.tobytes()

    answer = asyncio.run(handler.answer("POST", "/v1/poses", {}, body))
    assert answer.status == 413, answer.body
    assert "aspect ratio" in json.loads(answer.body)["error"] and predicted == []


# -- item 18: a damaged checkpoint ---------------------------------------------------------------------------


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_a_checkpoint_with_nan_or_inf_weights_is_refused_on_load(tmp_path, tiny_weights, bad):
    """Item 18: one NaN weight made every frame's answer "no people", with exit 0; now loading it fails
    (exit 3) and names the tensor."""
    from hhrnet_rt.cli.app import EXIT_WEIGHTS

    arrays = dict(np.load(tiny_weights))
    name = next(k for k, v in arrays.items() if v.dtype.kind == "f" and k.endswith("weight"))
    arrays[name] = arrays[name].copy()
    arrays[name].flat[0] = bad
    damaged = tmp_path / "damaged.npz"
    np.savez(damaged, **arrays)
    image = tmp_path / "people.png"
    cv2.imwrite(str(image), np.full((64, 64, 3), 90, np.uint8))
    args = ["image", str(image), "--weights", str(damaged), "--backend", "torch", "--input-size", "64"]
    result = runner.invoke(app, [*args, "--out", str(tmp_path / "out")])
    assert result.exit_code == EXIT_WEIGHTS, result.output
    assert "NaN or infinite" in result.output and name in result.output


# -- item 2: the JPEG header walk ----------------------------------------------------------------------------


def _jpeg(h: int, w: int, **params) -> bytes:
    y, x = np.mgrid[0:h, 0:w]
    image = np.dstack([(x * 255 // max(w - 1, 1)), (y * 255 // max(h - 1, 1)), (x + y) % 256]).astype(
        np.uint8
    )
    flags = [cv2.IMWRITE_JPEG_PROGRESSIVE, 1] if params.get("progressive") else []
    ok, data = cv2.imencode(".jpg", image, flags)
    assert ok
    return data.tobytes()


def _segments(data: bytes) -> list[int]:
    """Offsets of the marker segments before the first scan, as an honest encoder wrote them."""
    pos, out = 2, []
    while data[pos + 1] != 0xDA:
        out.append(pos)
        pos += 2 + int.from_bytes(data[pos + 2 : pos + 4], "big")
    return [*out, pos]


FAKE_SOF_1X1 = bytes.fromhex("ffc0000b080001000101011100")


def test_a_header_that_says_1x1_cannot_hide_a_larger_image():
    """Item 2: the server's own header walk took ``FF 00`` (stuffed data, skipped by libjpeg) for a
    segment with a length, jumped over the real header and found a 1x1 frame planted after it; the
    decoder then made the real (here 256x256, in the field 16000x16000) image. Now the walk is libjpeg's."""
    from hhrnet_rt.serve import protocol

    body = _jpeg(256, 256)[2:]  # everything after SOI
    pad = 0
    while 0xFF in (len(body) + pad + 2).to_bytes(2, "big"):
        pad += 1
    length = (len(body) + pad + 2).to_bytes(2, "big")
    bomb = b"\xff\xd8\xff\x00" + length + body + bytes(pad) + FAKE_SOF_1X1
    assert cv2.imdecode(np.frombuffer(bomb, np.uint8), cv2.IMREAD_COLOR).shape == (256, 256, 3)
    assert protocol.image_size(bomb) == ("jpeg", 256, 256)
    with pytest.raises(protocol.RequestRejected) as refused:
        protocol.decode_image(bomb, max_pixels=1000)
    assert refused.value.status == 413


def test_stray_bytes_before_a_marker_do_not_refuse_a_valid_jpeg():
    """Item 2: stray bytes before a marker (libjpeg skips them with a warning) made the old walk answer
    400 to a JPEG every decoder reads."""
    from hhrnet_rt.serve import protocol

    data = _jpeg(40, 72)
    sof = next(at for at in _segments(data) if data[at + 1] == 0xC0)
    odd = data[:sof] + b"\x00\x17" + data[sof:]
    assert cv2.imdecode(np.frombuffer(odd, np.uint8), cv2.IMREAD_COLOR).shape == (40, 72, 3)
    assert protocol.image_size(odd) == ("jpeg", 72, 40)


def test_the_header_walk_agrees_with_opencvs_decoder_on_mutated_files():
    """Item 2: a fuzz of what libjpeg tolerates (stray bytes, fill bytes, stuffed pairs, markers without
    parameters, comments holding fake frames) at every segment boundary: whenever OpenCV decodes the
    file, the walk says exactly the decoded size; it never says a smaller one."""
    from hhrnet_rt.core.jpeg import JpegHeaderError, jpeg_header

    rng = np.random.default_rng(19)
    inserts = [b"\x00", b"\x12\x34\x56", b"\xff", b"\xff\xff\xff", b"\xff\x00", b"\xff\xd0", b"\xff\xd7",
               b"\xff\x01", b"\xff\xfe\x00\x0f" + FAKE_SOF_1X1, b"\xff\xe1\x00\x04\xff\xc0", b"\xff\xd8",
               b"\xff\xd9", FAKE_SOF_1X1, b"\x00\x0d" + FAKE_SOF_1X1]  # fmt: skip
    agreed = decoded = 0
    for base in (_jpeg(33, 47), _jpeg(64, 24, progressive=True)):
        cuts = _segments(base)
        for _ in range(150):
            data = base
            for at in sorted(rng.choice(cuts, size=rng.integers(1, 3), replace=False), reverse=True):
                data = data[:at] + inserts[rng.integers(len(inserts))] + data[at:]
            image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
            try:
                width, height, _ = jpeg_header(data)
            except JpegHeaderError:
                continue
            if image is not None:
                decoded += 1
                agreed += (height, width) == image.shape[:2]
    assert decoded > 50, "the fuzz must produce files OpenCV decodes"
    assert agreed == decoded


# -- item 15: a truncated JPEG -------------------------------------------------------------------------------


def test_a_jpeg_cut_short_is_refused_not_processed_half_grey(tmp_path, tiny):
    """Item 15: ``hhrt image`` processed a truncated JPEG (OpenCV fills the rest with grey, silently);
    the server refused the same file. Both now say it is cut short."""
    from hhrnet_rt.serve import protocol

    data = _jpeg(128, 128)
    cut = data[: len(data) * 2 // 3]
    (tmp_path / "cut.jpg").write_bytes(cut)
    assert cv2.imread(str(tmp_path / "cut.jpg")) is not None  # the trap: a whole-looking picture
    (tmp_path / "whole.jpg").write_bytes(data)
    result = runner.invoke(app, ["image", str(tmp_path / "cut.jpg"), *tiny, "--out", str(tmp_path / "out")])
    assert result.exit_code == EXIT_INPUT, result.output
    assert "cut.jpg: the JPEG image is cut short" in result.output
    result = runner.invoke(app, ["image", str(tmp_path / "whole.jpg"), *tiny, "--out", str(tmp_path / "out")])
    assert result.exit_code == 0, result.output
    with pytest.raises(protocol.RequestRejected, match="cut short"):
        protocol.decode_image(cut)


# -- item 12: int8 calibration with photos of different sizes ------------------------------------------------


def test_int8_calibration_takes_photos_of_different_sizes(tiny_onnx_build, tmp_path):
    """Item 12: ``build-engine --precision int8`` (CPU and TensorRT targets) crashed with ORT's
    "inhomogeneous shape" ValueError on any folder of photos of different sizes with the default
    percentile method: ORT stacks the values of one collect_data call. Each call now holds one shape."""
    from hhrnet_rt.export.build import preprocess_bgr
    from hhrnet_rt.export.quantize import calibrate_ranges

    rng = np.random.default_rng(12)
    sizes = [(48, 64), (64, 48), (64, 64), (64, 64), (40, 90), (48, 64)]  # (h, w): several input shapes
    inputs = [preprocess_bgr(rng.integers(0, 256, (h, w, 3), np.uint8), 64) for h, w in sizes]
    assert len({x.shape for x in inputs}) >= 3
    cache = tmp_path / "ranges.json"
    count = calibrate_ranges(
        tiny_onnx_build.fp32_onnx_path, cache, iter(inputs), method="percentile", op_types=("Conv",)
    )
    assert count == len(inputs)
    ranges = json.loads(cache.read_text())
    assert ranges and all(np.isfinite(np.asarray(v, float)).all() for v in _range_values(ranges))


def _range_values(node):
    if isinstance(node, dict):
        for value in node.values():
            yield from _range_values(value)
    elif isinstance(node, list) and node and not isinstance(node[0], (dict, list)):
        yield node
    elif isinstance(node, list):
        for value in node:
            yield from _range_values(value)


# -- item 11: a batch that cannot fit -------------------------------------------------------------------------


def test_bench_refuses_a_batch_that_cannot_fit_before_loading_anything():
    """Item 11: ``hhrt bench --batch 100000`` ended in numpy's MemoryError traceback."""
    result = runner.invoke(app, ["bench", "--backend", "torch", "--batch", "100000", "--frames", "1"])
    assert result.exit_code == EXIT_INPUT, result.output
    assert "Traceback" not in result.output
    assert "--batch 100000" in result.output and "GiB" in result.output and "try" in result.output
