"""Small HTTP endpoints a run serves beside its work (metrics and health now; a live view later), with no
dependency beyond the standard library: :class:`~hhrnet_rt.endpoints.http.EndpointServer`."""

from hhrnet_rt.endpoints.http import EndpointServer, Reply

__all__ = ["EndpointServer", "Reply"]
