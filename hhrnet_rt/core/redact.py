"""Credentials out of everything hhrt shows or writes: the one function that hides them.

Cameras are usually reached as ``rtsp://admin:secret@10.0.0.7/stream`` or with the secret in the query
(``?user=admin&password=secret``, ``?token=...``). Such a URL ends up in stream names, progress bars,
error messages (FFmpeg quotes the URL it failed on), the JSON header, the summary table and metric labels.
Every one of those passes through :func:`redact`, which works on any text (a URL alone or a message that
quotes one), so a secret cannot leak by a path nobody thought of.

Example:
    >>> redact("rtsp://admin:s3cret@10.0.0.7:554/live?channel=1&password=x")
    'rtsp://***@10.0.0.7:554/live?channel=1&password=***'
    >>> redact("could not open http://user@cam.local/mjpg (Connection refused)")
    'could not open http://***@cam.local/mjpg (Connection refused)'
    >>> redact("walk.mp4")
    'walk.mp4'
"""

from __future__ import annotations

import re

#: What replaces a secret.
MASK = "***"

# scheme://userinfo@ : the userinfo (user, or user:password) is everything up to the last "@" before the
# host's end (a password may itself contain "@" when its writer forgot to escape it).
_USERINFO = re.compile(r"(?P<scheme>\b[a-zA-Z][a-zA-Z0-9+.-]*://)(?P<userinfo>[^\s/?#]*@)")
# Query or fragment parameters whose value is a secret, by the names cameras and services use.
_SECRET_PARAMS = re.compile(
    r"(?P<key>[?&;#][\w.-]*(?:pass|pwd|secret|token|credential|key|auth|sig)[\w.-]*=)(?P<value>[^&;#\s'\"]*)",
    re.IGNORECASE,
)


def redact(text: str) -> str:
    """``text`` with the user information of every URL in it and the values of secret-looking query
    parameters (password, token, key, auth, signature ...) replaced by ``***``."""
    text = _USERINFO.sub(lambda m: f"{m['scheme']}{MASK}@", text)
    return _SECRET_PARAMS.sub(lambda m: f"{m['key']}{MASK}", text)
