"""``hhrt video --track --smooth`` end to end with the golden tiny model: IDs and the smoothed flag in the
JSON lines (valid against ``schemas/keypoints.schema.json``) and ``track_id`` in the COCO results."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest
from typer.testing import CliRunner
from video_helpers import make_video

from hhrnet_rt.cli import app
from hhrnet_rt.video.records import frames_of

REPO = Path(__file__).resolve().parents[1]
runner = CliRunner()
pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def validator():
    schema = json.loads((REPO / "schemas" / "keypoints.schema.json").read_text())
    return jsonschema.Draft202012Validator(schema)


def _run(args):
    result = runner.invoke(app, [str(a) for a in args])
    assert "Traceback" not in result.output, result.output
    assert result.exit_code == 0, result.output
    return result


def test_video_track_writes_ids(tmp_path, tiny, validator):
    clip = make_video(tmp_path / "clip.mp4", 6)
    js, coco = tmp_path / "o.jsonl", tmp_path / "o.json"
    _run(["video", clip, "--track", "--track-min-hits", "1", "--json", js, "--coco", coco,
          "--out", tmp_path / "o.mp4", *tiny])  # fmt: skip
    records = frames_of(json.loads(line) for line in js.read_text().splitlines())
    assert len(records) == 6
    ids = []
    for record in records:
        validator.validate(record)
        assert "smoothed" not in record
        for person in record["people"]:
            assert "id" in person
            ids.append(person["id"])
    assert ids and all(isinstance(i, int) and i >= 0 for i in ids)  # min hits 1: everyone has an ID at once
    for frame in records:  # one ID per person in a frame
        frame_ids = [p["id"] for p in frame["people"]]
        assert len(frame_ids) == len(set(frame_ids))
    results = json.loads(coco.read_text())
    assert [r["track_id"] for r in results] == ids  # same people, same order, same IDs


def test_video_smooth_says_so_and_implies_track(tmp_path, tiny, validator):
    clip = make_video(tmp_path / "clip.mp4", 4)
    js = tmp_path / "s.jsonl"
    _run(["video", clip, "--smooth", "--json", js, "--out", tmp_path / "s.mp4", *tiny])
    records = frames_of(json.loads(line) for line in js.read_text().splitlines())
    assert len(records) == 4
    for record in records:
        validator.validate(record)
        assert record["smoothed"] is True
        assert all("id" in p for p in record["people"])
    # Default --track-min-hits 3: nobody has an ID in the first two frames.
    assert all(p["id"] is None for r in records[:2] for p in r["people"])


def test_bad_track_option_is_a_clear_error(tmp_path, tiny):
    result = runner.invoke(app, ["video", "x.mp4", "--track-min-oks", "2", *tiny])
    assert result.exit_code != 0 and "Traceback" not in result.output
    assert "--track-min-oks" in result.output


def test_schema_says_what_an_id_and_the_smoothed_flag_may_be(validator):
    person = {"score": 0.5, "keypoints": [[1.0, 2.0, 0.3]]}
    record = {"schema": "hhrnet-rt/keypoints/1", "frame": 0, "timestamp": 0.0, "smoothed": True}
    for good in (3, None):
        validator.validate({**record, "people": [{**person, "id": good}]})
    for bad in (-1, "3", 1.5):
        assert not validator.is_valid({**record, "people": [{**person, "id": bad}]})
    assert not validator.is_valid({**record, "smoothed": False, "people": []})


def test_webcam_track_on_a_file_played_live(tmp_path, tiny, validator):
    clip = make_video(tmp_path / "live.mp4", 5)
    js = tmp_path / "w.jsonl"
    _run(["webcam", "--camera", clip, "--json", js, "--no-show", "--track", "--track-min-hits", "1", *tiny])
    records = frames_of(json.loads(line) for line in js.read_text().splitlines())
    assert records and any(r["people"] for r in records)  # live: frames may drop; what is written has IDs
    for record in records:
        validator.validate(record)
        assert all(isinstance(p["id"], int) for p in record["people"])
