"""Each rule has one home: every caller gives the same answer with the same words."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from hhrnet_rt.core.errors import InputError
from hhrnet_rt.core.sizes import check_input_size, is_valid_input_size


@pytest.mark.parametrize("size", [0, 32, 500, 513, 64.5, True, "512", float("nan")])
def test_every_input_size_check_refuses_the_same_sizes(size, tmp_path):
    from hhrnet_rt.artifacts.engine_settings import _META_TYPES
    from hhrnet_rt.artifacts.sidecar import schema_problems
    from hhrnet_rt.export.build import build_onnx_files

    with pytest.raises(InputError, match="input size must be"):
        check_input_size(size)
    assert not is_valid_input_size(size)
    assert not _META_TYPES["input_size"](size)  # what an .onnx file's metadata may say
    good = {k: None for k in ("name", "package_version", "created_utc", "weights", "input_name")}
    sidecar = dict(good, precision="fp16", input_size=size, flip=True, num_joints=17, output_names=[],
                   shape_profile={}, onnx={}, calibration=None, agreement=None, tensorrt=None)  # fmt: skip
    assert any("input_size" in p for p in schema_problems(sidecar))
    with pytest.raises(InputError, match="input size must be"):
        build_onnx_files("random", "fp32", input_size=size, out_dir=tmp_path)


@pytest.mark.parametrize("size", [64, 512, 640, 1024])
def test_every_input_size_check_accepts_the_same_sizes(size):
    from hhrnet_rt.artifacts.engine_settings import _META_TYPES

    assert check_input_size(size) == size and is_valid_input_size(size) and _META_TYPES["input_size"](size)


def test_cli_input_size_message_is_the_librarys():
    from hhrnet_rt.cli import app

    result = CliRunner().invoke(app, ["image", "x.jpg", "--out", "o", "--input-size", "500"])
    assert result.exit_code == 2
    message = " ".join(result.output.replace("│", " ").split())
    assert "nearest valid sizes: 448 or 512" in message


def test_precision_and_backend_names_come_from_the_library():
    from hhrnet_rt.artifacts import sidecar
    from hhrnet_rt.cli.options import BackendName as CliBackend
    from hhrnet_rt.cli.options import Precision as CliPrecision
    from hhrnet_rt.core.names import BACKEND_REQUESTS, PRECISIONS, BackendName

    assert tuple(p.value for p in CliPrecision) == PRECISIONS == sidecar.PRECISIONS
    assert tuple(b.value for b in CliBackend) == BACKEND_REQUESTS == ("auto", *(b.value for b in BackendName))
    assert json.dumps({"backend": BackendName.torch}) == '{"backend": "torch"}'  # serialises as its name


def test_onnx_interface_names_have_one_home():
    from hhrnet_rt.artifacts import sidecar
    from hhrnet_rt.export import build
    from hhrnet_rt.runtime.backends import onnxruntime_backend

    assert (sidecar.INPUT_NAME, sidecar.OUTPUT_NAMES) == ("image", ("heatmaps", "tags"))
    assert (onnxruntime_backend.INPUT_NAME, onnxruntime_backend.OUTPUT_NAMES) == (
        sidecar.INPUT_NAME,
        sidecar.OUTPUT_NAMES,
    )
    assert set(build.DYNAMIC_AXES) == {sidecar.INPUT_NAME, *sidecar.OUTPUT_NAMES}
    profile = {"min": [1, 3, 64, 64], "opt": [1, 3, 512, 512], "max": [1, 3, 1024, 1024]}
    blank = sidecar.Sidecar(name="n", precision="fp32", input_size=512, flip=True, weights="w", num_joints=17,
                            shape_profile=profile, onnx={})  # fmt: skip
    assert (blank.input_name, tuple(blank.output_names)) == (sidecar.INPUT_NAME, sidecar.OUTPUT_NAMES)
