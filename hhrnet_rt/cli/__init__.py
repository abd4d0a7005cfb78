"""Command-line interface ``hhrt``: one module per group of commands, all registered on one Typer app.

A folder rather than one ``cli.py`` so each command group stays a small module (STYLE.md 14).
"""

from __future__ import annotations

from hhrnet_rt.cli import bench, cache, engine, info, media, serve, weights  # noqa: F401  (each registers its commands)
from hhrnet_rt.cli.app import app


def main() -> None:
    """Console-script entry point."""
    app()
