"""One case-insensitive rule for what kind of file a path names (hhrnet_rt.artifacts.file_kind).

Before it, the suffix was checked in five places with two case rules: ``PoseEstimator(engine="t.ONNX")``
read the file as ONNX (lower-cased suffix) but chose and built its backend as if no file were given
(case-sensitive ``endswith(".onnx")``), and died with ``AttributeError: 'NoneType' object has no attribute
'num_joints'``.
"""

from __future__ import annotations

import shutil

import numpy as np
import pytest

from hhrnet_rt import PoseEstimator
from hhrnet_rt.artifacts.engine_settings import read_engine_settings
from hhrnet_rt.artifacts.file_kind import FileKind, file_kind
from hhrnet_rt.core.errors import InputError
from hhrnet_rt.runtime.backends.select import choose_backend

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.mark.parametrize(
    ("name", "kind"),
    [
        ("m.onnx", FileKind.onnx), ("m.ONNX", FileKind.onnx), ("m.Onnx", FileKind.onnx),
        ("m.xml", FileKind.openvino), ("m.XML", FileKind.openvino),
        ("m.engine", FileKind.engine), ("m.Engine", FileKind.engine), ("m.PLAN", FileKind.engine),
        ("m.trt", FileKind.engine), ("dir.onnx/m.txt", None), ("m", None), (None, None),
    ],
)  # fmt: skip
def test_kind_from_suffix_in_any_case(name, kind):
    assert file_kind(name) is kind


@pytest.mark.parametrize("suffix", [".ONNX", ".Onnx"])
def test_auto_backend_takes_an_upper_case_onnx_as_onnx(suffix, tmp_path):
    name, _device, reason = choose_backend("auto", engine=tmp_path / f"m{suffix}", device=None)
    assert name == "onnxruntime" and "is an ONNX file" in reason


@pytest.mark.parametrize("suffix", [".ONNX", ".Onnx"])
def test_estimator_runs_an_upper_case_onnx_like_a_lower_case_one(
    suffix, tiny_onnx_build, tmp_path, golden_npz
):
    lower, upper = tmp_path / "t.onnx", tmp_path / f"u{suffix}"
    shutil.copy(tiny_onnx_build.onnx_path, lower)  # lone files: settings from their ONNX metadata
    shutil.copy(tiny_onnx_build.onnx_path, upper)
    image = np.ascontiguousarray(golden_npz("pipeline_case")["image_rgb_uint8"][:, :, ::-1])
    want = PoseEstimator(engine=lower, backend="auto", device="cpu", onnx_threads=1).predict(image)
    est = PoseEstimator(engine=upper, backend="auto", device="cpu", onnx_threads=1)
    assert est.backend.name == "onnxruntime" and est.num_joints == 17
    got = est.predict(image)
    assert len(want) > 0
    np.testing.assert_array_equal(got.keypoints, want.keypoints)  # the same file on the same backend


def test_an_upper_case_engine_is_read_as_an_engine(tmp_path):
    engine = tmp_path / "m.Engine"
    engine.write_bytes(b"not really an engine")
    with pytest.raises(InputError, match="has no sidecar m.json"):  # the engine rule, not "unknown kind"
        read_engine_settings(engine)


def test_an_upper_case_xml_is_read_as_an_openvino_model(tmp_path):
    ir = tmp_path / "m.XML"
    ir.write_text("<net/>")
    with pytest.raises(InputError, match="not an OpenVINO model from `hhrt build-engine --target openvino`"):
        read_engine_settings(ir)
