"""Command-line interface ``hhrt``: one module per group of commands, all registered on one Typer app.

A folder rather than one ``cli.py`` so each command group stays a small module (STYLE.md 14).
"""

from __future__ import annotations

# Each module registers its commands, and `hhrt --help` lists them in that order (sub-groups such as
# cache and weights after the commands): demo first, video, webcam and image side by side, then convert.
from hhrnet_rt.cli import demo  # noqa: F401

# isort: split
from hhrnet_rt.cli import bench, val  # noqa: F401

# isort: split
from hhrnet_rt.cli import cache, engine, info, media  # noqa: F401

# isort: split
from hhrnet_rt.cli import webcam  # noqa: F401

# isort: split
from hhrnet_rt.cli import image  # noqa: F401

# isort: split
from hhrnet_rt.cli import convert  # noqa: F401  (after image: it reads what video/webcam/image wrote)

# isort: split
from hhrnet_rt.cli import serve, weights  # noqa: F401
from hhrnet_rt.cli.app import app


def main() -> None:
    """Console-script entry point."""
    app()
