"""Every implementation of the package's protocols satisfies it, as the type checker sees it.

``Backend``, ``Estimator``, ``Source`` and ``Sink`` are structural (``typing.Protocol``): nothing at run time
says that a class fits one, and a backend that cannot run on this machine (TensorRT, CUDA) is never even
constructed here. So each protocol's implementations are checked by mypy, in blocks under
``if TYPE_CHECKING`` next to them; this test runs mypy over those modules and fails on any error there.
CI's mypy step checks the whole package; this keeps the check where a test run shows it, with the reason.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("mypy")

ROOT = Path(__file__).resolve().parents[1]

# The modules that hold the checks (each block lists its protocol's implementations).
CHECKS = (
    "hhrnet_rt/runtime/backends/__init__.py",  # Backend: torch, torch CUDA, ONNX Runtime, OpenVINO, TensorRT
    "hhrnet_rt/video/stages.py",  # Estimator (PoseEstimator), Source, Sink
    "hhrnet_rt/serve/remote.py",  # Estimator (RemoteEstimator)
)


def test_every_implementation_satisfies_its_protocol():
    # The project's mypy settings; its cache (.mypy_cache) makes a second run take about a second.
    result = subprocess.run(
        [sys.executable, "-m", "mypy", "--config-file", "pyproject.toml", *CHECKS],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    # mypy also reports what it finds in the modules these import; only the checks' own files count here.
    errors = [line for line in result.stdout.splitlines() if line.startswith(CHECKS)]
    assert result.returncode in (0, 1), result.stdout + result.stderr  # 2: mypy itself failed
    assert not errors, "\n".join(errors)
