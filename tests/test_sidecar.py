"""Sidecar schema round trip and the engine compatibility check (pure: sidecars written by the test)."""

from __future__ import annotations

import json

import pytest

from hhrnet_rt.artifacts.sidecar import (
    Sidecar,
    check_engine_compatible,
    engine_problems,
    sha256_file,
    sidecar_path_for,
)
from hhrnet_rt.core.errors import EngineMismatchError, InputError

PROFILE = {"min": [1, 3, 512, 512], "opt": [1, 3, 512, 960], "max": [1, 3, 1024, 1024]}
TRT = {
    "version": "10.12.0.36",
    "gpu_name": "NVIDIA H200",
    "compute_capability": [9, 0],
    "engine_file": "m.engine",
    "workspace_gib": 4.0,
    "io": [],
}


def make_sidecar(tensorrt=TRT, **overrides) -> Sidecar:
    fields = dict(
        name="m",
        precision="fp16",
        input_size=512,
        flip=True,
        weights="w32_512",
        num_joints=17,
        shape_profile=PROFILE,
        onnx={"file": "m.onnx", "sha256": "0" * 64},
        tensorrt=dict(tensorrt) if tensorrt else None,
    )
    fields.update(overrides)
    return Sidecar(**fields)


def test_round_trip_through_json(tmp_path):
    sc = make_sidecar(agreement={"heatmap_max_abs": 0.01})
    path = sc.write(tmp_path / "m.json")
    data = json.loads(path.read_text())
    assert data["schema"] == 1 and data["tensorrt"]["compute_capability"] == [9, 0]
    assert data["package_version"]  # filled from hhrnet_rt.__version__
    back = Sidecar.read(path)
    assert back.to_dict() == sc.to_dict()


def test_sidecar_path_for():
    assert sidecar_path_for("engines/x.engine").name == "x.json"
    assert sidecar_path_for("engines/x.onnx").name == "x.json"


def test_sha256_file(tmp_path):
    p = tmp_path / "f"
    p.write_bytes(b"abc")
    assert sha256_file(p) == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"


def test_compatible_machine_passes():
    sc = make_sidecar()
    assert (
        engine_problems(sc, gpu_name="NVIDIA H200", compute_capability=(9, 0), trt_version="10.12.0.36") == []
    )
    # Only major.minor.patch must match (the build number may differ).
    check_engine_compatible(sc, gpu_name="NVIDIA H200", compute_capability=(9, 0), trt_version="10.12.0.99")


@pytest.mark.parametrize(
    ("gpu", "cc", "trt", "needle"),
    [
        ("NVIDIA H200", (9, 0), "10.13.0.1", "TensorRT 10.12.0.36"),
        ("NVIDIA H200", (8, 9), "10.12.0.36", "compute capability 9.0"),
        ("NVIDIA L4", (9, 0), "10.12.0.36", "'NVIDIA L4'"),
        ("NVIDIA A100", (8, 0), "11.0.0", "compute capability"),
    ],
)
def test_mismatch_raises_with_rebuild_hint(gpu, cc, trt, needle):
    sc = make_sidecar()
    with pytest.raises(EngineMismatchError) as info:
        check_engine_compatible(sc, gpu_name=gpu, compute_capability=cc, trt_version=trt)
    msg = str(info.value)
    assert needle in msg
    assert "hhrt build-engine --precision fp16 --input-size 512 --weights w32_512" in msg


def test_all_problems_are_listed():
    problems = engine_problems(make_sidecar(), gpu_name="X", compute_capability=(7, 5), trt_version="11.0.0")
    assert len(problems) == 3


def test_onnx_only_sidecar_is_not_an_engine():
    sc = make_sidecar(tensorrt=None)
    with pytest.raises(EngineMismatchError, match="ONNX-only"):
        check_engine_compatible(sc, gpu_name="NVIDIA H200", compute_capability=(9, 0), trt_version="10.12.0")


def test_missing_unreadable_or_old_sidecar(tmp_path):
    with pytest.raises(EngineMismatchError, match="no sidecar"):
        Sidecar.read(tmp_path / "absent.json")
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(EngineMismatchError, match="not valid JSON"):
        Sidecar.read(bad)
    data = make_sidecar().to_dict()
    del data["onnx"]
    (tmp_path / "old.json").write_text(json.dumps(data))
    with pytest.raises(EngineMismatchError, match="missing"):
        Sidecar.read(tmp_path / "old.json")
    data = make_sidecar().to_dict() | {"schema": 99}
    (tmp_path / "new.json").write_text(json.dumps(data))
    with pytest.raises(EngineMismatchError, match="schema 99"):
        Sidecar.read(tmp_path / "new.json")


def test_invalid_fields_are_refused():
    with pytest.raises(InputError, match="precision"):
        make_sidecar(precision="int4")
    with pytest.raises(InputError, match="shape_profile"):
        make_sidecar(shape_profile={"min": [1, 3, 64, 64]})


# -- any malformed sidecar is a clear EngineMismatchError, never a TypeError/KeyError ------------------


def _good() -> dict:
    # A fixed creation time: these sidecars become test ids, which must not change from one collection to
    # the next (pytest-xdist refuses to run when its workers collect different ids).
    return make_sidecar(created_utc="2026-01-01T00:00:00Z").to_dict()


@pytest.mark.parametrize(
    ("content", "needle"),
    [
        (b"null", "JSON NoneType, not an object"),
        (b"[1, 2]", "JSON list, not an object"),
        (b"\x89PNG\r\n\x1a\n\x00\x00binary", "not UTF-8 text"),
        (b"[" * 100_000 + b"]" * 100_000, "unreadable"),  # nesting deep enough to exhaust the parser
        (json.dumps(_good() | {"num_joints": "17"}).encode(), "num_joints must be a joint count, got '17'"),
        (json.dumps(_good() | {"flip": 1}).encode(), "flip must be true or false"),
        (json.dumps(_good() | {"input_size": 500}).encode(), "input_size must be a positive multiple of 64"),
        (json.dumps(_good() | {"shape_profile": None}).encode(), "shape_profile must be"),
        (json.dumps(_good() | {"shape_profile": {"min": [1, 3, "a", 4]}}).encode(), "shape_profile must be"),
        (json.dumps(_good() | {"onnx": {"file": "m.onnx"}}).encode(), "onnx must be"),
        (json.dumps(_good() | {"onnx": "m.onnx"}).encode(), "onnx must be"),
        (
            json.dumps(_good() | {"onnx": {"file": "../../etc/m.onnx", "sha256": "0" * 64}}).encode(),
            "onnx must be",
        ),
        (json.dumps(_good() | {"output_names": "heatmaps"}).encode(), "output_names must be"),
        (json.dumps(_good() | {"tensorrt": {"version": 10}}).encode(), "tensorrt must be"),
        (json.dumps(_good() | {"tensorrt": TRT | {"compute_capability": None}}).encode(), "tensorrt must be"),
        (json.dumps(_good() | {"precision": None}).encode(), "precision must be one of"),
        (json.dumps(_good() | {"schema": None}).encode(), "schema None"),
    ],
)
def test_malformed_sidecars_are_engine_mismatch_errors(tmp_path, content, needle):
    path = tmp_path / "m.json"
    path.write_bytes(content)
    with pytest.raises(EngineMismatchError, match=re_escape(needle)):
        Sidecar.read(path)


def re_escape(text: str) -> str:
    import re

    return re.escape(text)


def test_huge_or_unreadable_sidecar(tmp_path):
    big = tmp_path / "big.json"
    big.write_bytes(b" " * (2 << 20))
    with pytest.raises(EngineMismatchError, match="far more than a sidecar holds"):
        Sidecar.read(big)
    with pytest.raises(InputError, match="cannot read the engine sidecar"):
        Sidecar.read(tmp_path)  # a folder: OSError, not a traceback


def test_onnx_hash_is_checked_against_the_file(tmp_path):
    onnx_file = tmp_path / "m.onnx"
    onnx_file.write_bytes(b"graph bytes")
    sc = make_sidecar(onnx={"file": "m.onnx", "sha256": sha256_file(onnx_file)})
    sc.check_onnx_file(onnx_file)
    onnx_file.write_bytes(b"other graph bytes")
    with pytest.raises(EngineMismatchError, match="is not the ONNX file its sidecar describes"):
        sc.check_onnx_file(onnx_file)
