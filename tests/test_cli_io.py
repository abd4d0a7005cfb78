"""``hhrt image``/``hhrt video`` with the inputs and outputs users expect: folders, globs, several videos,
URLs, the numbered run folder when ``--out`` is omitted, ``--min-score`` everywhere, and files that
validate against ``schemas/keypoints.schema.json`` (golden tiny model: it finds 10-25 low-score people,
scores 0.03-0.12, on these pictures, so a 0.1 threshold keeps some and drops some)."""

from __future__ import annotations

import functools
import http.server
import json
import re
import threading
from pathlib import Path

import cv2
import jsonschema
import pytest
from typer.testing import CliRunner
from video_helpers import index_image, make_video, read_video

from hhrnet_rt.cli import app
from hhrnet_rt.cli.app import EXIT_INPUT, EXIT_SOME_FAILED
from hhrnet_rt.video.records import frames_of

REPO = Path(__file__).resolve().parents[1]
runner = CliRunner()
pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def validator():
    schema = json.loads((REPO / "schemas" / "keypoints.schema.json").read_text())
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema)


def _invoke(args):
    result = runner.invoke(app, [str(a) for a in args])
    assert "Traceback" not in result.output, result.output
    return result


def _assert_rounded(text: str) -> None:
    """No number in the file carries more than 4 decimals (x/y: 2, scores: 4; the schema says which)."""
    assert not re.search(r"\d\.\d{5,}", text), re.search(r"\d\.\d{5,}", text)


def _table_people(stdout: str) -> dict[str, str]:
    """image name -> the people column of the results table."""
    rows = {}
    for line in stdout.splitlines():
        cells = [c.strip() for c in re.split(r"[│┃|]", line) if c.strip()]
        if len(cells) == 4 and cells[0] != "image":
            rows[Path(cells[0]).name] = cells[1]
    return rows


def test_image_folder_glob_recursive_into_run_folders(tmp_path, monkeypatch, tiny, validator):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "pics" / "more").mkdir(parents=True)
    cv2.imwrite("pics/a.png", index_image(3, 256, 192))
    cv2.imwrite("pics/more/b.jpg", index_image(9, 256, 192))
    (tmp_path / "pics" / "notes.txt").write_text("not an image")
    first = _invoke(["image", "pics", "--recursive", "--json", "--min-score", "0.1", *tiny])
    assert first.exit_code == 0, first.output
    run1 = Path("runs/pose/1")
    assert "results saved to runs/pose/1" in first.stderr
    assert sorted(p.name for p in run1.iterdir()) == ["a.json", "a.png", "b.jpg", "b.json"]
    counted = _table_people(first.stdout)
    for name in ("a", "b"):
        record = json.loads((run1 / f"{name}.json").read_text())
        validator.validate(record)
        _assert_rounded((run1 / f"{name}.json").read_text())
        scores = [p["score"] for p in record["people"]]
        assert all(s >= 0.1 for s in scores)  # written = the threshold
        assert counted[f"{name}.{'png' if name == 'a' else 'jpg'}"] == str(len(scores))  # counted = written
    assert any(counted.values()) and sum(map(int, counted.values())) > 0  # the threshold kept someone
    second = _invoke(["image", "pics/*.png", "--json", "--max-people", "2", *tiny])  # a quoted pattern
    assert second.exit_code == 0, second.output
    assert sorted(p.name for p in Path("runs/pose/2").iterdir()) == ["a.json", "a.png"]
    best = json.loads(Path("runs/pose/2/a.json").read_text())["people"]
    everyone = json.loads((run1 / "a.json").read_text())["people"]  # >= 0.1: the best few of them
    assert len(best) == 2 and sorted(p["score"] for p in best) == sorted(p["score"] for p in everyone)[-2:]
    assert sorted(p.name for p in run1.iterdir()) == ["a.json", "a.png", "b.jpg", "b.json"]  # untouched


def test_image_bad_inputs_leave_no_run_folder(tmp_path, monkeypatch, tiny):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "empty").mkdir()
    result = _invoke(["image", "empty", *tiny])
    assert result.exit_code == EXIT_INPUT and "holds no image files" in result.output
    result = _invoke(["image", "nothing*.jpg", *tiny])
    assert result.exit_code == EXIT_INPUT and "no file matches" in result.output
    assert not Path("runs").exists()


def test_an_image_with_a_corrupt_body_fails_alone(tmp_path, monkeypatch, tiny):
    monkeypatch.chdir(tmp_path)
    Path("pics").mkdir()
    for name in ("a", "c"):
        cv2.imwrite(f"pics/{name}.png", index_image(3, 128, 96))
    whole = Path("pics/a.png").read_bytes()
    Path("pics/b.png").write_bytes(whole[:64] + b"\0" * (len(whole) - 64))  # the header reads, the body not
    result = _invoke(["image", "pics", "--json", *tiny])
    assert result.exit_code == EXIT_SOME_FAILED, result.output
    assert "1 of 3 images failed (pics/b.png:" in result.stderr and "the others are complete" in result.stderr
    assert "failed:" in result.stdout and "pics/c.png" in result.stdout  # the table, with every image
    run = Path("runs/pose/1")
    assert sorted(p.name for p in run.iterdir()) == ["a.json", "a.png", "c.json", "c.png"]


def test_several_videos_each_get_their_outputs(tmp_path, monkeypatch, tiny, validator):
    monkeypatch.chdir(tmp_path)
    Path("clips").mkdir()
    make_video(Path("clips/a.mp4"), 3)
    make_video(Path("clips/b.mp4"), 2)
    result = _invoke(["video", "clips", "--json", "keypoints", "--min-score", "0.1", *tiny])
    assert result.exit_code == 0, result.output
    run = Path("runs/pose/1")
    assert "results saved to runs/pose/1" in result.stderr
    assert sorted(p.name for p in run.iterdir()) == ["a.mp4", "b.mp4"]
    for name, frames in (("a", 3), ("b", 2)):
        assert len(read_video(run / f"{name}.mp4")[0]) == frames
        text = (Path("keypoints") / f"{name}.jsonl").read_text()
        _assert_rounded(text)
        header, *rest = [json.loads(line) for line in text.splitlines()]
        assert header["type"] == "header" and header["source"] == f"{name}.mp4" and header["width"] == 160
        assert header["keypoint_names"][0] == "nose" and len(header["skeleton"]) > 10
        validator.validate(header)
        records = frames_of(rest)
        assert [r["frame"] for r in records] == list(range(frames)) and len(records) == len(rest)
        for record in records:
            validator.validate(record)
            assert all(p["score"] >= 0.1 for p in record["people"])
    refused = _invoke(["video", "clips/a.mp4", "clips/b.mp4", "--out", "one.mp4", *tiny])
    assert refused.exit_code == EXIT_INPUT and "2 inputs" in refused.output and not Path("one.mp4").exists()


@pytest.fixture
def http_folder(tmp_path):
    """Serve tmp_path/www on 127.0.0.1 (a free port) for the test's duration."""
    www = tmp_path / "www"
    www.mkdir()
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(www))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield www, f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()
    thread.join(timeout=5)


def test_video_from_an_http_url(tmp_path, monkeypatch, tiny, http_folder):
    www, base = http_folder
    make_video(www / "street.mkv", 4)  # Matroska reads front to back: no range requests needed
    monkeypatch.chdir(tmp_path)
    result = _invoke(["video", f"{base}/street.mkv", "--out", "out", "--json", "out", *tiny])
    assert result.exit_code == 0, result.output
    assert len(read_video(Path("out/street.mp4"))[0]) == 4
    assert len(frames_of(json.loads(x) for x in Path("out/street.jsonl").read_text().splitlines())) == 4
    missing = _invoke(["video", f"{base}/missing.mkv", "--out", "o2", *tiny])  # a file: never retried
    assert missing.exit_code == EXIT_INPUT and "could not read the stream" in missing.output


def test_a_bad_video_fails_alone_and_fail_fast_stops_the_run(tmp_path, monkeypatch, tiny):
    monkeypatch.chdir(tmp_path)
    make_video(Path("a.mp4"), 2)
    Path("b.mp4").write_text("not a video\n" * 50)
    alone = _invoke(["video", "b.mp4", *tiny])
    assert alone.exit_code == EXIT_INPUT and "not a video file" in alone.output
    assert "backend:" not in alone.output and not Path("runs/pose/1").exists()  # failed before the model
    # Several inputs: the bad one fails alone, the others complete; exit 9 names it, whichever group.
    for args in (["b.mp4", "a.mp4"], ["a.mp4", "b.mp4"], ["a.mp4", "b.mp4", "--streams", "1"]):
        some = _invoke(["video", *args, *tiny])
        assert some.exit_code == EXIT_SOME_FAILED, some.output
        assert "1 of 2 inputs failed (b.mp4:" in some.output and "not a video file" in some.output
        folder = Path(some.stderr.split("results saved to ")[1].split()[0])
        assert len(read_video(folder / "a.mp4")[0]) == 2 and list(folder.iterdir()) == [folder / "a.mp4"]
    # --fail-fast: the first failure stops the run (here before any work: nothing half-done is left).
    before = set(Path("runs/pose").iterdir())
    stopped = _invoke(["video", "a.mp4", "b.mp4", "--fail-fast", *tiny])
    assert stopped.exit_code == EXIT_INPUT and "not a video file" in stopped.output
    assert set(Path("runs/pose").iterdir()) == before
