"""PoseClient: ``PoseEstimator.predict`` over HTTP, against ``hhrt serve`` (standard library only).

Example:
    >>> client = PoseClient("http://127.0.0.1:8000")      # the token, if any, from HHRT_TOKEN  # doctest: +SKIP
    >>> poses = client.predict(cv2.imread("people.jpg"))                                   # doctest: +SKIP
"""

from __future__ import annotations

import http.client
import json
import threading
import time
import urllib.parse
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from hhrnet_rt.core.access import token_from_env
from hhrnet_rt.core.errors import InputError
from hhrnet_rt.poses import Poses
from hhrnet_rt.serve import protocol
from hhrnet_rt.serve.protocol import RequestRejected, ServerUnavailable

# Statuses worth another try: a replica restarting or overloaded, a proxy without a healthy replica, too
# many uploads from this address still arriving (429).
_RETRY_STATUSES = {429, 500, 502, 503, 504}


class PoseClient:
    """Sends images to an ``hhrt serve`` server and returns :class:`~hhrnet_rt.Poses`.

    Poses come from the server's JSON records, so their values are rounded as ``hhrt image --json``
    writes them (0.01 px, 1e-4 score); with ``image_format="png"`` they write the same records as a local
    ``PoseEstimator.predict`` of the same model on the same image.

    Safe to share between threads: each thread keeps its own connection (HTTP keep-alive).

    Args:
        url: the server, ``http://host:port`` (https too).
        token: bearer token (``hhrt serve --token``); ``None``: the ``HHRT_TOKEN`` environment variable's,
            as the CLI does (none if it is unset); ``""``: none sent.
        image_format: "jpeg" (default: small) or "png" (lossless: exact poses).
        timeout_s: per attempt, connecting and waiting for the answer.
        retry_s: how long failed attempts (no connection, 5xx) are retried, with backoff from 0.1 s up
            to 2 s between tries; then :class:`ServerUnavailable`. A 4xx is never retried.
        num_joints: the joint count every answer must have; ``None``: the server's model's, asked once
            (``/v1/info``) before the first prediction. An answer with another count raises
            :class:`ServerUnavailable` instead of passing for the model the caller expects.
    """

    def __init__(
        self,
        url: str,
        token: str | None = None,
        *,
        image_format: str = "jpeg",
        jpeg_quality: int = 95,
        timeout_s: float = 30.0,
        retry_s: float = 30.0,
        num_joints: int | None = None,
    ) -> None:
        parts = urllib.parse.urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise InputError(f"server URL must look like http://host:port, got {url!r}")
        if image_format not in ("jpeg", "png"):
            raise InputError(f"image_format must be 'jpeg' or 'png', got {image_format!r}")
        self.url = url.rstrip("/")
        self._parts = parts
        self._host = parts.hostname  # checked above
        self._base = parts.path.rstrip("/")
        self.token = token_from_env() if token is None else token or None
        self.image_format, self.jpeg_quality = image_format, jpeg_quality
        self.num_joints = num_joints
        self.timeout_s, self.retry_s = float(timeout_s), float(retry_s)
        self._local = threading.local()
        self.bytes_sent = self.bytes_received = 0  # totals over the client's life (benchmarks)
        self.retries = 0  # failed attempts that were tried again
        self._count_lock = threading.Lock()

    # -- public API ----------------------------------------------------------------------------------

    def predict(self, image_bgr: np.ndarray) -> Poses:
        """Poses of everyone in one BGR image (as ``cv2.imread`` gives it)."""
        return self.predict_encoded(self.encode(image_bgr))

    def predict_batch(self, images: Sequence[np.ndarray], *, concurrency: int = 8) -> list[Poses]:
        """Poses of each image, in order; up to ``concurrency`` requests in flight (the server batches
        requests that arrive together)."""
        if not images:
            return []
        with ThreadPoolExecutor(min(concurrency, len(images)), thread_name_prefix="hhrt-client") as pool:
            return list(pool.map(self.predict, images))

    def encode(self, image_bgr: np.ndarray) -> bytes:
        """The request body for an image (this client's format)."""
        from hhrnet_rt.runtime.preprocess import as_bgr_u8

        return protocol.encode_image(as_bgr_u8(image_bgr), self.image_format, self.jpeg_quality)

    def predict_encoded(self, body: bytes) -> Poses:
        """Poses for an already encoded JPEG/PNG body."""
        content_type = "image/png" if self.image_format == "png" else "image/jpeg"
        expected = self._expected_joints()
        return protocol.poses_from_body(
            self._request("POST", protocol.POSES_PATH, body, content_type), expected
        )

    def _expected_joints(self) -> int | None:
        if self.num_joints is None:
            count = self.info().get("model", {}).get("num_joints")
            # A server that does not say (an older one) is held to one count per answer only.
            self.num_joints = int(count) if isinstance(count, int) and count > 0 else 0
        return self.num_joints or None

    def health(self, *, retry_s: float | None = None) -> dict:
        """``GET /v1/health``; ``retry_s``: this call's retry budget (default: the client's)."""
        return json.loads(self._request("GET", protocol.HEALTH_PATH, retry_s=retry_s))

    def info(self, *, retry_s: float | None = None) -> dict:
        """``GET /v1/info``: model, backend, precision, versions, the server's limits."""
        return json.loads(self._request("GET", protocol.INFO_PATH, retry_s=retry_s))

    def close(self) -> None:
        """Close this thread's connection (the others close when their threads end)."""
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
            self._local.conn = None

    # -- transport -----------------------------------------------------------------------------------

    def _connection(self) -> http.client.HTTPConnection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            cls = http.client.HTTPSConnection if self._parts.scheme == "https" else http.client.HTTPConnection
            conn = cls(self._host, self._parts.port, timeout=self.timeout_s)
            self._local.conn = conn
        return conn

    def _attempt(
        self, method: str, path: str, body: bytes | None, content_type: str | None
    ) -> tuple[int, bytes]:
        headers = {"Content-Type": content_type} if content_type else {}
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        conn = self._connection()
        try:
            conn.request(method, self._base + path, body=body, headers=headers)
            answer = conn.getresponse()
            data = answer.read()
        except BaseException:
            self.close()  # a broken keep-alive connection is not reused
            raise
        with self._count_lock:
            self.bytes_sent += len(body or b"")
            self.bytes_received += len(data)
        return answer.status, data

    def _request(
        self,
        method: str,
        path: str,
        body: bytes | None = None,
        content_type: str | None = None,
        *,
        retry_s: float | None = None,
    ) -> bytes:
        retry_s = self.retry_s if retry_s is None else retry_s
        deadline = time.monotonic() + retry_s
        delay, tries = 0.1, 0
        while True:
            tries += 1
            try:
                status, data = self._attempt(method, path, body, content_type)
            except (OSError, http.client.HTTPException) as exc:
                problem = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
            else:
                if status == 200:
                    return data
                message = protocol.error_message(data)
                if status not in _RETRY_STATUSES:
                    raise RequestRejected(
                        status, f"the server {self.url} refused the request ({status}): {message}"
                    )
                problem = f"HTTP {status}: {message}"
            if time.monotonic() + delay > deadline:
                raise ServerUnavailable(
                    f"the server {self.url} did not answer {method} {path} after {tries} tries in "
                    f"{retry_s:g} s; last problem: {problem}"
                )
            with self._count_lock:
                self.retries += 1
            time.sleep(delay)
            delay = min(2 * delay, 2.0)
