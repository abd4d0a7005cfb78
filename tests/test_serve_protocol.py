"""The serving API without Ray: image headers and limits, the request handler's answers, the poses body,
and that nothing but ``hhrt serve`` needs Ray."""

from __future__ import annotations

import asyncio
import json
import struct
import subprocess
import sys
import zlib

import numpy as np
import pytest

from hhrnet_rt.poses import KEYPOINTS_SCHEMA, Poses
from hhrnet_rt.serve import protocol
from hhrnet_rt.serve.handler import RequestHandler, ServeSettings
from hhrnet_rt.serve.protocol import RequestRejected

TOKEN = "s3cret-token"


def _png_claiming(width: int, height: int) -> bytes:
    """A PNG signature and IHDR that claim a size, with no pixel data (what a decompression bomb starts with)."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    chunk = struct.pack(">I", len(ihdr)) + b"IHDR" + ihdr + struct.pack(">I", zlib.crc32(b"IHDR" + ihdr))
    return protocol._PNG_MAGIC + chunk


def _image(h=48, w=64) -> np.ndarray:
    return np.random.default_rng(1).integers(0, 256, (h, w, 3), np.uint8)


@pytest.mark.parametrize("fmt", ["png", "jpeg"])
def test_image_size_reads_the_header(fmt):
    data = protocol.encode_image(_image(37, 53), fmt)
    assert protocol.image_size(data) == (fmt, 53, 37)


def test_png_is_lossless_and_decodes_to_the_same_pixels():
    image = _image()
    assert np.array_equal(protocol.decode_image(protocol.encode_image(image, "png")), image)


@pytest.mark.parametrize(
    ("data", "status", "words"),
    [
        (b"hello, world", 415, "not a JPEG or PNG"),
        (_png_claiming(50_000, 50_000), 413, "50000x50000"),
        (_png_claiming(0, 10), 400, "empty"),
        (_png_claiming(64, 48) + b"garbage", 400, "could not be decoded"),
        (b"\xff\xd8\xff\xe0\x00\x10JFIF", 400, "ends before its frame header"),
    ],
    ids=["text", "bomb-header", "zero-width", "corrupt-png", "jpeg-no-frame"],
)
def test_bad_images_are_refused_with_a_status_and_reason(data, status, words):
    with pytest.raises(RequestRejected) as caught:
        protocol.decode_image(data)
    assert caught.value.status == status
    assert words in str(caught.value)


def test_poses_body_round_trip_keeps_the_records():
    rng = np.random.default_rng(0)
    keypoints = rng.uniform(0, 600, (3, 17, 3)).astype(np.float32)
    keypoints[..., 2] = rng.uniform(0, 1, (3, 17))
    keypoints[1, 4, 0] = np.nan  # written as null, read back as NaN
    poses = Poses(keypoints=keypoints, scores=rng.uniform(0, 1, 3).astype(np.float32))
    body = protocol.poses_body(poses, 640, 480)
    record = json.loads(body)
    assert record["schema"] == KEYPOINTS_SCHEMA and (record["width"], record["height"]) == (640, 480)
    back = protocol.poses_from_body(body)
    # The records are rounded once; rounding the float32 values read back again changes nothing.
    assert back.to_records() == poses.to_records() == record["people"]
    assert np.isnan(back.keypoints[1, 4, 0])
    assert len(protocol.poses_from_body(protocol.poses_body(Poses.empty(17), 1, 1))) == 0


# --- the handler, driven directly (no HTTP, no Ray) ---------------------------------------------------


class FakePredict:
    """Stands in for the batched model call: one person at the image's centre; counts its calls."""

    def __init__(self):
        self.calls = 0

    async def __call__(self, image):
        self.calls += 1
        h, w = image.shape[:2]
        kp = np.zeros((1, 17, 3), np.float32)
        kp[0, :, :2] = (w / 2, h / 2)
        kp[0, :, 2] = 0.5
        return Poses(keypoints=kp, scores=np.array([0.5], np.float32))


def _answer(handler, method, path, body=b"", headers=None):
    headers = {k.lower(): v for k, v in (headers or {}).items()}

    async def stream():
        for start in range(0, len(body), 1000):  # chunks, as a server hands them over
            yield body[start : start + 1000]

    answer = asyncio.run(handler.answer(method, path, headers, stream))
    return answer.status, json.loads(answer.body), dict(answer.headers or {})


@pytest.fixture
def handler():
    predict = FakePredict()
    h = RequestHandler(ServeSettings(token=TOKEN, max_bytes=50_000), predict, {"model": {"backend": "fake"}})
    h.predict = predict
    return h


AUTH = {"Authorization": f"Bearer {TOKEN}"}


def test_poses_answer_is_the_image_json_record(handler):
    status, record, _ = _answer(handler, "POST", "/v1/poses", protocol.encode_image(_image(), "png"), AUTH)
    assert status == 200
    assert set(record) == {"schema", "width", "height", "people"}
    assert (record["width"], record["height"]) == (64, 48)
    assert record["people"][0]["keypoints"][0] == [32.0, 24.0, 0.5]


@pytest.mark.parametrize(
    ("method", "path", "headers", "body", "status", "words"),
    [
        ("POST", "/v1/poses", {}, b"x", 401, "no token"),
        ("POST", "/v1/poses", {"Authorization": "Bearer nope"}, b"x", 401, "a wrong token"),
        ("POST", "/v1/poses", {"Authorization": TOKEN}, b"x", 401, "Bearer"),  # scheme missing
        ("GET", "/v1/info", {}, b"", 401, "token"),
        ("GET", "/v1/poses", AUTH, b"", 405, "takes POST"),
        ("DELETE", "/v1/health", AUTH, b"", 405, "takes GET"),
        ("GET", "/v2/anything", AUTH, b"", 404, "no such endpoint"),
        ("POST", "/v1/poses", AUTH, b"", 400, "empty"),
        ("POST", "/v1/poses", AUTH, b"not an image", 415, "not a JPEG or PNG"),
        ("POST", "/v1/poses", AUTH, bytes(60_000), 413, "limit"),  # no Content-Length: counted as read
        ("POST", "/v1/poses", {**AUTH, "Content-Length": "999999999"}, b"x", 413, "999999999 bytes"),
        ("POST", "/v1/poses", {**AUTH, "Content-Length": "12abc"}, b"x", 400, "Content-Length"),
    ],
    ids=[
        "no-token",
        "wrong-token",
        "no-scheme",
        "info-no-token",
        "poses-get",
        "health-delete",
        "no-endpoint",
        "empty",
        "not-an-image",
        "too-large-streamed",
        "too-large-declared",
        "bad-length",
    ],
)
def test_bad_requests_get_a_4xx_and_a_message(handler, method, path, headers, body, status, words):
    got, record, extra = _answer(handler, method, path, body, headers)
    assert got == status
    assert words in record["error"]
    assert handler.predict.calls == 0  # refused before any model work
    if status == 405:
        assert extra["Allow"] in ("GET", "POST")


def test_health_needs_no_token_and_info_hides_the_token(handler):
    assert _answer(handler, "GET", "/v1/health")[:2] == (200, {"status": "ok"})
    status, info, _ = _answer(handler, "GET", "/v1/info", headers=AUTH)
    assert status == 200 and info["model"] == {"backend": "fake"}
    assert info["serve"]["token"] is True and TOKEN not in json.dumps(info)
    assert "hhrnet_rt" in info["versions"]


def test_a_failing_model_gives_500_without_a_traceback(handler):
    async def broken(image):
        raise RuntimeError("secret internal detail")

    h = RequestHandler(ServeSettings(), broken, {})
    status, record, _ = _answer(h, "POST", "/v1/poses", protocol.encode_image(_image(), "png"))
    assert status == 500
    assert "RuntimeError" in record["error"]
    assert "secret internal detail" not in record["error"] and "Traceback" not in record["error"]


# --- Ray stays optional ---------------------------------------------------------------------------------


def test_import_hhrnet_rt_serve_does_not_import_ray():
    code = "import sys, hhrnet_rt, hhrnet_rt.serve, hhrnet_rt.cli; print('ray' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "False"


def test_serve_without_ray_says_how_to_install_it():
    # sys.modules["ray"] = None makes "import ray" fail as if Ray were not installed.
    code = (
        "import sys; sys.modules['ray'] = None; sys.argv = ['hhrt', 'serve']\n"
        "from hhrnet_rt.cli import main; main()"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 4, out.stderr
    assert 'pip install -e ".[ray]"' in out.stderr
    assert "Traceback" not in out.stderr
