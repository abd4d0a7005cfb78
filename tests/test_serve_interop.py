"""``hhrt serve`` as other tools see it (#23 item 2 and the upload page): its OpenAPI document, the Open
Inference Protocol v2 through the official ``tritonclient.http`` client, and the page at ``/`` in a real
headless Chromium. The session's server (``tiny_server``: tests/serve_helpers.py, shared with
tests/test_serve.py), everything on 127.0.0.1.

Exactness: each request runs alone (a batch of one) on the PNG's exact pixels, so the v2 answers must
equal the ``/v1/poses`` record of the same PNG, not come close to it (see tests/test_serve.py).
"""

from __future__ import annotations

import base64
import json
import os
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import pytest
from browser_helpers import console_errors
from serve_helpers import TOKEN

ray = pytest.importorskip("ray")
httpclient = pytest.importorskip("tritonclient.http")
from tritonclient.utils import InferenceServerException  # noqa: E402

from hhrnet_rt.poses import Poses  # noqa: E402
from hhrnet_rt.serve.page import page_config  # noqa: E402

pytestmark = pytest.mark.ray

MODEL = "hhrnet"
AUTH = {"Authorization": f"Bearer {TOKEN}"}  # copied for each call: tritonclient adds its headers to the dict
SCREENSHOT = Path(__file__).resolve().parents[1] / "docs" / "images" / "serve-upload.png"
# Set to 1 to rewrite docs/images/serve-upload.png from this run (the picture README's docs show).
UPDATE_SCREENSHOT_ENV = "HHRT_UPDATE_SCREENSHOTS"


@pytest.fixture(scope="module")
def server(tiny_server):
    return tiny_server


@pytest.fixture(scope="module")
def png(golden_npz, tmp_path_factory) -> Path:
    """A 550x300 crop of the golden pipeline image as a PNG file (lossless: every route sees its exact
    pixels). The tiny model's poses are meaningless, but on this crop two of its people score above the
    page's drawing threshold with joints inside the image, so the canvas has a skeleton to look for."""
    import cv2

    path = tmp_path_factory.mktemp("page") / "people.png"
    assert cv2.imwrite(str(path), golden_npz("pipeline_case")["image_rgb_uint8"][100:400, 50:600, ::-1])
    return path


def _request(url: str, method: str = "GET", body: bytes | None = None, headers: dict | None = None):
    request = urllib.request.Request(url, data=body, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=60) as answer:
            return answer.status, answer.headers, answer.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.headers, exc.read()


@pytest.fixture(scope="module")
def v1_body(server, png) -> bytes:
    status, _, body = _request(server + "/v1/poses", "POST", png.read_bytes(), AUTH)
    assert status == 200, body
    assert json.loads(body)["people"], "the tiny model should find someone: otherwise nothing is compared"
    return body


@pytest.fixture(scope="module")
def triton(server):
    client = httpclient.InferenceServerClient(
        server.removeprefix("http://"), connection_timeout=30.0, network_timeout=60.0
    )
    yield client
    client.close()


def test_openapi_describes_every_route_and_each_answers(server, png):
    status, headers, body = _request(server + "/openapi.json")
    assert status == 200 and headers["content-type"] == "application/json"
    document = json.loads(body)
    schemas = document["components"]["schemas"]
    poses = document["paths"]["/v1/poses"]["post"]
    assert set(poses["requestBody"]["content"]) == {"image/jpeg", "image/png"}
    assert poses["responses"]["200"]["content"]["application/json"]["schema"]["$ref"].endswith("/PosesRecord")
    assert {"schema", "width", "height", "people"} <= set(schemas["PosesRecord"]["properties"])
    infer = document["paths"]["/v2/models/{model_name}/infer"]["post"]
    assert infer["requestBody"]["content"]["application/json"]["schema"]["$ref"].endswith("/InferRequest")
    assert infer["responses"]["200"]["content"]["application/json"]["schema"]["$ref"].endswith(
        "/InferResponse"
    )
    assert {"inputs", "outputs"} <= set(schemas["InferRequest"]["properties"]) and "InferInput" in schemas
    assert infer["security"] == [{"bearer": []}] and "bearer" in document["components"]["securitySchemes"]
    parameters = {
        p["name"]
        for ops in document["paths"].values()
        for op in ops.values()
        for p in op.get("parameters", [])
    }
    assert parameters == {"model_name"}  # nothing of the Python side (self) leaks into the API
    assert all("422" not in op["responses"] for ops in document["paths"].values() for op in ops.values())
    image = png.read_bytes()
    infer_body = json.dumps({"inputs": [{"name": "image", "datatype": "BYTES", "shape": [1],
                                         "data": [base64.b64encode(image).decode()]}]}).encode()  # fmt: skip
    bodies = {"/v1/poses": image, "/v2/models/{model_name}/infer": infer_body}
    answered = []
    for path, operations in document["paths"].items():
        for method in operations:
            url = server + path.replace("{model_name}", MODEL)
            got, _, text = _request(url, method.upper(), bodies.get(path), AUTH)
            assert got == 200, f"{method.upper()} {path} answered {got}: {text[:300]!r}"
            answered.append(f"{method.upper()} {path}")
    assert len(answered) == 10, answered  # the page, 3 of /v1, 6 of /v2
    status, _, page = _request(server + "/docs")
    assert status == 200 and b"/openapi.json" in page


def test_tritonclient_sees_a_live_ready_model_with_its_tensors(triton):
    assert triton.is_server_live() and triton.is_server_ready()
    assert triton.is_model_ready(MODEL, headers=dict(AUTH))
    assert not triton.is_model_ready(MODEL)  # no token: refused (401)
    meta = triton.get_model_metadata(MODEL, headers=dict(AUTH))
    assert meta["name"] == MODEL and meta["versions"] == ["1"]
    assert [(t["name"], t["datatype"], t["shape"]) for t in meta["inputs"]] == [
        ("image", "BYTES", [1]), ("image_rgb", "UINT8", [-1, -1, 3])]  # fmt: skip
    assert [(t["name"], t["datatype"], t["shape"]) for t in meta["outputs"]] == [
        ("keypoints", "FP32", [-1, 17, 3]), ("scores", "FP32", [-1]), ("record", "BYTES", [1])]  # fmt: skip
    assert "binary_tensor_data" in triton.get_server_metadata(headers=dict(AUTH))["extensions"]
    with pytest.raises(InferenceServerException) as refused:
        triton.get_model_metadata("openpose", headers=dict(AUTH))
    assert refused.value.status() == "404" and "serves 'hhrnet'" in refused.value.message()


def _infer(
    triton, name: str, datatype: str, value: np.ndarray, *, binary: bool = True, json_out: bool = False
):
    tensor = httpclient.InferInput(name, list(value.shape), datatype)
    tensor.set_data_from_numpy(value, binary_data=binary)
    outputs = None
    if json_out:  # ask for every output in the JSON part instead of binary
        outputs = [
            httpclient.InferRequestedOutput(n, binary_data=False) for n in ("keypoints", "scores", "record")
        ]
    return triton.infer(MODEL, [tensor], outputs=outputs, headers=dict(AUTH), request_id="r1")


@pytest.mark.parametrize(
    ("case", "binary", "json_out"),
    # JSON inputs are tested without the server (test_serve_oip.py): 640x480x3 numbers in JSON are over
    # this server's 2 MB body limit.
    [("bytes", True, False), ("uint8", True, False), ("bytes", True, True)],
    ids=["png-bytes-binary", "rgb-uint8-binary", "png-bytes-json-outputs"],
)
def test_tritonclient_infer_equals_the_v1_record(triton, png, v1_body, case, binary, json_out):
    import cv2

    if case == "bytes":
        value, name, datatype = np.array([png.read_bytes()], dtype=np.object_), "image", "BYTES"
    else:
        value, name, datatype = cv2.imread(str(png))[..., ::-1].copy(), "image_rgb", "UINT8"  # RGB
    result = _infer(triton, name, datatype, value, binary=binary, json_out=json_out)
    assert result.get_response()["id"] == "r1"
    record = result.as_numpy("record")[0]  # bytes when binary, str from JSON
    assert (record.encode() if isinstance(record, str) else record) == v1_body  # the bytes /v1/poses answered
    keypoints, scores = result.as_numpy("keypoints"), result.as_numpy("scores")
    assert keypoints.dtype == np.float32 and keypoints.shape == (len(scores), 17, 3)
    assert Poses(keypoints=keypoints, scores=scores).to_records() == json.loads(v1_body)["people"]


def test_a_bad_request_gets_a_clean_v2_error(triton, server):
    with pytest.raises(InferenceServerException) as bad:
        _infer(triton, "image", "BYTES", np.array([b"plain text, not a picture"], dtype=np.object_))
    assert bad.value.status() == "415" and "not a JPEG or PNG" in bad.value.message()
    with pytest.raises(InferenceServerException) as wrong:
        _infer(triton, "pixels", "UINT8", np.zeros((4, 4, 3), np.uint8))
    assert wrong.value.status() == "400" and "'image' or 'image_rgb'" in wrong.value.message()
    # The raw answer is the v2 error shape, nothing else.
    status, headers, body = _request(server + f"/v2/models/{MODEL}/infer", "POST", b"{not json", AUTH)
    assert status == 400 and headers["content-type"] == "application/json"
    assert list(json.loads(body)) == ["error"] and "not JSON" in json.loads(body)["error"]


def _pixel(driver, x: float, y: float) -> list[int]:
    return driver.execute_script(
        "return Array.from(document.getElementById('view').getContext('2d')"
        ".getImageData(arguments[0], arguments[1], 1, 1).data.slice(0, 3));",
        int(x),
        int(y),
    )


def test_upload_page_draws_the_poses_and_shows_the_json(chromium, server, png, v1_body):
    import cv2
    from selenium.webdriver.support.ui import WebDriverWait

    def upload_with(token_text: str) -> str:
        token.clear()
        token.send_keys(token_text)
        chromium.execute_script("document.getElementById('file').value = ''")  # the same file again fires
        chromium.execute_script("document.body.dataset.state = 'idle'")
        chromium.find_element("id", "file").send_keys(str(png))
        WebDriverWait(chromium, 15).until(
            lambda d: d.find_element("tag name", "body").get_attribute("data-state") in ("done", "error")
        )
        return chromium.find_element("id", "status").text

    chromium.get(server + "/")
    token = chromium.find_element("id", "token")
    assert token.is_displayed()  # the server has a token: the page asks for it
    refused = upload_with("not-the-token")
    assert "(401)" in refused and "wrong token" in refused, refused
    assert chromium.find_element("tag name", "body").get_attribute("data-state") == "error"
    console_errors(chromium)  # the browser logs the 401 itself; the check below is for the upload that works
    status = upload_with(TOKEN)
    assert chromium.find_element("tag name", "body").get_attribute("data-state") == "done", status
    shown = json.loads(chromium.find_element("id", "json").get_attribute("textContent"))
    expected = json.loads(v1_body)
    assert shown == expected and f"{len(expected['people'])} people found" in status
    # The skeleton is on the canvas in the package's colours; the rest is the image, unchanged.
    config = page_config(17, token=True, max_bytes=0)
    drawn = [
        p
        for p in range(len(expected["people"]))
        if expected["people"][p]["score"] > config["person_threshold"]
    ]
    assert drawn, "no person scores above the drawing threshold: nothing to look for on the canvas"
    last = drawn[-1]  # drawn over the others: its joints show its own colour
    joints = [(x, y) for x, y, v in expected["people"][last]["keypoints"]
              if v > config["score_threshold"] and 0 <= x < expected["width"] and 0 <= y < expected["height"]]  # fmt: skip
    assert joints, "the person drawn last has no joint inside the image: nothing to look for"
    colour = config["colors"][last % len(config["colors"])]
    want = [int(colour[i : i + 2], 16) for i in (1, 3, 5)]
    assert any(_pixel(chromium, x, y) == want for x, y in joints), (
        want,
        [_pixel(chromium, x, y) for x, y in joints],
    )
    image = cv2.imread(str(png))
    assert _pixel(chromium, 2, 297) == image[297, 2, ::-1].tolist()  # a corner no skeleton reaches
    shot = chromium.get_screenshot_as_png()
    if os.environ.get(UPDATE_SCREENSHOT_ENV) == "1":
        SCREENSHOT.write_bytes(shot)
    # Dropped rather than chosen (a drop as the browser delivers it, outside the drop zone): the same answer.
    chromium.execute_script(
        "document.body.dataset.state = 'idle'; document.getElementById('json').textContent = '';"
        "const bytes = Uint8Array.from(atob(arguments[0]), (c) => c.charCodeAt(0));"
        "const files = new DataTransfer(); files.items.add(new File([bytes], 'dropped.png', {type: 'image/png'}));"
        "document.querySelector('h1').dispatchEvent(new DragEvent('drop', {dataTransfer: files, bubbles: true}));",
        base64.b64encode(png.read_bytes()).decode(),
    )
    WebDriverWait(chromium, 15).until(
        lambda d: d.find_element("tag name", "body").get_attribute("data-state") == "done"
    )
    assert json.loads(chromium.find_element("id", "json").get_attribute("textContent")) == expected
    assert "dropped.png" in chromium.find_element("id", "status").text
    assert console_errors(chromium) == []
