"""Packaging metadata: dependency bounds that let new releases in, one version, the license, the wheel.

The wheel test builds the real wheel (no network: ``--no-build-isolation`` uses the installed setuptools)
and reads what pip would install from it.
"""

from __future__ import annotations

import email
import json
import os
import shutil
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.version import Version

import hhrnet_rt

REPO = Path(__file__).resolve().parents[1]
PYPROJECT = REPO / "pyproject.toml"

pytestmark = pytest.mark.skipif(
    not PYPROJECT.is_file(),
    reason="runs from a source checkout (pyproject.toml), not from an installed wheel",
)


def _project() -> dict:
    return tomllib.loads(PYPROJECT.read_text())["project"]


def _requirements() -> dict[str, Requirement]:
    reqs = [Requirement(r) for r in _project()["dependencies"]]
    return {r.name: r for r in reqs}


def test_torch_has_no_upper_bound():
    torch = _requirements()["torch"]
    # Released after the package was written; must install without a new hhrnet-rt release.
    for newer in ("2.14.0", "2.14.1", "2.15.0", "3.0.0"):
        assert torch.specifier.contains(Version(newer)), (newer, str(torch))
    assert torch.specifier.contains(Version("2.4.0"))
    assert not torch.specifier.contains(Version("2.3.1"))


def test_numpy_bounds_are_left_to_numba_and_opencv_is_capped_at_the_next_major():
    reqs = _requirements()
    assert str(reqs["numpy"].specifier) == ""
    opencv = reqs["opencv-python"].specifier
    assert opencv.contains(Version("5.0.0.93")) and not opencv.contains(Version("6.0.0"))


def test_tensorrt_extras_name_each_cuda_flavour():
    extras = _project()["optional-dependencies"]
    for extra, dist in (
        ("tensorrt", "tensorrt"),
        ("tensorrt-cu12", "tensorrt-cu12"),
        ("tensorrt-cu13", "tensorrt-cu13"),
    ):
        assert [Requirement(r).name for r in extras[extra]] == [dist]


def test_ci_constraints_pin_the_cpu_torch_the_package_accepts():
    pins = [
        Requirement(line)
        for line in (REPO / ".ci" / "constraints.txt").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    torch = next(p for p in pins if p.name == "torch")
    (pinned,) = [Version(s.version) for s in torch.specifier]
    assert _requirements()["torch"].specifier.contains(pinned)
    # README's setup command and CI install with the same file.
    assert "-c .ci/constraints.txt" in (REPO / "README.md").read_text()
    assert "-c .ci/constraints.txt" in (REPO / ".ci" / "run").read_text()


def test_one_version_source_and_spdx_license():
    project = _project()
    assert "version" not in project and "version" in project["dynamic"]
    assert project["license"] == "MIT"
    assert (REPO / "LICENSE").read_text().startswith("MIT License")
    assert not [c for c in project["classifiers"] if c.startswith("License ::")]  # the SPDX field says it
    assert Version(hhrnet_rt.__version__)  # a valid version string


def test_wheel_metadata_and_contents(tmp_path):
    if shutil.which("git") is None:
        pytest.skip("git is needed to copy the checkout")
    # Built from a copy of the tracked files, so stray build/ or egg-info folders of the checkout (or a
    # concurrent build) cannot leak into the result.
    src = tmp_path / "src"
    files = subprocess.run(["git", "ls-files", "-co", "--exclude-standard"], cwd=REPO, capture_output=True,
                           text=True, check=True).stdout.split()  # fmt: skip
    for name in files:
        if (REPO / name).is_file():
            (src / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO / name, src / name)
    proc = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(tmp_path / "dist"), str(src)],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    (wheel,) = (tmp_path / "dist").glob("hhrnet_rt-*.whl")
    with zipfile.ZipFile(wheel) as zf:
        names = zf.namelist()
        (meta_name,) = [n for n in names if n.endswith(".dist-info/METADATA")]
        meta = email.message_from_bytes(zf.read(meta_name))
    assert meta["Version"] == hhrnet_rt.__version__
    assert meta["License-Expression"] == "MIT"
    assert any(n.endswith(".dist-info/licenses/LICENSE") for n in names)
    assert "hhrnet_rt/py.typed" in names
    # The sample clip hhrt demo runs on, its hand-placed keypoints, and where it comes from / its licence.
    assert {f"hhrnet_rt/data/{f}" for f in ("walking.mp4", "walking_frame20_keypoints.json", "README.md",
                                             "LICENSE.vtest")} <= set(names)  # fmt: skip
    assert "hhrnet_rt/decode/parse.py" in names and not [n for n in names if n.startswith("tests/")]
    assert not [n for n in names if n.endswith((".nbi", ".nbc", ".pyc"))]
    requires = [Requirement(r) for r in meta.get_all("Requires-Dist")]
    torch = next(r for r in requires if r.name == "torch" and r.marker is None)
    assert torch.specifier.contains(Version("2.15.0"))
    assert {"tensorrt-cu12", "tensorrt-cu13"} <= set(meta.get_all("Provides-Extra"))
    assert "Typing :: Typed" in meta.get_all("Classifier")


def _fake_wheel(folder: Path, name: str, version: str) -> None:
    """A wheel that carries only metadata: enough for pip's resolver, which never installs it here."""
    dist = f"{name.replace('-', '_')}-{version}"
    with zipfile.ZipFile(folder / f"{dist}-py3-none-any.whl", "w") as zf:
        zf.writestr(
            f"{dist}.dist-info/METADATA", f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n"
        )
        zf.writestr(
            f"{dist}.dist-info/WHEEL",
            "Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
        )
        zf.writestr(f"{dist}.dist-info/RECORD", "")


def test_pip_resolves_a_newer_torch(tmp_path):
    """pip's own resolver, offline, against an index holding torch 2.15.0 and today's newest releases of
    the other dependencies: the install plan must take that torch (an upper bound would refuse it)."""
    index = tmp_path / "index"
    index.mkdir()
    newest = {"torch": "2.15.0", "numpy": "2.5.5", "opencv-python": "5.0.0.93", "numba": "0.68.1"}
    for name in _requirements():
        _fake_wheel(index, name, newest.get(name, "99.0"))
    src = tmp_path / "src"  # only what the build reads, so no egg-info lands in the checkout
    shutil.copytree(REPO / "hhrnet_rt", src / "hhrnet_rt", ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("pyproject.toml", "README.md", "LICENSE"):
        shutil.copy2(REPO / name, src / name)
    # No pip configuration of this machine (its index, find-links or constraints) takes part.
    env = {k: v for k, v in os.environ.items() if not k.startswith("PIP_")}
    env["PIP_CONFIG_FILE"] = os.devnull
    report = tmp_path / "report.json"
    proc = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--dry-run", "--ignore-installed", "--no-build-isolation",
         "--no-index", "--find-links", str(index), "--report", str(report), "--quiet", str(src)],
        capture_output=True, text=True, timeout=300, env=env,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    plan = {
        item["metadata"]["name"]: item["metadata"]["version"]
        for item in json.loads(report.read_text())["install"]
    }
    assert plan["torch"] == "2.15.0"
    assert plan["hhrnet-rt"] == hhrnet_rt.__version__
