"""Serving poses over HTTP with Ray Serve (``hhrt serve``) and the clients that use it.

The clients need no Ray: :class:`PoseClient` (Python) and :class:`RemoteEstimator` (the stages of
``hhrt video/webcam --server URL``) use the standard library. The server needs the ``ray`` extra
(``pip install -e ".[ray]"``): :func:`start_server` imports Ray only when called.

Example:
    >>> from hhrnet_rt.serve import PoseClient                       # doctest: +SKIP
    >>> PoseClient("http://127.0.0.1:8000").predict(image).scores     # doctest: +SKIP
"""

from __future__ import annotations

from hhrnet_rt.serve.client import PoseClient
from hhrnet_rt.serve.handler import ServeSettings
from hhrnet_rt.serve.protocol import RequestRejected, ServerUnavailable
from hhrnet_rt.serve.remote import RemoteEstimator
from hhrnet_rt.serve.server import start_server, stop_server

__all__ = [
    "PoseClient",
    "RemoteEstimator",
    "RequestRejected",
    "ServeSettings",
    "ServerUnavailable",
    "start_server",
    "stop_server",
]
