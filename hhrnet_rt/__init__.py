"""hhrnet-rt: real-time multi-person 2D pose estimation with HigherHRNet.

Heavy modules (torch, onnxruntime, tensorrt, av) load only when the names that need them are used, so
``import hhrnet_rt`` stays cheap.

Example:
    >>> from hhrnet_rt import PoseEstimator           # doctest: +SKIP
    >>> poses = PoseEstimator("w32_512").predict(cv2.imread("people.jpg"))  # doctest: +SKIP
"""

from __future__ import annotations

from hhrnet_rt.threads import configure_threads

configure_threads()  # before anything imports torch (see hhrnet_rt/threads.py)

from hhrnet_rt.poses import Poses  # noqa: E402

# The one source of the version: pyproject.toml reads it from here at build time (dynamic version), so
# the package metadata and ``hhrnet_rt.__version__`` cannot disagree.
__version__ = "0.1.0"
__all__ = ["PoseEstimator", "Poses", "__version__"]


def __getattr__(name: str):
    if name == "PoseEstimator":
        from hhrnet_rt.estimator import PoseEstimator

        return PoseEstimator
    raise AttributeError(f"module 'hhrnet_rt' has no attribute {name!r}")
