"""The HTTP API of ``hhrt serve``, shared by the server and the clients: paths, limits, bodies, errors.

Nothing here imports Ray: the clients (:class:`~hhrnet_rt.serve.PoseClient`, ``hhrt video --server``)
need only the standard library, OpenCV and numpy.

API (documented in docs/serving.md):
    ``POST /v1/poses``  body: one JPEG or PNG image  ->  200 ``{"schema", "width", "height", "people"}``,
                        ``people`` exactly as ``hhrt image --json`` writes them (:meth:`Poses.to_records`)
    ``GET /v1/health``  -> 200 ``{"status": "ok"}``
    ``GET /v1/info``    -> 200 model, backend, precision, versions (``PoseEstimator.describe`` and more)
Errors are JSON ``{"error": message}`` with a 4xx status for the client's mistakes, never a traceback.
"""

from __future__ import annotations

import json
import struct

import numpy as np

from hhrnet_rt.core.errors import BackendUnavailableError, InputError
from hhrnet_rt.core.jpeg import CUT_SHORT, JpegHeaderError, jpeg_cut_short, jpeg_header
from hhrnet_rt.poses import KEYPOINTS_SCHEMA, Poses

POSES_PATH = "/v1/poses"
HEALTH_PATH = "/v1/health"
INFO_PATH = "/v1/info"
METHODS = {POSES_PATH: "POST", HEALTH_PATH: "GET", INFO_PATH: "GET"}

#: Default request size limit: a 4K PNG photo is about 20 MB; a 640x480 JPEG about 50 KB.
DEFAULT_MAX_BYTES = 32 * 2**20
#: Decoded size limit, checked from the header before decoding: a small PNG of zeros can claim
#: 50000 x 50000 pixels (7.5 GB decoded); 8K UHD is 33 Mpx.
MAX_PIXELS = 40_000_000

_PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
_JPEG_MAGIC = b"\xff\xd8\xff"


class RequestRejected(InputError):
    """The server refused a request (4xx): the status and the server's message. Not retried."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


class ServerUnavailable(BackendUnavailableError):
    """The server could not be reached, or kept failing (5xx), until the retries ran out."""


def image_size(data: bytes) -> tuple[str, int, int]:
    """``(format, width, height)`` from a JPEG or PNG header, without decoding the pixels.

    Raises:
        RequestRejected: 415 not a JPEG or PNG; 400 a header that cannot be read.
    """
    if data.startswith(_PNG_MAGIC):
        if len(data) < 24 or data[12:16] != b"IHDR":
            raise RequestRejected(400, "the PNG image has no IHDR header")
        width, height = struct.unpack(">II", data[16:24])
        return "png", width, height
    if data.startswith(_JPEG_MAGIC):
        try:  # the size libjpeg will decode to, found as libjpeg finds it
            width, height, _ = jpeg_header(data)
        except JpegHeaderError as exc:
            raise RequestRejected(400, f"the JPEG image cannot be read: {exc}") from None
        return "jpeg", width, height
    raise RequestRejected(415, "the request body is not a JPEG or PNG image")


def check_pixels(width: int, height: int, max_pixels: int) -> None:
    """The server's bound on an image's size, checked before any pixel is decoded or copied (an encoded
    image's header, or a raw tensor's shape).

    Raises:
        RequestRejected: 413 when ``width * height`` is over ``max_pixels``.
    """
    if width * height > max_pixels:
        raise RequestRejected(413, f"the image is {width}x{height}; at most {max_pixels} pixels are accepted")


def decode_image(data: bytes, *, max_pixels: int = MAX_PIXELS) -> np.ndarray:
    """A request body as a BGR uint8 image (what ``cv2.imread`` gives), bounded before decoding.

    Raises:
        RequestRejected: 415 not JPEG/PNG, 413 more than ``max_pixels``, 400 corrupt or empty.
    """
    import cv2

    _, width, height = image_size(data)
    if width == 0 or height == 0:
        raise RequestRejected(400, f"the image is empty ({width}x{height})")
    check_pixels(width, height, max_pixels)
    if jpeg_cut_short(data):
        raise RequestRejected(400, f"the JPEG image is {CUT_SHORT}")
    image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    if image is None:
        raise RequestRejected(400, "the image could not be decoded (corrupt or truncated)")
    return image


def encode_image(image_bgr: np.ndarray, image_format: str = "jpeg", jpeg_quality: int = 95) -> bytes:
    """A BGR image as the body of ``POST /v1/poses``. PNG is lossless (the server sees the same pixels:
    same poses as a local run); JPEG is lossy: smaller for camera pictures, and the poses move a little."""
    import cv2

    if image_format == "png":
        ok, data = cv2.imencode(".png", image_bgr, [cv2.IMWRITE_PNG_COMPRESSION, 1])
    elif image_format == "jpeg":
        ok, data = cv2.imencode(".jpg", image_bgr, [cv2.IMWRITE_JPEG_QUALITY, int(jpeg_quality)])
    else:
        raise InputError(f"image_format must be 'jpeg' or 'png', got {image_format!r}")
    if not ok:
        raise InputError(f"could not encode a {image_bgr.shape} image as {image_format}")
    return data.tobytes()


def poses_body(poses: Poses, width: int, height: int) -> bytes:
    """The 200 answer of ``POST /v1/poses`` (the record of ``hhrt image --json`` without the file name)."""
    record = {"schema": KEYPOINTS_SCHEMA, "width": width, "height": height, "people": poses.to_records()}
    return json.dumps(record).encode()


def poses_from_body(body: bytes, num_joints: int | None = None) -> Poses:
    """Inverse of :func:`poses_body`: the people as :class:`Poses` (a ``null`` value becomes NaN).

    Values are the records' rounded ones (0.01 px, 1e-4 score), so ``poses_from_body(poses_body(p))``
    writes the same records as ``p``. Nothing in the answer is trusted: every person must have
    ``num_joints`` joints (where given; else as many as the others) of three numbers each.

    Raises:
        ServerUnavailable: the answer is not a poses record, or has another joint count.
    """
    try:
        record = json.loads(body)
        people = record["people"]
        keypoints = [
            [[np.nan if v is None else float(v) for v in joint] for joint in p["keypoints"]] for p in people
        ]
        scores = [np.nan if p["score"] is None else float(p["score"]) for p in people]
    except (ValueError, KeyError, TypeError) as exc:
        raise ServerUnavailable(f"the server's answer is not a poses record: {exc}") from None
    counts = {len(joints) for joints in keypoints}
    if num_joints is not None:
        counts.add(num_joints)
    if len(counts) > 1 or any(len(joint) != 3 for joints in keypoints for joint in joints):
        found = sorted({len(joints) for joints in keypoints})
        want = f"{num_joints} joints" if num_joints is not None else "one joint count"
        raise ServerUnavailable(
            f"the server's answer has people with {', '.join(map(str, found))} joints (of x, y, score), "
            f"expected {want}: it runs another model than this client expects"
        )
    if not people:
        return Poses.empty(num_joints or 17)
    return Poses(keypoints=np.asarray(keypoints, np.float32), scores=np.asarray(scores, np.float32))


def error_body(message: str) -> bytes:
    return json.dumps({"error": message}).encode()


def error_message(body: bytes) -> str:
    """The server's ``{"error": ...}`` text, or the start of whatever else came back."""
    try:
        return str(json.loads(body)["error"])
    except (ValueError, KeyError, TypeError):
        return body[:200].decode("utf-8", "replace").strip() or "(empty answer)"
