"""What an installed package needs besides its Python files. ``.ci/wheel-smoke`` runs this module against
the built wheel installed outside the checkout (it sets ``HHRT_EXPECT_INSTALLED_AT``); the normal suite
runs the parts that hold for a checkout too.
"""

from __future__ import annotations

import importlib.metadata
import os
from pathlib import Path

import pytest

import hhrnet_rt

PACKAGE_DIR = Path(hhrnet_rt.__file__).resolve().parent
INSTALLED_AT = os.environ.get("HHRT_EXPECT_INSTALLED_AT")
from_wheel = pytest.mark.skipif(not INSTALLED_AT, reason="only against an installed wheel (.ci/wheel-smoke)")


def test_ships_type_hints_marker():
    assert (PACKAGE_DIR / "py.typed").is_file()


def test_the_sample_clip_ships_and_decodes():
    from hhrnet_rt.data import sample_frame, sample_keypoints, sample_video

    assert sample_video().is_file() and sample_video().stat().st_size <= 2_000_000  # the limit
    index, keypoints = sample_keypoints()
    assert sample_frame(index).shape == (576, 768, 3) and keypoints.shape[1:] == (17, 3)
    with pytest.raises(IndexError, match="frames 0 to 39"):
        sample_frame(40)


def test_numba_cache_is_outside_the_package():
    from hhrnet_rt import decode
    from hhrnet_rt.decode import cache

    assert decode.munkres([[1.0, 2.0], [2.0, 1.0]]).tolist() == [[0, 0], [1, 1]]
    assert cache.CACHE_USABLE
    # Beside the sources it would be left behind by `pip uninstall` (or fail on a read-only install).
    assert not cache.kernel_cache_dir().is_relative_to(PACKAGE_DIR)


@from_wheel
def test_imported_from_the_installed_wheel():
    assert PACKAGE_DIR.is_relative_to(Path(INSTALLED_AT).resolve())


@from_wheel
def test_installed_metadata_matches_the_package():
    dist = importlib.metadata.distribution("hhrnet-rt")
    assert dist.version == hhrnet_rt.__version__
    assert dist.metadata["License-Expression"] == "MIT"
    assert (dist.read_text("licenses/LICENSE") or "").startswith("MIT License")
    assert any(ep.value == "hhrnet_rt.cli:main" for ep in dist.entry_points if ep.name == "hhrt")


def test_end_to_end_predict_runs(one_torch_thread):
    """Model, preprocessing, decode and back-projection all load and run from where the package is."""
    import numpy as np

    from hhrnet_rt import PoseEstimator, Poses

    estimator = PoseEstimator("random", input_size=64, backend="torch", device="cpu")
    poses = estimator.predict(np.zeros((48, 80, 3), np.uint8))
    assert isinstance(poses, Poses) and poses.keypoints.shape[1:] == (17, 3)
