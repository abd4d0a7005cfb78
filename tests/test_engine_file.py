"""An engine or .onnx file from `hhrt build-engine` is self-contained: settings from its sidecar and ONNX
metadata, conflicts refused, foreign or damaged files refused with a message (hhrnet_rt.artifacts.engine_settings).

One tiny fp32 no-flip build at input size 64 (the golden tiny model) serves the module: fast to export,
and "no flip" makes the default (flip on) visibly overridden by the file.
"""

from __future__ import annotations

import json
import shutil

import numpy as np
import onnx
import pytest
from typer.testing import CliRunner

from hhrnet_rt import PoseEstimator
from hhrnet_rt.artifacts.engine_settings import META_PREFIX, read_engine_settings, resolve_options
from hhrnet_rt.artifacts.runnable import file_for_backend
from hhrnet_rt.artifacts.sidecar import Sidecar, sha256_file
from hhrnet_rt.cli import app
from hhrnet_rt.cli.app import EXIT_ENGINE_MISMATCH, EXIT_INPUT
from hhrnet_rt.core.errors import EngineMismatchError, InputError
from hhrnet_rt.model.onnx_export import write_metadata
from hhrnet_rt.runtime.engine_checks import check_weights_match

pytestmark = pytest.mark.usefixtures("one_torch_thread")
runner = CliRunner()


@pytest.fixture(scope="module")
def built(tiny_onnx_build):
    return tiny_onnx_build


def _copy(built, tmp_path, *, sidecar=True):
    """The build's .onnx (and sidecar) copied into a fresh folder, so a test may damage them."""
    shutil.copy(built.onnx_path, tmp_path / "t.onnx")
    if sidecar:
        shutil.copy(built.sidecar_path, tmp_path / "t.json")
    return tmp_path / "t.onnx"


def test_metadata_and_sidecar_record_the_build(built, tiny_weights):
    from hhrnet_rt.export.build import load_network
    from hhrnet_rt.model.digest import state_dict_digest

    props = {p.key: p.value for p in onnx.load(str(built.onnx_path)).metadata_props}
    assert json.loads(props[META_PREFIX + "num_joints"]) == 17
    assert json.loads(props[META_PREFIX + "flip"]) is False
    assert json.loads(props[META_PREFIX + "input_size"]) == 64
    assert json.loads(props[META_PREFIX + "shape_profile"])["min"] == [1, 3, 64, 64]
    digest = state_dict_digest(load_network(tiny_weights))
    assert json.loads(props[META_PREFIX + "weights_sha256"]) == digest == built.sidecar.weights_sha256
    # The sidecar's hash is of the final file, metadata included.
    assert Sidecar.read(built.sidecar_path).onnx["sha256"] == sha256_file(built.onnx_path)


def test_onnx_runs_without_weights_and_matches_torch(built, tiny_weights, golden_bgr):
    est = PoseEstimator(None, engine=built.onnx_path, backend="onnxruntime", onnx_threads=1)
    facts = est.describe()
    assert (est.flip, est.input_size, est.num_joints) == (False, 64, 17)  # all from the file
    assert est.graph is None and "built into" in facts["weights"]
    ref = PoseEstimator(tiny_weights, input_size=64, flip=False, backend="torch")
    got, want = est.predict(golden_bgr), ref.predict(golden_bgr)
    assert len(got) == len(want) > 0
    # ONNX Runtime vs torch on the same fp32 graph: outputs differ by ~1e-6 (export docstring); keypoints
    # pass through argmax + quarter-pixel adjust, so allow a small sub-pixel tolerance.
    np.testing.assert_allclose(got.keypoints, want.keypoints, rtol=0, atol=1e-2)


def test_a_lone_onnx_file_still_knows_its_settings(built, tmp_path):
    lone = _copy(built, tmp_path, sidecar=False)
    settings = read_engine_settings(lone)
    assert (settings.flip, settings.input_size, settings.num_joints) == (False, 64, 17)
    assert settings.origin == "its ONNX metadata"
    est = PoseEstimator(engine=lone, backend="onnxruntime", onnx_threads=1)
    assert (est.flip, est.input_size) == (False, 64)


def test_explicit_options_that_contradict_the_file_are_errors(built, tiny_weights):
    settings = read_engine_settings(built.onnx_path)
    assert resolve_options(settings, flip=False, input_size=128) == (False, 128)  # dynamic axes: any size
    with pytest.raises(InputError, match="built without the flip test.*flip=True was asked"):
        PoseEstimator(None, engine=built.onnx_path, backend="onnxruntime", flip=True)
    with pytest.raises(InputError, match="are not the weights .* was built from"):
        PoseEstimator("random", engine=built.onnx_path, backend="onnxruntime")
    # The right weights are shown to match (by digest) and accepted.
    est = PoseEstimator(tiny_weights, engine=built.onnx_path, backend="onnxruntime", onnx_threads=1)
    assert est.flip is False
    with pytest.raises(InputError, match="cannot run"):
        PoseEstimator(None, engine=built.onnx_path, backend="torch")


def test_file_without_a_weights_record_refuses_weights(built, tmp_path, tiny_weights):
    from hhrnet_rt.export.build import load_network

    settings = read_engine_settings(built.onnx_path)
    bare = type(settings)(**{**settings.__dict__, "weights_sha256": None})
    with pytest.raises(InputError, match="does not record which weights"):
        check_weights_match(bare, load_network(tiny_weights), "w")


def test_garbage_and_foreign_onnx_files(built, tmp_path):
    garbage = tmp_path / "garbage.onnx"
    garbage.write_bytes(b"\x08\x07\x12\x04junk" * 100)
    with pytest.raises(InputError, match="not a readable ONNX model"):
        read_engine_settings(garbage)

    from onnx import TensorProto, helper

    node = helper.make_node("Identity", ["x"], ["y"])
    graph = helper.make_graph([node], "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1])])  # fmt: skip
    foreign = tmp_path / "other.onnx"
    onnx.save(helper.make_model(graph), foreign)
    with pytest.raises(InputError, match="not a pose graph from hhrnet-rt"):
        read_engine_settings(foreign)

    # Right names, another joint count in the metadata than the graph computes: refused, not run.
    wrong = _copy(built, tmp_path, sidecar=False)
    write_metadata(wrong, {META_PREFIX + "num_joints": "14"})
    with pytest.raises(InputError, match=r"not a 14-joint pose graph: it returns heatmaps \(1, 17, 64, 64\)"):
        PoseEstimator(engine=wrong, backend="onnxruntime", onnx_threads=1)
    write_metadata(wrong, {META_PREFIX + "num_joints": "17", META_PREFIX + "flip": '"yes"'})
    with pytest.raises(InputError, match="metadata hhrnet_rt.flip .* is malformed"):
        read_engine_settings(wrong)
    with pytest.raises(InputError, match="engine takes"):
        read_engine_settings(built.sidecar_path)


def test_sidecar_must_describe_this_onnx_file(built, tmp_path):
    path = _copy(built, tmp_path)
    write_metadata(path, {META_PREFIX + "note": '"edited after the build"'})  # bytes change, still valid
    with pytest.raises(EngineMismatchError, match="is not the ONNX file its sidecar describes"):
        read_engine_settings(path)


def _fake_engine(built, tmp_path, *, with_onnx=True, **trt_extra):
    """An .engine (arbitrary bytes) beside a sidecar from the real build with TensorRT facts added."""
    engine = tmp_path / "t.engine"
    engine.write_bytes(b"serialized engine bytes")
    sidecar = Sidecar.read(built.sidecar_path)
    sidecar.tensorrt = {"version": "10.12.0", "gpu_name": "X", "compute_capability": [9, 0],
                        "engine_file": "t.engine", "workspace_gib": 1.0, "io": [],
                        "engine_sha256": sha256_file(engine), **trt_extra}  # fmt: skip
    sidecar.write(tmp_path / "t.json")
    if with_onnx:
        shutil.copy(built.onnx_path, tmp_path / "t.onnx")
    return engine


def test_engine_settings_profile_and_sibling_onnx(built, tmp_path):
    engine = _fake_engine(built, tmp_path)
    settings = read_engine_settings(engine)
    assert (settings.kind, settings.flip, settings.input_size) == ("engine", False, 64)
    assert resolve_options(settings, flip=None, input_size=None) == (False, 64)
    with pytest.raises(InputError, match="input size 256 is outside the shape profile"):
        resolve_options(settings, flip=None, input_size=256)
    # ONNX Runtime and OpenVINO run the engine's hash-checked .onnx sibling; torch cannot run a file at all.
    assert file_for_backend(settings, "onnxruntime") == tmp_path / "t.onnx"
    assert file_for_backend(settings, "openvino") == tmp_path / "t.onnx"
    assert file_for_backend(settings, "tensorrt") == engine
    with pytest.raises(InputError, match="torch backend .* cannot run"):
        file_for_backend(settings, "torch")
    with pytest.raises(InputError, match="TensorRT runs the .engine"):
        file_for_backend(read_engine_settings(tmp_path / "t.onnx"), "tensorrt")
    est = PoseEstimator(engine=engine, backend="onnxruntime", onnx_threads=1)
    assert est.backend.onnx_path == tmp_path / "t.onnx"

    (tmp_path / "t.onnx").unlink()
    with pytest.raises(InputError, match="ONNX Runtime cannot run.*not beside it"):
        file_for_backend(read_engine_settings(engine), "onnxruntime")


def test_damaged_engine_and_mixed_up_files(built, tmp_path):
    engine = _fake_engine(built, tmp_path)
    engine.write_bytes(b"garbage")
    with pytest.raises(InputError, match="is not the engine its sidecar t.json describes"):
        read_engine_settings(engine)
    engine = _fake_engine(built, tmp_path)
    write_metadata(tmp_path / "t.onnx", {META_PREFIX + "note": '"x"'})
    with pytest.raises(EngineMismatchError, match="is not the ONNX file its sidecar describes"):
        read_engine_settings(engine)
    (tmp_path / "t.json").write_text("null")
    with pytest.raises(EngineMismatchError, match="not an object"):
        read_engine_settings(engine)
    (tmp_path / "t.json").unlink()
    with pytest.raises(InputError, match="has no sidecar t.json beside it"):
        read_engine_settings(engine)


# -- through the CLI: no --weights needed, clear one-line errors -------------------------------------


def _image(tmp_path):
    import cv2

    picture = tmp_path / "a.png"
    cv2.imwrite(str(picture), np.full((96, 128, 3), 127, np.uint8))
    return picture


def test_cli_runs_an_onnx_file_without_weights(built, tmp_path):
    picture = _image(tmp_path)
    result = runner.invoke(app, ["image", str(picture), "--out", str(tmp_path / "o"), "--engine",
                                 str(built.onnx_path), "--backend", "onnxruntime"])  # fmt: skip
    assert result.exit_code == 0, result.output
    said = " ".join(result.output.split())
    assert "input_size 64" in said and "flip False" in said
    conflict = runner.invoke(app, ["image", str(picture), "--out", str(tmp_path / "o2"), "--engine",
                                   str(built.onnx_path), "--backend", "onnxruntime", "--flip"])  # fmt: skip
    assert conflict.exit_code == EXIT_INPUT and "built without the flip test" in conflict.output


@pytest.mark.parametrize(
    ("name", "content", "sidecar", "code", "needle"),
    [
        ("garbage.onnx", b"\x00\x01 not protobuf \xff" * 50, None, EXIT_INPUT, "not a readable ONNX model"),
        ("garbage.engine", b"\x00junk", None, EXIT_INPUT, "has no sidecar garbage.json beside it"),
        ("garbage.engine", b"\x00junk", b"null", EXIT_ENGINE_MISMATCH, "holds a JSON NoneType"),
        ("garbage.engine", b"\x00junk", b"\xff\xfe\x00", EXIT_ENGINE_MISMATCH, "not UTF-8 text"),
    ],
)
def test_cli_garbage_engine_files(tmp_path, name, content, sidecar, code, needle):
    bad = tmp_path / name
    bad.write_bytes(content)
    if sidecar is not None:
        bad.with_suffix(".json").write_bytes(sidecar)
    args = ["image", str(_image(tmp_path)), "--out", str(tmp_path / "o"), "--engine", str(bad)]
    result = runner.invoke(app, args)
    assert result.exit_code == code, result.output
    assert needle in " ".join(result.output.split()) and "Traceback" not in result.output


def test_bare_export_without_records_runs_and_learns_its_joint_count(built, tmp_path):
    # e.g. an export by another tool with hhrnet-rt's I/O names: nothing recorded, the run tells K.
    model = onnx.load(str(built.onnx_path))
    del model.metadata_props[:]
    bare = tmp_path / "bare.onnx"
    onnx.save(model, bare)
    settings = read_engine_settings(bare)
    assert (
        settings.num_joints is None and settings.flip is None and "flip and size unknown" in settings.origin
    )
    est = PoseEstimator(engine=bare, backend="onnxruntime", flip=False, input_size=64, onnx_threads=1)
    assert est.num_joints == 17
    with pytest.raises(InputError, match="does not record which weights"):
        PoseEstimator("random", engine=bare, backend="onnxruntime", flip=False)


def _with_interleaved_tags(path):
    """Rewrite an export so its tags leave it as older hhrt exports did: (N, K, H, W, L), one value per
    pixel and tag dimension side by side (a Transpose of the planar output; metadata kept)."""
    from onnx import helper

    model = onnx.load(str(path))
    graph = model.graph
    for node in graph.node:
        node.output[:] = ["tags_planar" if o == "tags" else o for o in node.output]
    graph.node.append(helper.make_node("Transpose", ["tags_planar"], ["tags"], perm=[0, 1, 3, 4, 2]))
    tags_out = next(o for o in graph.output if o.name == "tags")
    tags_out.type.tensor_type.ClearField("shape")
    onnx.save(model, str(path))
    return path


def test_exports_with_interleaved_tags_are_refused_with_a_rebuild_hint(built, tmp_path):
    """Decision: a file from before the planar layout is not read with the wrong axes (its maps would
    decode to nonsense) nor converted every frame; it is refused, saying to rebuild it."""
    (tmp_path / "old").mkdir()
    old = _with_interleaved_tags(_copy(built, tmp_path / "old", sidecar=False))
    with pytest.raises(
        InputError, match=r"interleaved per pixel \(N, K, H, W, L\).*rebuild it with `hhrt build-engine`"
    ):
        PoseEstimator(engine=old, backend="onnxruntime", onnx_threads=1)
    # The same copy with the build's planar tags opens: the refusal is about the layout only.
    PoseEstimator(engine=_copy(built, tmp_path, sidecar=False), backend="onnxruntime", onnx_threads=1)
    result = runner.invoke(app, ["image", str(_image(tmp_path)), "--out", str(tmp_path / "o"), "--engine",
                                 str(old), "--backend", "onnxruntime"])  # fmt: skip
    assert result.exit_code == EXIT_INPUT and "Traceback" not in result.output
    assert "rebuild it with `hhrt build-engine`" in " ".join(result.output.split())
