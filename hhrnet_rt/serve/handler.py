"""What the server answers, as plain async Python: routing, token, size limits, the poses record, for
``/v1``, the Open Inference Protocol v2 (``/v2``, :mod:`hhrnet_rt.serve.oip`) and the upload page (``/``).

The Ray Serve deployment (:mod:`hhrnet_rt.serve.deployment`) wraps :class:`RequestHandler` and gives it a
batched ``predict``; everything a client can get wrong is decided here, in one place, before any model
work, and always ends as ``{"error": message}`` with a 4xx status (a 500 says only the exception's type:
the traceback stays in the server's log).
"""

from __future__ import annotations

import asyncio
import json
import logging
import platform
import re
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import asdict, dataclass
from pathlib import PurePath
from typing import Any

import numpy as np

from hhrnet_rt._version import __version__
from hhrnet_rt.core.access import bearer_matches
from hhrnet_rt.core.errors import ImageShapeError
from hhrnet_rt.core.skeleton import COCO_KEYPOINTS
from hhrnet_rt.poses import Poses
from hhrnet_rt.serve import oip, protocol
from hhrnet_rt.serve.page import PAGE_PATH, upload_page
from hhrnet_rt.serve.protocol import RequestRejected

log = logging.getLogger("hhrnet_rt.serve")

#: How long a request body may take to arrive (``--body-timeout-s``): a 32 MB body at 30 Mbit/s.
DEFAULT_BODY_TIMEOUT_S = 10.0
#: Uploads in progress per client address and replica (``--uploads-per-client``).
DEFAULT_UPLOADS_PER_CLIENT = 4


class ClientGone(Exception):
    """The client closed the connection before its body arrived (the front end raises it): nothing to
    answer, and nothing for the server's log but one line."""


@dataclass(frozen=True)
class ServeSettings:
    """Request handling and batching of one deployment (``hhrt serve`` options).

    Attributes:
        max_batch: most requests one ``predict_batch`` call takes (``@serve.batch``'s max_batch_size).
        batch_wait_ms: how long the first request of a batch waits for more to arrive.
        token: bearer token every request but ``/v1/health`` must carry; ``None``: no token.
        max_bytes: largest request body accepted (413 above it).
        max_pixels: largest image accepted, from its header, before decoding (413 above it).
        body_timeout_s: the whole body must arrive within this (408 after it): a client that sends the
            headers and then nothing would otherwise hold a replica slot for ever.
        uploads_per_client: bodies one client address may be sending to a replica at once (429 above it),
            so one address cannot take every slot with stalled uploads.
    """

    max_batch: int = 8
    batch_wait_ms: float = 10.0
    token: str | None = None
    max_bytes: int = protocol.DEFAULT_MAX_BYTES
    max_pixels: int = protocol.MAX_PIXELS
    body_timeout_s: float = DEFAULT_BODY_TIMEOUT_S
    uploads_per_client: int = DEFAULT_UPLOADS_PER_CLIENT

    def public(self) -> dict:
        """The settings for ``/v1/info``: whether a token is set, never the token."""
        facts = asdict(self)
        facts["token"] = self.token is not None
        return facts


@dataclass(frozen=True)
class Answer:
    """An HTTP answer: status, JSON body, extra headers."""

    status: int
    body: bytes
    headers: Mapping[str, str] | None = None


def _error(status: int, message: str, headers: Mapping[str, str] | None = None) -> Answer:
    return Answer(status, protocol.error_body(message), headers)


def _json(status: int, value: Any) -> Answer:
    return Answer(status, json.dumps(value).encode())


def health_answer(method: str, path: str) -> Answer:
    """``/v1/health``: open to load balancers' probes (it says nothing about the model). The server answers
    it from a deployment of its own, so stalled uploads that fill the model's replicas do not silence it."""
    if (path.rstrip("/") or "/") != protocol.HEALTH_PATH:
        return _error(404, f"no such endpoint: {path}; the API is {', '.join(sorted(protocol.METHODS))}")
    if method.upper() not in ("GET", "HEAD"):
        return _error(405, f"{protocol.HEALTH_PATH} takes GET, not {method}", {"Allow": "GET"})
    return Answer(200, json.dumps({"status": "ok"}).encode())


class RequestHandler:
    """Answers one request from its method, path, headers and body stream.

    Args:
        settings: limits and token.
        predict: ``await predict(image_bgr) -> Poses`` (the deployment's batched call).
        info: the facts ``/v1/info`` returns (model, backend, precision...); versions are added here.
        check_shape: ``check_shape((h, w))`` raises ImageShapeError for an image the model must not take
            (:meth:`~hhrnet_rt.PoseEstimator.check_shape`); called before batching, so one such image
            fails alone (413), not the batch it would have joined.
    """

    def __init__(
        self,
        settings: ServeSettings,
        predict: Callable[..., Awaitable],
        info: dict,
        check_shape: Callable[[tuple[int, int]], None] | None = None,
    ) -> None:
        self.settings, self._predict, self._check_shape = settings, predict, check_shape
        self._uploads: Counter[str] = Counter()  # per client address: bodies being read now
        self._info = {
            **info,
            "versions": _versions(),
            "serve": settings.public(),
            "api": sorted(protocol.METHODS),
        }
        model = info.get("model", {})
        joints = int(model.get("num_joints", len(COCO_KEYPOINTS)))  # a handler without a model: COCO's
        self._v2_metadata = oip.model_metadata(joints, str(model.get("backend", "")))
        self._page = upload_page(joints, token=settings.token is not None, max_bytes=settings.max_bytes)

    async def answer(
        self,
        method: str,
        path: str,
        headers: Mapping[str, str],
        body: Callable[[], AsyncIterator[bytes]],
        client: str | None = None,
    ) -> Answer:
        """``headers`` with lower-case names (as ASGI gives them); ``body()`` yields the body's chunks;
        ``client``: the client's address (uploads are bounded per address)."""
        try:
            return await self._answer(method.upper(), path.rstrip("/") or "/", headers, body, client)
        except RequestRejected as exc:
            return _error(exc.status, str(exc), {"Retry-After": "1"} if exc.status == 429 else None)
        except ClientGone:  # no one is left to read an answer or a traceback
            log.info("request %s %s: the client %s left before its body arrived", method, path, client)
            return _error(400, "the client closed the connection before the body arrived")
        except Exception as exc:  # the client gets the type, the log gets the traceback
            log.exception("request %s %s failed", method, path)
            return _error(500, f"internal server error ({type(exc).__name__}); see the server's log")

    async def _answer(self, method, path, headers, body, client) -> Answer:
        if path == "/v2" or path.startswith("/v2/"):
            return await self._answer_v2(method, path, headers, body, client)
        allowed = "GET" if path == PAGE_PATH else protocol.METHODS.get(path)
        if allowed is None:
            raise RequestRejected(
                404, f"no such endpoint: {path}; the API is {', '.join(sorted(protocol.METHODS))} (see /docs)"
            )
        if method != allowed and not (method == "HEAD" and allowed == "GET"):
            return _error(405, f"{path} takes {allowed}, not {method}", {"Allow": allowed})
        if path == protocol.HEALTH_PATH:
            return health_answer(method, path)
        if path == PAGE_PATH:  # no token: the page asks for it and sends it with each upload
            return Answer(200, self._page, {"Content-Type": "text/html; charset=utf-8"})
        self._check_token(headers)
        if path == protocol.INFO_PATH:
            # Redacted per answer: the info holds live counts (a dict the deployment updates).
            return Answer(200, json.dumps(_without_paths(self._info), default=str).encode())
        data = await self._read_body(headers, body, client or "unknown")
        image = protocol.decode_image(data, max_pixels=self.settings.max_pixels)
        poses = await self._poses_of(image)
        return Answer(200, protocol.poses_body(poses, int(image.shape[1]), int(image.shape[0])))

    async def _poses_of(self, image: np.ndarray) -> Poses:
        if self._check_shape is not None:
            try:
                self._check_shape((int(image.shape[0]), int(image.shape[1])))
            except ImageShapeError as exc:
                raise RequestRejected(413, str(exc)) from None
        return await self._predict(image)

    async def _answer_v2(self, method, path, headers, body, client) -> Answer:
        """The Open Inference Protocol v2 routes (:mod:`hhrnet_rt.serve.oip`), under /v1's rules: health
        open, everything else behind the token; an infer body under the same size, deadline and
        per-client limits."""
        route = oip.route(path)
        if method != route.method and not (method == "HEAD" and route.method == "GET"):
            return _error(405, f"{path} takes {route.method}, not {method}", {"Allow": route.method})
        if route.kind in ("live", "ready"):  # a replica answers: its model is loaded
            return _json(200, {route.kind: True})
        self._check_token(headers)
        if route.kind == "server":
            return _json(200, oip.server_metadata())
        if route.kind == "model":
            return _json(200, self._v2_metadata)
        if route.kind == "model_ready":
            return _json(200, {"name": oip.MODEL_NAME, "ready": True})
        if headers.get("content-encoding", "identity").lower() != "identity":
            # A compressed body could unpack past every size limit: refused, not unpacked.
            raise RequestRejected(415, "compressed requests are not accepted; send the body uncompressed")
        data = await self._read_body(headers, body, client or "unknown")
        request = oip.parse_infer(data, headers.get(oip.HEADER_LENGTH), max_pixels=self.settings.max_pixels)
        image = request.image_bgr
        poses = await self._poses_of(image)
        record = protocol.poses_body(poses, int(image.shape[1]), int(image.shape[0]))
        answer, extra = oip.infer_response(request, poses.keypoints, poses.scores, record)
        return Answer(200, answer, extra)

    def _check_token(self, headers: Mapping[str, str]) -> None:
        if self.settings.token is None:
            return
        given = headers.get("authorization", "")
        if not bearer_matches(given, self.settings.token):
            what = "a wrong token" if given else "no token"
            raise RequestRejected(
                401, f"this server needs 'Authorization: Bearer <token>'; the request had {what}"
            )

    async def _read_body(self, headers: Mapping[str, str], body, client: str) -> bytes:
        limit = self.settings.max_bytes
        declared = headers.get("content-length")
        if declared is not None:
            if not declared.isdigit():
                raise RequestRejected(400, f"bad Content-Length: {declared[:40]!r}")
            if int(declared) > limit:  # refused before a byte of it is read
                raise RequestRejected(413, f"the request body is {int(declared)} bytes; the limit is {limit}")
        if self._uploads[client] >= self.settings.uploads_per_client:
            raise RequestRejected(
                429,
                f"{self._uploads[client]} uploads from {client} are still arriving; send the next one "
                f"when one of them has (at most {self.settings.uploads_per_client} at once)",
            )
        self._uploads[client] += 1
        try:
            async with asyncio.timeout(self.settings.body_timeout_s):
                return await self._chunks(body, limit)
        except TimeoutError:
            raise RequestRejected(
                408,
                f"the request body did not arrive within {self.settings.body_timeout_s:g} s; send it at once",
            ) from None
        finally:
            self._uploads[client] -= 1
            if not self._uploads[client]:
                del self._uploads[client]

    @staticmethod
    async def _chunks(body, limit: int) -> bytes:
        chunks, size = [], 0
        async for chunk in body():  # a chunked upload has no length: count as it comes
            size += len(chunk)
            if size > limit:
                raise RequestRejected(413, f"the request body is over the limit of {limit} bytes")
            chunks.append(chunk)
        if size == 0:
            raise RequestRejected(400, "the request body is empty; send one JPEG or PNG image")
        return b"".join(chunks)


# An absolute path: a slash, then folders, then the name; the name is what a client may see.
_ABSOLUTE_PATH = re.compile(r"(?<![\w.:/])/(?:[^\s/,;()'\"]+/)+(?=[^\s/,;()'\"]+)")


def _without_paths(facts: Any) -> Any:
    """``facts`` with every absolute path cut to its file name: ``/v1/info`` tells clients which model
    answers, not how the server's disk is laid out (user names, folders)."""
    if isinstance(facts, str):
        return _ABSOLUTE_PATH.sub("", facts)
    if isinstance(facts, PurePath):
        return facts.name
    if isinstance(facts, Mapping):
        return {key: _without_paths(value) for key, value in facts.items()}
    if isinstance(facts, list | tuple):
        return [_without_paths(value) for value in facts]
    return facts


def _versions() -> dict:
    import cv2
    import numpy
    import torch

    facts = {"hhrnet_rt": __version__, "python": platform.python_version(), "torch": torch.__version__,
             "numpy": numpy.__version__, "opencv": cv2.__version__}  # fmt: skip
    try:
        import ray

        facts["ray"] = ray.__version__
    except ImportError:  # the handler itself runs without Ray (tests, other front ends)
        pass
    return facts
