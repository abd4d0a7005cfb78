"""Small HTTP endpoints a run serves beside its work (metrics and health, the live view in a browser), with
no dependency beyond the standard library, OpenCV and numpy: :class:`~hhrnet_rt.endpoints.http.EndpointServer`,
:class:`~hhrnet_rt.endpoints.view.LiveView`."""

from hhrnet_rt.endpoints.http import EndpointServer, Reply
from hhrnet_rt.endpoints.view import LiveView

__all__ = ["EndpointServer", "LiveView", "Reply"]
