"""The Open Inference Protocol v2 and the upload page without Ray: paths, request parsing (JSON and the
binary tensor extension), what a request cannot make the server do, the answer's layout, and the /v1
rules (token, body limit) on the /v2 routes. tests/test_serve_interop.py runs the official client against
a real server."""

from __future__ import annotations

import asyncio
import base64
import json
import struct

import numpy as np
import pytest

from hhrnet_rt.core.skeleton import COCO_SKELETON, PERSON_COLORS_BGR
from hhrnet_rt.poses import Poses
from hhrnet_rt.serve import oip, protocol
from hhrnet_rt.serve.handler import RequestHandler, ServeSettings
from hhrnet_rt.serve.protocol import RequestRejected

TOKEN = "s3cret"
AUTH = {"authorization": f"Bearer {TOKEN}"}
RNG = np.random.default_rng(3)
RGB = RNG.integers(0, 256, (6, 5, 3), np.uint8)


def _json(inputs, **extra) -> bytes:
    return json.dumps({"inputs": inputs, **extra}).encode()


def _binary(tensor: dict, raw: bytes, **extra) -> tuple[bytes, str]:
    """A body with one tensor in binary, as tritonclient sends it, and its header length."""
    header = json.dumps(
        {"inputs": [{**tensor, "parameters": {"binary_data_size": len(raw)}}], **extra}
    ).encode()
    return header + raw, str(len(header))


@pytest.mark.parametrize(
    ("path", "kind"),
    [("/v2", "server"), ("/v2/health/live", "live"), ("/v2/health/ready", "ready"), ("/v2/models/hhrnet", "model"),
     ("/v2/models/hhrnet/ready", "model_ready"), ("/v2/models/hhrnet/versions/1/infer", "infer")],
)  # fmt: skip
def test_routes(path, kind):
    assert oip.route(path).kind == kind
    assert oip.route(path).method == ("POST" if kind == "infer" else "GET")


@pytest.mark.parametrize("path", ["/v2/models/yolo/infer", "/v2/models/hhrnet/versions/2", "/v2/repository"])
def test_unknown_paths_models_and_versions_are_404(path):
    with pytest.raises(RequestRejected) as refused:
        oip.route(path)
    assert refused.value.status == 404


def test_pixels_arrive_as_rgb_and_leave_as_bgr_in_json_and_binary():
    tensor = {"name": "image_rgb", "datatype": "UINT8", "shape": [6, 5, 3]}
    nested = oip.parse_infer(_json([{**tensor, "data": RGB.tolist()}]), None)
    flat = oip.parse_infer(_json([{**tensor, "data": RGB.ravel().tolist()}]), None)
    body, length = _binary({**tensor, "shape": [1, 6, 5, 3]}, RGB.tobytes())
    binary = oip.parse_infer(body, length)
    for request in (nested, flat, binary):
        np.testing.assert_array_equal(request.image_bgr, RGB[:, :, ::-1])


def test_an_image_file_arrives_in_base64_json_or_as_a_binary_bytes_element():
    png = protocol.encode_image(np.ascontiguousarray(RGB[:, :, ::-1]), "png")
    tensor = {"name": "image", "datatype": "BYTES", "shape": [1]}
    as_json = oip.parse_infer(_json([{**tensor, "data": [base64.b64encode(png).decode()]}]), None)
    body, length = _binary(tensor, struct.pack("<I", len(png)) + png)
    for request in (as_json, oip.parse_infer(body, length)):
        np.testing.assert_array_equal(request.image_bgr, RGB[:, :, ::-1])


U8 = {"name": "image_rgb", "datatype": "UINT8", "shape": [2, 2, 3]}
FILE = {"name": "image", "datatype": "BYTES", "shape": [1]}
GOOD_JSON = _json([{**U8, "data": [0] * 12}])
GOOD_BINARY = _binary(U8, bytes(12))


MALFORMED = [
    (b"{oops", None, 400, "not JSON"),
    (b"[1, 2]", None, 400, "JSON object"),
    (_json([]), None, 400, "exactly one input"),
    (_json([{**U8, "data": [0] * 12}, {**U8, "data": [0] * 12}]), None, 400, "exactly one input"),
    (_json([{**U8, "name": "pixels", "data": [0] * 12}]), None, 400, "unknown input 'pixels'"),
    (_json([{**U8, "datatype": "FP32", "data": [0] * 12}]), None, 400, "is UINT8"),
    (_json([{**U8, "shape": [2, 2, 4], "data": [0] * 16}]), None, 400, "[H, W, 3]"),
    (_json([{**U8, "shape": [2, -2, 3], "data": [0] * 12}]), None, 400, "list of sizes"),
    (_json([{**U8, "data": [0] * 11}]), None, 400, "needs 12 values, got 11"),
    (_json([{**U8, "data": [256] * 12}]), None, 400, "integers 0-255"),
    (_json([{**U8, "data": [0.5] * 12}]), None, 400, "integers 0-255"),
    (_json([{**U8, "data": ["7"] * 12}]), None, 400, "integers 0-255"),
    (_json([{**U8, "shape": [9000, 9000, 3], "data": []}]), None, 413, "pixels"),
    (_json([U8]), None, 400, "needs 'data'"),
    (_json([{**FILE, "data": ["%%% not base64"]}]), None, 400, "not base64"),
    (_json([{**FILE, "data": [base64.b64encode(b"hello").decode()]}]), None, 415, "not a JPEG or PNG"),
    (_json([{**FILE, "shape": [2], "data": ["", ""]}]), None, 400, "one image"),
    (
        _json([{**U8, "data": [0] * 12, "parameters": {"shared_memory_region": "r"}}]),
        None,
        400,
        "shared memory",
    ),
    (_json([{**U8, "data": [0] * 12}], outputs=[{"name": "heatmaps"}]), None, 400, "output 'heatmaps'"),
    (GOOD_BINARY[0], "99999", 400, "Inference-Header-Content-Length"),
    (GOOD_BINARY[0], "12abc", 400, "Inference-Header-Content-Length"),
    (GOOD_BINARY[0] + b"extra", GOOD_BINARY[1], 400, "binary_data_size"),
    (*_binary(FILE, struct.pack("<I", 99) + b"short"), 400, "shorter than"),
    (GOOD_JSON + b"tail", str(len(GOOD_JSON)), 400, "nothing else"),
    (b"[" * 100_000 + b"]" * 100_000, None, 400, "nests too deeply"),
    (_json([{**U8, "data": [0] * 12, "parameters": [1]}]), None, 400, "'parameters' must be a JSON object"),
    (_json([{**U8, "data": [0] * 12}], parameters="binary"), None, 400, "'parameters' must be a JSON object"),
    (_json([{**FILE, "data": ["a", "b"]}]), None, 400, "must hold one image"),
    (*_binary(FILE, (struct.pack("<I", 0)) * 1_000_000), 400, "got 2 elements"),  # refused at the second
]


@pytest.mark.parametrize(
    ("body", "length", "status", "words"), MALFORMED, ids=[case[3].replace(" ", "-") for case in MALFORMED]
)
def test_malformed_requests_are_refused_with_the_reason(body, length, status, words):
    with pytest.raises(RequestRejected) as refused:
        oip.parse_infer(body, length, max_pixels=1_000_000)
    assert refused.value.status == status and words in str(refused.value), str(refused.value)


def _poses() -> Poses:
    keypoints = np.random.default_rng(5).random((2, 17, 3)).astype(np.float32) * 100
    keypoints[1, 3, 0] = np.nan
    return Poses(keypoints=keypoints, scores=np.array([0.9, 0.4], np.float32))


def test_binary_answer_layout_and_json_answer_with_null_for_nan():
    poses, record = _poses(), b'{"people": []}'
    outputs = (("keypoints", True), ("scores", True), ("record", True))
    body, headers = oip.infer_response(
        oip.InferRequest("a", RGB, outputs), poses.keypoints, poses.scores, record
    )
    split = int(headers["Inference-Header-Content-Length"])
    header, raw = json.loads(body[:split]), body[split:]
    assert header["id"] == "a" and [o["name"] for o in header["outputs"]] == ["keypoints", "scores", "record"]
    sizes = [o["parameters"]["binary_data_size"] for o in header["outputs"]]
    assert sizes == [2 * 17 * 3 * 4, 2 * 4, 4 + len(record)] and sum(sizes) == len(raw)
    np.testing.assert_array_equal(np.frombuffer(raw[: sizes[0]], "<f4").reshape(2, 17, 3), poses.keypoints)
    assert raw[sizes[0] + sizes[1] :] == struct.pack("<I", len(record)) + record
    body, headers = oip.infer_response(oip.InferRequest(None, RGB, (("keypoints", False),)), poses.keypoints,
                                       poses.scores, record)  # fmt: skip
    answer = json.loads(body)  # strict JSON: no NaN token
    assert headers == {} and "id" not in answer and answer["outputs"][0]["data"][(17 + 3) * 3] is None


def test_without_outputs_named_all_come_back_binary_only_when_asked():
    parse = lambda extra: oip.parse_infer(_json([{**U8, "data": [0] * 12}], **extra), None).outputs  # noqa: E731
    assert parse({}) == (("keypoints", False), ("scores", False), ("record", False))
    assert parse({"parameters": {"binary_data_output": True}}) == tuple((n, True) for n in oip.OUTPUTS)


class FakePredict:
    calls = 0

    async def __call__(self, image):
        FakePredict.calls += 1
        return _poses()


def _answer(handler, method, path, body=b"", headers=None):
    async def stream():
        yield body

    return asyncio.run(handler.answer(method, path, dict(headers or {}), stream))


@pytest.fixture
def handler():
    FakePredict.calls = 0
    return RequestHandler(
        ServeSettings(token=TOKEN, max_bytes=5_000), FakePredict(), {"model": {"num_joints": 17}}
    )


def test_v2_routes_keep_the_v1_rules(handler):
    infer = "/v2/models/hhrnet/infer"
    body = _json([{**U8, "data": [0] * 12}])
    assert _answer(handler, "GET", "/v2/health/live").status == 200  # health: no token, like /v1/health
    assert _answer(handler, "GET", "/v2/health/ready").status == 200
    assert _answer(handler, "GET", "/v2/models/hhrnet").status == 401
    assert _answer(handler, "POST", infer, body).status == 401
    assert _answer(handler, "GET", infer, headers=AUTH).status == 405
    too_big = _json([{**U8, "data": [0] * 12}], id="x" * 6000)
    assert _answer(handler, "POST", infer, too_big, AUTH).status == 413  # the same body limit
    gzip = _answer(handler, "POST", infer, body, {**AUTH, "content-encoding": "gzip"})
    assert gzip.status == 415 and "uncompressed" in json.loads(gzip.body)["error"]
    assert FakePredict.calls == 0  # every refusal came before any model work
    answer = _answer(handler, "POST", infer, body, AUTH)
    assert answer.status == 200 and FakePredict.calls == 1
    outputs = {o["name"]: o for o in json.loads(answer.body)["outputs"]}
    assert json.loads(outputs["record"]["data"][0])["people"] == _poses().to_records()
    meta = json.loads(_answer(handler, "GET", "/v2/models/hhrnet", headers=AUTH).body)
    assert meta["outputs"][0] == {"name": "keypoints", "datatype": "FP32", "shape": [-1, 17, 3]}


def test_the_upload_page_is_self_contained_and_draws_with_the_packages_skeleton(handler):
    answer = _answer(handler, "GET", "/")  # no token needed: the page asks for it
    assert answer.status == 200 and answer.headers["Content-Type"].startswith("text/html")
    page = answer.body.decode()
    assert "http://" not in page and "https://" not in page and 'src="//' not in page  # nothing fetched
    config = json.loads(page.split('type="application/json">', 1)[1].split("</script>", 1)[0])
    assert config["skeleton"] == [list(edge) for edge in COCO_SKELETON] and config["token"] is True
    b, g, r = PERSON_COLORS_BGR[0]
    assert config["colors"][0] == f"#{r:02x}{g:02x}{b:02x}" and config["poses_path"] == protocol.POSES_PATH
