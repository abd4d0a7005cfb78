"""The Open Inference Protocol v2 (KServe v2, Triton HTTP) for ``hhrt serve``: paths, metadata, tensors.

Plain Python, no Ray, no I/O: :class:`~hhrnet_rt.serve.handler.RequestHandler` routes ``/v2/...`` here
after its token and body-size rules. One model, :data:`MODEL_NAME`, version ``1``:

inputs (exactly one per request)
    ``image``      BYTES [1]          one encoded JPEG or PNG file (the body of ``POST /v1/poses``)
    ``image_rgb``  UINT8 [H, W, 3]    pixels in RGB order (PIL / imageio order; ``[1, H, W, 3]`` also taken)
outputs
    ``keypoints``  FP32 [P, K, 3]     x, y, score per joint in the image's pixels, unrounded
    ``scores``     FP32 [P]           person scores
    ``record``     BYTES [1]          the JSON record ``POST /v1/poses`` answers for the same image

Tensors travel as JSON ``data`` or with the binary tensor extension (``binary_data_size`` parameters and
the ``Inference-Header-Content-Length`` header), which ``tritonclient`` uses by default. In JSON a BYTES
element is a string: the image's bytes in base64 (JSON carries no raw bytes).
"""

from __future__ import annotations

import base64
import binascii
import json
import math
import re
import struct
from dataclasses import dataclass

import numpy as np

from hhrnet_rt._version import __version__
from hhrnet_rt.serve import protocol
from hhrnet_rt.serve.protocol import RequestRejected

MODEL_NAME = "hhrnet"
MODEL_VERSION = "1"
#: The protocol extensions this server implements (``GET /v2``).
EXTENSIONS = ("binary_tensor_data",)
BYTES_INPUT, PIXELS_INPUT = "image", "image_rgb"
OUTPUTS = ("keypoints", "scores", "record")
#: The request header that says how long the JSON part of a body with binary tensors is.
HEADER_LENGTH = "inference-header-content-length"

_PATH = re.compile(
    r"^/v2(?:/health/(?P<health>live|ready)"
    r"|/models/(?P<model>[^/]+)(?:/versions/(?P<version>[^/]+))?(?P<what>/ready|/infer)?)?$"
)


@dataclass(frozen=True)
class Route:
    """What a ``/v2`` path asks for: ``server``, ``live``, ``ready``, ``model``, ``model_ready`` or
    ``infer``; ``method`` is the one it takes."""

    kind: str
    method: str


def route(path: str) -> Route:
    """The route of a ``/v2`` path (no trailing slash).

    Raises:
        RequestRejected: 404 for a path of no route, another model or another version.
    """
    match = _PATH.match(path)
    if match is None:
        raise RequestRejected(404, f"no such endpoint: {path}; see /docs for the API")
    if match["health"]:
        return Route(match["health"], "GET")
    if match["model"] is None:
        return Route("server", "GET")
    if match["model"] != MODEL_NAME:
        raise RequestRejected(404, f"no model named {match['model']!r}; this server serves {MODEL_NAME!r}")
    if match["version"] not in (None, MODEL_VERSION):
        raise RequestRejected(
            404, f"{MODEL_NAME} has no version {match['version']!r}; it has {MODEL_VERSION!r}"
        )
    kind = {None: "model", "/ready": "model_ready", "/infer": "infer"}[match["what"]]
    return Route(kind, "POST" if kind == "infer" else "GET")


def server_metadata() -> dict:
    return {"name": "hhrnet_rt", "version": __version__, "extensions": list(EXTENSIONS)}


def model_metadata(num_joints: int, backend: str) -> dict:
    """``GET /v2/models/<name>``: the tensors a request and its answer hold (-1: any size)."""
    tensor = lambda name, datatype, shape: {"name": name, "datatype": datatype, "shape": shape}  # noqa: E731
    return {
        "name": MODEL_NAME,
        "versions": [MODEL_VERSION],
        "platform": f"hhrnet_rt/{backend}",
        "inputs": [tensor(BYTES_INPUT, "BYTES", [1]), tensor(PIXELS_INPUT, "UINT8", [-1, -1, 3])],
        "outputs": [
            tensor("keypoints", "FP32", [-1, num_joints, 3]),
            tensor("scores", "FP32", [-1]),
            tensor("record", "BYTES", [1]),
        ],  # fmt: skip
    }


@dataclass(frozen=True)
class InferRequest:
    """A parsed infer request: the image (BGR, as ``cv2.imread`` gives it) and the outputs to answer,
    each with whether it goes in binary."""

    id: str | None
    image_bgr: np.ndarray
    outputs: tuple[tuple[str, bool], ...]


def _bad(message: str) -> RequestRejected:
    return RequestRejected(400, message)


def _json_part(body: bytes, header_length: str | None) -> tuple[dict, bytes]:
    """The JSON header and the binary rest of a body (all JSON without the header)."""
    split = len(body)
    if header_length is not None:
        if not header_length.strip().isdigit() or not 0 < int(header_length) <= len(body):
            raise _bad(
                f"bad Inference-Header-Content-Length {header_length[:40]!r} for a {len(body)}-byte body"
            )
        split = int(header_length)
    try:
        request = json.loads(body[:split])
    except (ValueError, UnicodeDecodeError) as exc:
        raise _bad(f"the inference request is not JSON ({exc}); see /docs for its shape") from None
    except RecursionError:  # "[[[[..." nested deeper than the parser goes
        raise _bad("the inference request nests too deeply to be read") from None
    if not isinstance(request, dict):
        raise _bad("the inference request must be a JSON object with an 'inputs' list")
    return request, body[split:]


def _parameters(holder: dict, what: str) -> dict:
    parameters = holder.get("parameters")
    if parameters is None:
        return {}
    if not isinstance(parameters, dict):
        raise _bad(f"{what}: 'parameters' must be a JSON object, got {type(parameters).__name__}")
    return parameters


def _shape(tensor: dict) -> list[int]:
    shape = tensor.get("shape")
    if not isinstance(shape, list) or not all(
        isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in shape
    ):
        raise _bad(f"input {tensor.get('name')!r}: 'shape' must be a list of sizes, got {shape!r}")
    return shape


def _bytes_elements(raw: bytes) -> list[bytes]:
    """The elements of a binary BYTES tensor: each a little-endian uint32 length, then that many bytes."""
    elements: list[bytes] = []
    at = 0
    while at < len(raw) and len(elements) < 2:  # one is wanted: a second is enough to refuse (not millions)
        if at + 4 > len(raw):
            raise _bad("the BYTES tensor ends inside an element's length")
        (size,) = struct.unpack_from("<I", raw, at)
        if at + 4 + size > len(raw):
            raise _bad("the BYTES tensor is shorter than its element's length says")
        elements.append(raw[at + 4 : at + 4 + size])
        at += 4 + size
    return elements


def _image_file(tensor: dict, raw: bytes | None, max_pixels: int) -> np.ndarray:
    if math.prod(_shape(tensor)) != 1:
        raise _bad(f"input {BYTES_INPUT!r} holds one image: shape [1], got {tensor['shape']}")
    if raw is not None:
        elements = _bytes_elements(raw)
    else:
        data = tensor.get("data")
        while isinstance(data, list) and len(data) == 1:  # ["..."], [["..."]]: one element, any nesting
            data = data[0]
        if not isinstance(data, str):
            raise _bad(f"input {BYTES_INPUT!r}: JSON 'data' must hold one image, as a base64 string")
        try:
            elements = [base64.b64decode(data, validate=True)]
        except binascii.Error:
            raise _bad(
                f"input {BYTES_INPUT!r}: the JSON string is not base64 (send the file's bytes in base64)"
            ) from None
    if len(elements) != 1:
        raise _bad(f"input {BYTES_INPUT!r} holds one image, got {len(elements)} elements")
    return protocol.decode_image(elements[0], max_pixels=max_pixels)


def _pixels(tensor: dict, raw: bytes | None, max_pixels: int) -> np.ndarray:
    shape = _shape(tensor)
    if shape[:1] == [1] and len(shape) == 4:
        shape = shape[1:]
    if len(shape) != 3 or shape[2] != 3 or 0 in shape:
        raise _bad(f"input {PIXELS_INPUT!r} is [H, W, 3] (RGB), got shape {tensor['shape']}")
    protocol.check_pixels(shape[1], shape[0], max_pixels)
    if raw is not None:
        values = np.frombuffer(raw, np.uint8)
    else:
        try:  # no dtype given: strings, floats and booleans must not pass for pixel values
            values = np.ravel(np.asarray(tensor.get("data")))
        except (TypeError, ValueError):
            values = np.zeros(0, object)
        if values.dtype.kind not in "iu" or values.size and (values.min() < 0 or values.max() > 255):
            raise _bad(f"input {PIXELS_INPUT!r}: JSON 'data' must be a list of integers 0-255")
    if values.size != math.prod(shape):
        raise _bad(
            f"input {PIXELS_INPUT!r}: shape {tensor['shape']} needs {math.prod(shape)} values, got {values.size}"
        )
    # RGB in, BGR to the estimator (cv2.imread's order, what /v1/poses decodes to).
    return np.ascontiguousarray(values.astype(np.uint8).reshape(shape)[:, :, ::-1])


def _outputs(request: dict) -> tuple[tuple[str, bool], ...]:
    asked = request.get("outputs")
    parameters = _parameters(request, "the request")
    if asked is None:
        return tuple((name, parameters.get("binary_data_output") is True) for name in OUTPUTS)
    if not isinstance(asked, list) or not all(isinstance(o, dict) for o in asked):
        raise _bad("'outputs' must be a list of {\"name\": ...} objects")
    chosen: list[tuple[str, bool]] = []
    for output in asked:
        name, extra = output.get("name"), _parameters(output, f"output {output.get('name')!r}")
        if name not in OUTPUTS or name in dict(chosen):
            raise _bad(f"output {name!r} is unknown or asked twice; this model has {', '.join(OUTPUTS)}")
        if "classification" in extra or "shared_memory_region" in extra:
            raise _bad(f"output {name!r}: classification and shared memory are not supported")
        chosen.append((name, extra.get("binary_data") is True))
    return tuple(chosen)


def parse_infer(
    body: bytes, header_length: str | None, *, max_pixels: int = protocol.MAX_PIXELS
) -> InferRequest:
    """An infer request body (and its ``Inference-Header-Content-Length``, if any) as an image.

    Nothing in it is trusted: every field is checked, the image bounded (``max_pixels``) before it is
    decoded or allocated, and binary parts must add up to the body exactly.

    Raises:
        RequestRejected: 400 a malformed request (with what is wrong), 413 too many pixels, 415 a BYTES
            image that is not a JPEG or PNG.
    """
    request, binary = _json_part(body, header_length)
    inputs = request.get("inputs")
    if not isinstance(inputs, list) or len(inputs) != 1 or not isinstance(inputs[0], dict):
        raise _bad(f"send exactly one input: {BYTES_INPUT!r} (BYTES [1], a JPEG or PNG file) or "
                   f"{PIXELS_INPUT!r} (UINT8 [H, W, 3], RGB)")  # fmt: skip
    tensor = inputs[0]
    name, datatype = tensor.get("name"), tensor.get("datatype")
    want = {BYTES_INPUT: "BYTES", PIXELS_INPUT: "UINT8"}.get(name) if isinstance(name, str) else None
    if want is None:
        raise _bad(f"unknown input {name!r}; this model takes {BYTES_INPUT!r} or {PIXELS_INPUT!r}")
    if datatype != want:
        raise _bad(f"input {name!r} is {want}, got {datatype!r}")
    parameters = _parameters(tensor, f"input {name!r}")
    if "shared_memory_region" in parameters:
        raise _bad("shared memory is not supported; send the tensor in the request")
    raw = None
    if "binary_data_size" in parameters:
        size = parameters["binary_data_size"]
        if not isinstance(size, int) or isinstance(size, bool) or size != len(binary):
            raise _bad(
                f"binary_data_size {size!r} does not match the {len(binary)} bytes after the JSON header"
            )
        raw = binary
    elif binary or "data" not in tensor:
        raise _bad(
            f"input {name!r} needs 'data' or binary data (binary_data_size), and nothing else after it"
        )
    decode = _image_file if name == BYTES_INPUT else _pixels
    image = decode(tensor, raw, max_pixels)
    request_id = request.get("id")
    return InferRequest(str(request_id) if request_id is not None else None, image, _outputs(request))


def infer_response(
    request: InferRequest, keypoints: np.ndarray, scores: np.ndarray, record: bytes
) -> tuple[bytes, dict[str, str]]:
    """The answer's body and headers: JSON, or a JSON header and the binary outputs after it
    (``Inference-Header-Content-Length`` then says where the JSON ends)."""
    arrays = {"keypoints": np.asarray(keypoints, "<f4"), "scores": np.asarray(scores, "<f4")}
    outputs, binary = [], []
    for name, as_binary in request.outputs:
        array = arrays.get(name)
        output: dict = {"name": name, "datatype": "BYTES" if array is None else "FP32",
                        "shape": [1] if array is None else list(array.shape)}  # fmt: skip
        if as_binary:
            raw = struct.pack("<I", len(record)) + record if array is None else array.tobytes()
            output["parameters"] = {"binary_data_size": len(raw)}
            binary.append(raw)
        elif array is None:
            output["data"] = [record.decode("utf-8")]
        else:  # JSON has no NaN: a non-finite value is null (tritonclient reads it back as NaN)
            output["data"] = [v if math.isfinite(v) else None for v in array.ravel().tolist()]
        outputs.append(output)
    answer: dict = {"model_name": MODEL_NAME, "model_version": MODEL_VERSION, "outputs": outputs}
    if request.id is not None:
        answer["id"] = request.id
    header = json.dumps(answer).encode()
    if not binary:
        return header, {}
    headers = {
        "Inference-Header-Content-Length": str(len(header)),
        "Content-Type": "application/octet-stream",
    }
    return header + b"".join(binary), headers
