"""Builds and caches, round two (issue 19): ``build-engine`` outputs that are checked first and removed when
the build fails, permissions, names, and temporaries a killed export leaves in the cache.

Each test failed on the code before the issue's fixes (the issue's item number is in its docstring).
"""

from __future__ import annotations

import json
import os
import stat
import time
from pathlib import Path

import cv2
import numpy as np
import pytest
from typer.testing import CliRunner

from hhrnet_rt.cli import app
from hhrnet_rt.cli.app import EXIT_INPUT

runner = CliRunner()
pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture
def cwd(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HHRT_CACHE_DIR", str(tmp_path / "cache"))
    return tmp_path


def _invoke(args):
    result = runner.invoke(app, [str(a) for a in args])
    assert "Traceback" not in result.output, result.output
    return result


# -- item 9: --out that cannot be used ------------------------------------------------------------------------


@pytest.mark.parametrize("where", ["a-file", "under-a-file"])
def test_build_out_that_cannot_be_a_folder_is_one_line(cwd, tiny_weights, where):
    """Item 9: ``build-engine --out`` onto an existing file (or a folder that cannot be made) ended in a
    FileExistsError / NotADirectoryError traceback, exit 1."""
    (cwd / "taken").write_text("the user's file")
    out = cwd / "taken" if where == "a-file" else cwd / "taken" / "engines"
    result = _invoke(
        ["build-engine", "--weights", tiny_weights, "--precision", "fp32", "--target", "cpu", "--out", out]
    )
    assert result.exit_code == EXIT_INPUT, result.output
    assert "output directory" in result.output
    assert (cwd / "taken").read_text() == "the user's file"


# -- item 20: what a build leaves -----------------------------------------------------------------------------


def test_an_interrupted_int8_build_leaves_nothing_and_no_calibration_folder(cwd, tiny_weights, monkeypatch):
    """Item 20: a failed or interrupted int8 build left NAME.fp32.onnx (so the rerun refused: "already
    exists"), and every build made ./calibration/ where it ran, even with --calib elsewhere."""
    from hhrnet_rt.export import build

    photos = cwd / "photos"
    photos.mkdir()
    cv2.imwrite(str(photos / "p.png"), np.full((48, 64, 3), 90, np.uint8))
    asked = []

    def interrupted(fp32_path, onnx_path, *, cache_path, **options):
        asked.append(Path(cache_path))
        assert fp32_path.is_file()  # the export is done: the interrupt comes after work was written
        raise KeyboardInterrupt

    monkeypatch.setattr(build, "quantize_int8_cpu", interrupted)
    # The export itself is not what is tested (and costs seconds): a file in its place.
    monkeypatch.setattr(
        build, "export_graph", lambda network, path, **options: Path(path).write_bytes(b"onnx")
    )
    with pytest.raises(KeyboardInterrupt):
        build.build_onnx_files(tiny_weights, "int8", input_size=64, flip=False, calib=photos, calib_count=1,
                               out_dir=cwd / "eng", target="cpu")  # fmt: skip
    assert list((cwd / "eng").iterdir()) == [], (
        "the interrupted build's files must be gone (a rerun would refuse)"
    )
    assert asked and asked[0].is_relative_to(cwd / "cache"), "range caches go to hhrt's cache folder"
    assert not (cwd / "calibration").exists()


def test_build_outputs_have_the_permissions_of_their_sidecar(tiny_onnx_build):
    """Item 20: the ONNX file came from mkstemp (mode 0600) while its sidecar got the umask's mode."""
    onnx, sidecar = tiny_onnx_build.onnx_path, tiny_onnx_build.sidecar_path
    assert stat.S_IMODE(onnx.stat().st_mode) == stat.S_IMODE(sidecar.stat().st_mode)
    assert not [p for p in onnx.parent.iterdir() if p.name.startswith(".")]


def test_default_build_names_tell_max_batch_apart():
    """Item 20: ``--max-batch 8`` and the default build wrote the same file names (the second refused)."""
    from hhrnet_rt.export.build import default_name

    one = default_name("w32_512", "fp16", 512, True)
    assert one == "w32_512-512-fp16"
    assert default_name("w32_512", "fp16", 512, True, max_batch=1) == one
    assert default_name("w32_512", "fp16", 512, True, max_batch=8) == "w32_512-512-fp16-b8"


# -- item 21: temporaries of killed exports -------------------------------------------------------------------


def test_an_export_writes_a_temporary_hhrt_can_recognise(tmp_path, tiny_network):
    """Item 21: an export's temporary was a mkstemp name (``.NAME.xyz.onnx``) that nothing recognised, so
    one left by a killed export (~115 MB for W32) stayed in the cache for ever."""
    import torch

    from hhrnet_rt.core.temporaries import is_temporary
    from hhrnet_rt.model import onnx_export
    from hhrnet_rt.model.graph import PoseGraph

    seen = []

    def killed(module, args, tmp, *rest):
        seen.append(Path(tmp))
        raise KeyboardInterrupt  # as if the run were stopped mid-export

    graph = PoseGraph(tiny_network, flip=False).eval()
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(onnx_export, "_run_exporter", killed)
        with pytest.raises(KeyboardInterrupt):
            onnx_export.export_onnx(graph, tmp_path / "g.onnx", example_input=torch.zeros(1, 3, 64, 64),
                                    input_names=["image"], output_names=["heatmaps", "tags"], dynamic_axes={})  # fmt: skip
    assert seen and is_temporary(seen[0]) and seen[0].parent == tmp_path


def test_cache_clear_and_info_find_what_killed_runs_left(cwd):
    """Item 21: ``hhrt info`` and ``hhrt cache clear`` never saw a killed export's temporary."""
    from hhrnet_rt.core.temporaries import STALE_AFTER_S, temporary_name

    onnx_dir = cwd / "cache" / "onnx"
    onnx_dir.mkdir(parents=True)
    left = temporary_name(onnx_dir / "abc.onnx", "p999999999-0badf00d")  # a process that is gone
    live = temporary_name(onnx_dir / "def.onnx", f"p{os.getpid()}-00000000")  # this one: still writing
    for path in (left, live):
        path.write_bytes(b"x" * 1000)
        then = time.time() - STALE_AFTER_S - 60
        os.utime(path, (then, then))
    facts = json.loads(_invoke(["info", "--json"]).output)
    assert facts["stale_temporaries"] == {"files": 1, "bytes": 1000}
    result = _invoke(["cache", "clear"])
    assert result.exit_code == 0, result.output
    assert "temporaries left by killed runs: 1 file" in result.output
    assert not left.exists() and live.exists()


def test_a_full_cache_disk_has_its_documented_exit_code(cwd, monkeypatch):
    """Item 23: a full disk while writing a cache ended as exit 1 ("internal error") with a traceback,
    not the documented code for a full disk (8) and one line."""
    import errno

    from hhrnet_rt.cli import info
    from hhrnet_rt.cli.app import EXIT_DISK_FULL

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device", str(cwd / "cache" / "onnx" / "x.onnx"))

    monkeypatch.setattr(info, "collect", full)  # stands in for any write into a full cache
    result = _invoke(["info"])
    assert result.exit_code == EXIT_DISK_FULL, result.output
    assert "no space left on the device writing" in result.output and "hhrt cache clear" in result.output
