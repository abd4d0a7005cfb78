"""The upload page of ``hhrt serve`` (``GET /``): drop an image, see it drawn and its JSON beside it.

One self-contained HTML file (``page.html``: inline CSS and JavaScript, nothing fetched from elsewhere,
so it works on a machine without internet). It posts the image to ``/v1/poses`` (with the bearer token
typed into it, when the server has one) and draws the answer on a canvas. What it draws with is the
package's: the skeleton of the served model's joint count, the person colours, the thresholds and line
width of :class:`~hhrnet_rt.overlay.PoseStyle`, injected here as JSON, so the page and ``hhrt image``
draw people alike.
"""

from __future__ import annotations

import json
from importlib import resources

from hhrnet_rt.core.skeleton import skeleton_for
from hhrnet_rt.overlay import LINE_WIDTH_SHARE, MIN_LINE_WIDTH, PoseStyle, text_color_on
from hhrnet_rt.serve.protocol import POSES_PATH

PAGE_PATH = "/"
_SLOT = "/*HHRT_CONFIG*/"


def _css(bgr: tuple[int, int, int]) -> str:
    b, g, r = bgr
    return f"#{r:02x}{g:02x}{b:02x}"


def page_config(num_joints: int, *, token: bool, max_bytes: int, style: PoseStyle | None = None) -> dict:
    """What the page's script draws and uploads with."""
    style = style or PoseStyle()
    return {
        "poses_path": POSES_PATH,
        "token": token,
        "max_bytes": max_bytes,
        "skeleton": [list(edge) for edge in skeleton_for(num_joints)],
        "colors": [_css(c) for c in style.colors],
        "text_colors": [_css(text_color_on(c)) for c in style.colors],
        "score_threshold": style.score_threshold,
        "person_threshold": style.person_threshold,
        "line_width_share": LINE_WIDTH_SHARE,
        "min_line_width": MIN_LINE_WIDTH,
    }


def upload_page(num_joints: int, *, token: bool, max_bytes: int) -> bytes:
    """The page as UTF-8 bytes, its configuration filled in.

    Args:
        num_joints: the served model's joint count (its skeleton is drawn).
        token: the server wants a bearer token (the page shows a field for it).
        max_bytes: the server's body limit (the page refuses larger files before sending them).
    """
    template = resources.files("hhrnet_rt.serve").joinpath("page.html").read_text("utf-8")
    # "<" escaped: nothing in the JSON can close the <script> element it sits in.
    config = json.dumps(page_config(num_joints, token=token, max_bytes=max_bytes)).replace("<", "\\u003c")
    return template.replace(_SLOT, config, 1).encode("utf-8")
