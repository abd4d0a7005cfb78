"""The one source of the version: pyproject.toml reads it from here at build time (dynamic version), so
the package metadata and ``hhrnet_rt.__version__`` cannot disagree. A leaf: it imports nothing."""

__version__ = "0.1.0"
