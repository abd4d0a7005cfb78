"""``--format`` on ``hhrt video`` and ``hhrt convert``: a run with ``--format X --json`` writes the same bytes
for X as ``convert`` of its JSON lines (one code path), the header record says what a reader needs, and bad
input gets one line and exit code 2."""

from __future__ import annotations

import contextlib
import csv
import io
import json
from pathlib import Path

import jsonschema
import numpy as np
import pytest
from typer.testing import CliRunner
from video_helpers import make_video

from hhrnet_rt.cli import app
from hhrnet_rt.video.formats import FORMATS

REPO = Path(__file__).resolve().parents[1]
runner = CliRunner()
pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _invoke(args, code=0):
    result = runner.invoke(app, [str(a) for a in args])
    assert "Traceback" not in result.output, result.output
    assert result.exit_code == code, result.output
    return result


def _tree(path: Path) -> dict[str, bytes]:
    """A file's bytes, or every file of a folder by relative name."""
    if path.is_file():
        return {"": path.read_bytes()}
    return {str(p.relative_to(path)): p.read_bytes() for p in sorted(path.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def run(tmp_path_factory, tiny_weights):
    """One tracked video run writing JSON lines and every format (64x64 frames, the tiny model)."""
    folder = tmp_path_factory.mktemp("formats")
    clip = make_video(folder / "walk.mp4", 3, width=64, height=64)
    out = folder / "out"
    _invoke(["video", clip, "--out", out, "--json", out, "--format", "csv,coco-dataset", "--format", "yolo",
             "--format", "openpose,mot", "--track", "--track-min-hits", "1", "--weights", tiny_weights,
             "--backend", "torch", "--input-size", "64"])  # fmt: skip
    return out


def test_video_run_and_convert_write_the_same_bytes(run, tmp_path):
    _invoke(["convert", run / "walk.jsonl", "--format", ",".join(FORMATS), "--out", tmp_path / "again"])
    for fmt in FORMATS:
        name = FORMATS[fmt].target_name("walk")
        live, converted = _tree(run / name), _tree(tmp_path / "again" / name)
        assert live and live == converted, fmt
    assert len(_tree(run / "walk.openpose")) == 3  # a file per frame
    coco = json.loads((run / "walk.coco-dataset.json").read_text())
    assert [image["file_name"] for image in coco["images"]] == [f"walk_{i:06d}.jpg" for i in range(3)]


def test_the_header_names_what_a_reader_needs(run):
    schema = json.loads((REPO / "schemas" / "keypoints.schema.json").read_text())
    header = json.loads((run / "walk.jsonl").read_text().splitlines()[0])
    jsonschema.Draft202012Validator.check_schema(schema)
    validator = jsonschema.Draft202012Validator(schema)
    validator.validate(header)
    for field, wrong in (("input_size", "64"), ("model", "HigherHRNet"), ("tracked", "yes")):
        assert not validator.is_valid({**header, field: wrong}), field  # the schema describes the new fields
    assert header["type"] == "header" and header["tracked"] is True
    assert (header["width"], header["height"], header["fps"]) == (64, 64, 25.0)
    assert header["input_size"] == 64 and len(header["keypoint_names"]) == 17 and header["skeleton"]
    assert header["model"]["weights"] == "tiny_model.npz"  # the file's name, not where it lies
    assert header["model"]["backend"] == "torch"
    assert "/" not in json.dumps(header["model"])


def test_convert_beside_the_input_and_never_over_a_users_file(run, tmp_path):
    source = tmp_path / "k.jsonl"
    source.write_bytes((run / "walk.jsonl").read_bytes())
    (tmp_path / "k.csv").write_text("mine")
    result = _invoke(["convert", source, "--format", "csv"], code=2)
    assert "--overwrite" in result.output and (tmp_path / "k.csv").read_text() == "mine"
    _invoke(["convert", source, "--format", "csv", "--overwrite"])
    assert (tmp_path / "k.csv").read_text().startswith("frame,time,id,score,nose_x")
    _invoke(["convert", source, "--format", "mot", "--out", tmp_path / "tracks.txt"])
    assert (tmp_path / "tracks.txt").read_text().startswith("1,")


_HEADER = (
    b'{"schema": "hhrnet-rt/keypoints/2", "type": "header", "source": "a.mp4", "width": 64, "height": 48, '
    + (b'"keypoint_names": ' + json.dumps([f"j{i}" for i in range(17)]).encode() + b"}\n")
)
_FRAME = b'{"schema": "hhrnet-rt/keypoints/2", "type": "frame", "frame": 0, "timestamp": 0.0, "people": [{"score": 0.9, "keypoints": [[1, 2, 0.5]]}]}\n'

_V1 = json.dumps({"schema": "hhrnet-rt/keypoints/1", "frame": 0, "timestamp": 0.0,
                  "people": [{"score": 0.9, "keypoints": [[1, 2, 0.5]] * 17}]}).encode() + b"\n"  # fmt: skip


@pytest.mark.parametrize(
    ("content", "args", "message"),
    [
        (b"not json\n", ["--format", "csv"], "line 1 is not JSON"),
        (b'{"schema": "other"}\n', ["--format", "csv"], "not an hhrt keypoint record"),
        (
            b'{"schema": "hhrnet-rt/keypoints/2", "type": "frame", "frame": 0}\n',
            ["--format", "csv"],
            "timestamp",
        ),
        (_FRAME.replace(b"0.5]", b'"0.5"]'), ["--format", "csv"], "of numbers (or null)"),
        (_FRAME.replace(b"0.5]", b"NaN]"), ["--format", "csv"], "not JSON"),
        (_FRAME.replace(b'"score": 0.9', b'"score": 0.9, "id": -2'), ["--format", "mot"], "non-negative"),
        (_HEADER.replace(b"64", b'"64"') + _FRAME, ["--format", "yolo"], "width must be a positive integer"),
        (_HEADER + _FRAME, ["--format", "yolo"], "a person has 1 joints where the file has 17"),
        (_V1, ["--format", "yolo"], "version 1 has no header); give it with --width W and --height H"),
        (b"", ["--format", "json"], "unknown format; choose from coco-dataset"),
        (b"", [], "say which format"),
    ],
)
def test_convert_bad_input_is_one_line_and_exit_2(tmp_path, content, args, message):
    source = tmp_path / "bad.jsonl"
    source.write_bytes(content)
    result = _invoke(["convert", source, *args, "--out", tmp_path / "made"], code=2)
    assert message in result.output
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.jsonl"]  # nothing written, no folder left


def test_mot_without_track_is_refused_before_the_model_loads(tmp_path):
    result = _invoke(
        ["video", tmp_path / "missing.mp4", "--format", "mot", "--weights", "no-such-weights"], code=2
    )
    assert "--format mot needs tracked people: add --track" in result.output


def test_image_batch_writes_one_dataset_per_format(tmp_path, tiny):
    import cv2
    from pycocotools.coco import COCO

    for name in ("a", "b"):
        cv2.imwrite(str(tmp_path / f"{name}.png"), np.full((48, 64, 3), 90, np.uint8))
    out = tmp_path / "out"
    _invoke(
        ["image", tmp_path / "a.png", tmp_path / "b.png", "--out", out, "--format", "coco-dataset,csv", *tiny]
    )
    with contextlib.redirect_stdout(io.StringIO()):
        coco = COCO(str(out / "keypoints.coco-dataset.json"))
    assert [(i["file_name"], i["width"], i["height"]) for i in coco.loadImgs(coco.getImgIds())] == [
        ("a.png", 64, 48), ("b.png", 64, 48)]  # fmt: skip
    rows = list(csv.DictReader((out / "keypoints.csv").open()))
    assert {row["image"] for row in rows} == {"a.png", "b.png"} and "time" not in rows[
        0
    ]  # the tiny model finds people
    assert (
        len(rows) >= len(coco.getAnnIds()) > 0
    )  # a person without a joint found has a row, not an annotation
    _invoke(["image", tmp_path / "a.png", "--out", tmp_path / "single.png", "--format", "csv", *tiny])
    assert {row["image"] for row in csv.DictReader((tmp_path / "single.csv").open())} == {
        "a.png"
    }  # its own name


def test_webcam_writes_formats_beside_its_json(tmp_path, tiny):
    clip = make_video(tmp_path / "cam.mp4", 2, width=64, height=64)
    _invoke(["webcam", "--camera", clip, "--no-show", "--json", tmp_path / "live.jsonl", "--format", "csv",
             "--max-frames", "2", *tiny])  # fmt: skip
    frames = [json.loads(line) for line in (tmp_path / "live.jsonl").read_text().splitlines()][1:]
    rows = list(csv.DictReader((tmp_path / "live.csv").open()))
    assert len(rows) == sum(len(f["people"]) for f in frames) > 0
    # Several cameras, keypoints only (no --out): main raised a ValueError here before #23.
    other = make_video(tmp_path / "cam2.mp4", 2, width=64, height=64)
    _invoke(["webcam", "--camera", clip, "--camera", other, "--no-show", "--json", tmp_path / "rec",
             "--format", "csv", "--max-frames", "1", *tiny])  # fmt: skip
    assert sorted(p.name for p in (tmp_path / "rec").iterdir()) == [
        "cam.csv",
        "cam.jsonl",
        "cam2.csv",
        "cam2.jsonl",
    ]
    result = _invoke(["webcam", "--camera", clip, "--no-show", "--format", "csv", *tiny], code=2)
    assert "--format needs a place for its files: give --json or --out" in result.output


def test_skip_existing_counts_the_formats(run, tiny):
    """A finished input is skipped only when its format outputs are complete too (a folder: a file per frame)."""
    args = ["video", run.parent / "walk.mp4", "--out", run, "--json", run, "--format", "csv,openpose", "--track",
            "--skip-existing", *tiny]  # fmt: skip
    assert "skipping 1 of 1 videos" in _invoke(args).output
    label = run / "walk.openpose" / "walk_000000000002_keypoints.json"
    kept = label.read_bytes()
    label.unlink()  # as if the run had been cut short
    try:
        assert "exist but are not complete" in _invoke(args, code=2).output
    finally:
        label.write_bytes(kept)
