"""RemoteEstimator: the pipeline's inference + decode stages on an ``hhrt serve`` server.

It has the stage methods of :class:`~hhrnet_rt.PoseEstimator`, so ``hhrt video/webcam --server URL``
runs the same pipeline unchanged while capture, drawing and writing stay local:

``prepare``  encode the frame (JPEG or PNG)                         (the pipeline's preprocess stage)
``infer``    send it; returns a future at once (blocks only while
             ``max_in_flight`` requests are already out)             (inference stage)
``decode``   wait for that frame's answer                            (decode stage)

The pipeline calls ``infer`` and ``decode`` in frame order from one thread each, so answers are taken
in order even when they arrive out of order, and at most ``max_in_flight`` requests (plus the answers
queued for the decode thread) exist at once. A request that fails is retried by :class:`PoseClient`
(backoff, ``retry_s``); when that runs out, ``decode`` raises :class:`ServerUnavailable` naming the
server, and the pipeline ends the run like any failing stage (outputs closed and playable).
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TYPE_CHECKING

import numpy as np

from hhrnet_rt.core.errors import InputError
from hhrnet_rt.poses import Poses
from hhrnet_rt.serve.client import PoseClient

if TYPE_CHECKING:
    from hhrnet_rt.video.stages import Estimator


class RemoteEstimator:
    """Pipeline stages that call a server; see the module docstring.

    Args:
        client: the server's :class:`PoseClient` (its format, token and retries).
        max_in_flight: requests sent and not yet answered, at most (>= 1).
    """

    def __init__(self, client: PoseClient, *, max_in_flight: int = 4) -> None:
        if max_in_flight < 1:
            raise InputError(f"max_in_flight must be at least 1, got {max_in_flight}")
        self.client, self.max_in_flight = client, int(max_in_flight)
        self._slots = threading.BoundedSemaphore(self.max_in_flight)
        self._pool = ThreadPoolExecutor(self.max_in_flight, thread_name_prefix="hhrt-remote")

    # -- the stages the pipeline calls ---------------------------------------------------------------

    def prepare(self, image_bgr: np.ndarray) -> bytes:
        return self.client.encode(image_bgr)

    def infer(self, body: bytes) -> Future:
        self._slots.acquire()  # back-pressure: the capture side waits while the server is busy
        try:
            future = self._pool.submit(self.client.predict_encoded, body)
        except BaseException:
            self._slots.release()
            raise
        future.add_done_callback(lambda _: self._slots.release())
        return future

    def decode(self, pending: Future, prepared: bytes | None = None) -> Poses:
        return pending.result()

    def predict(self, image_bgr: np.ndarray) -> Poses:
        return self.decode(self.infer(self.prepare(image_bgr)))

    # The batch API of PoseEstimator, for a pipeline that groups frames: each frame stays one request
    # (the server batches requests from all its clients itself).
    def prepare_batch(self, images: Sequence[np.ndarray]) -> list[bytes]:
        return [self.prepare(image) for image in images]

    def infer_batch(self, prepared: Sequence[bytes]) -> list[Future]:
        return [self.infer(body) for body in prepared]

    def decode_batch(self, pending: Sequence[Future], prepared: Sequence[bytes] | None = None) -> list[Poses]:
        return [self.decode(future) for future in pending]

    def predict_batch(self, images: Sequence[np.ndarray]) -> list[Poses]:
        return self.decode_batch(self.infer_batch(self.prepare_batch(images)))

    # -- what the CLI asks of an estimator -----------------------------------------------------------

    def warmup(self, image_hw: Sequence[int] = (480, 640)) -> None:
        """One request of the source's frame size: the server's replicas warm up for it, and a server
        that does not answer is found before the first frame."""
        h, w = (int(v) for v in image_hw)
        self.predict(np.zeros((h, w, 3), np.uint8))

    def describe(self, *, retry_s: float | None = None) -> dict:
        """The server's model facts (``/v1/info``) and where they come from."""
        facts = dict(self.client.info(retry_s=retry_s).get("model", {}))
        facts["server"] = self.client.url
        facts["sent_as"] = self.client.image_format
        facts["max_in_flight"] = self.max_in_flight
        return facts

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)


if TYPE_CHECKING:
    # The pipeline's Estimator protocol, checked by mypy (CI's type check) like the package's own
    # implementations at the end of hhrnet_rt/video/stages.py.
    def _implementation(remote: RemoteEstimator) -> Estimator:
        return remote
