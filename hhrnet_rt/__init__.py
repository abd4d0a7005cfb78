"""hhrnet-rt: real-time multi-person 2D pose estimation with HigherHRNet.

Heavy modules (torch, onnxruntime, tensorrt, av) load only when the names that need them are used, so
``import hhrnet_rt`` stays cheap.

Example:
    >>> from hhrnet_rt import PoseEstimator           # doctest: +SKIP
    >>> poses = PoseEstimator("w32_512").predict(cv2.imread("people.jpg"))  # doctest: +SKIP
"""

from __future__ import annotations

from hhrnet_rt.core.threads import configure_threads

configure_threads()  # before anything imports torch (see hhrnet_rt/core/threads.py)

from hhrnet_rt._version import __version__  # noqa: E402
from hhrnet_rt.poses import Poses  # noqa: E402

__all__ = ["PoseEstimator", "Poses", "__version__"]


def __getattr__(name: str):
    # Lazy: PoseEstimator brings torch, ONNX and Numba, which ``import hhrnet_rt`` must not pay for.
    if name == "PoseEstimator":
        from hhrnet_rt.runtime.estimator import PoseEstimator

        return PoseEstimator
    raise AttributeError(f"module 'hhrnet_rt' has no attribute {name!r}")
