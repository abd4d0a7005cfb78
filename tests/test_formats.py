"""The format writers (hhrnet_rt.video.formats) on hand-made records, each read back by its consumer or by
a reader written from the consumer's documentation: pycocotools as ground truth (coco-dataset), the
Ultralytics pose label layout (yolo; the real package too where it is installed), OpenPose's --write_json
layout (openpose), the stdlib csv reader (csv), numpy.loadtxt as the MOT devkit reads (mot)."""

from __future__ import annotations

import contextlib
import csv
import io
import json
from pathlib import Path

import numpy as np
import pytest
import yaml

from hhrnet_rt.core.errors import InputError
from hhrnet_rt.core.skeleton import COCO_FLIP_INDEX, COCO_KEYPOINTS, COCO_SKELETON
from hhrnet_rt.video.formats import FORMATS, convert, parse_formats
from hhrnet_rt.video.formats.common import VISIBLE_SCORE, visibility

W, H = 64, 48


def _person(dx: float, score: float, pid: int | None) -> dict:
    joints = [[round(10 + dx + 2 * k, 2), round(5 + 2.5 * k, 2), 0.9] for k in range(17)]
    joints[3] = [0.0, 0.0, 0.0]  # left ear not found
    joints[4][2] = 0.05  # right ear found, weak: labeled, not visible
    joints[16] = [70.5, 46.0, 0.8]  # right ankle outside the 64 px wide picture
    joints[15] = [None, None, 0.3]  # a non-finite position, written as null
    return {"score": score, "id": pid, "keypoints": joints}


def _records(tracked: bool = True) -> list[dict]:
    header = {"schema": "hhrnet-rt/keypoints/2", "type": "header", "source": "rtsp://***@cam/walk.mp4",
              "live": False, "fps": 25.0, "width": W, "height": H, "keypoint_names": list(COCO_KEYPOINTS),
              "skeleton": [list(e) for e in COCO_SKELETON], "tracked": tracked}  # fmt: skip
    frames = []
    for i in range(3):
        people = [_person(i, 0.8, 1), _person(20 + i, 0.6, None if i == 0 else 2)]
        if not tracked:
            for p in people:
                del p["id"]
        frames.append({"schema": "hhrnet-rt/keypoints/2", "type": "frame", "frame": i, "timestamp": i / 25,
                       "people": people if i != 1 else people[:1]})  # fmt: skip
    frames.insert(2, {"schema": "hhrnet-rt/keypoints/2", "type": "outage", "start": 0.04, "end": 0.08,
                      "reason": "x", "attempts": 1})  # fmt: skip
    return [header, *frames]


def _write(fmt: str, path: Path, records=None, **kw) -> Path:
    target = path / FORMATS[fmt].target_name("walk")
    assert convert(records or _records(), [FORMATS[fmt].open(target, overwrite=False)], **kw) == 3
    return target


def _frames(records):
    return [r for r in records if r.get("type") == "frame"]


def test_parse_formats_repeated_and_comma_separated():
    assert parse_formats(["csv,mot", " yolo ", "csv"]) == ("csv", "mot", "yolo")
    with pytest.raises(InputError, match="unknown format; choose from coco-dataset"):
        parse_formats(["csv,json"])


def test_visibility_rule():
    assert [visibility(j) for j in ([1, 2, 0.0], [None, 2, 0.5], [1, 2, VISIBLE_SCORE], [1, 2, 0.11])] == [
        0, 0, 1, 2]  # fmt: skip


def test_coco_dataset_loads_in_pycocotools_as_ground_truth(tmp_path):
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    path = _write("coco-dataset", tmp_path)
    with contextlib.redirect_stdout(io.StringIO()):
        gt = COCO(str(path))
    assert gt.getImgIds() == [0, 1, 2]
    assert gt.loadImgs(1)[0] == {"id": 1, "file_name": "walk_000001.jpg", "width": W, "height": H}
    category = gt.loadCats(1)[0]
    assert category["keypoints"] == list(COCO_KEYPOINTS)
    assert category["skeleton"] == [[a + 1, b + 1] for a, b in COCO_SKELETON]
    people = [(f["frame"], p) for f in _frames(_records()) for p in f["people"]]
    anns = gt.loadAnns(gt.getAnnIds())
    assert len(anns) == len(people) == 5
    for ann, (frame, person) in zip(anns, people, strict=True):  # read back equals what was written
        assert ann["image_id"] == frame and ann["iscrowd"] == 0 and ann["track_id"] == person["id"]
        triples = np.array(ann["keypoints"], dtype=float).reshape(17, 3)
        for (x, y, s), (rx, ry, v) in zip(person["keypoints"], triples, strict=True):
            assert v == visibility([x, y, s])
            assert (rx, ry) == ((x, y) if v else (0, 0))
        labeled = triples[triples[:, 2] > 0]
        assert ann["num_keypoints"] == len(labeled) == 15
        left, top = labeled[:, :2].min(0)
        width, height = labeled[:, :2].max(0) - (left, top)
        assert ann["bbox"] == pytest.approx([left, top, width, height]) and ann["area"] == pytest.approx(
            width * height
        )
    # Evaluated against itself (same people as results), ground truth this good gives AP 1.
    results = [
        {"image_id": a["image_id"], "category_id": 1, "keypoints": a["keypoints"], "score": 1.0} for a in anns
    ]
    with contextlib.redirect_stdout(io.StringIO()):
        evaluator = COCOeval(gt, gt.loadRes(results), "keypoints")
        evaluator.evaluate(), evaluator.accumulate(), evaluator.summarize()
    assert evaluator.stats[0] == pytest.approx(1.0)


def _read_yolo_label(path: Path, kpt_shape: list[int]) -> np.ndarray:
    """Ultralytics' pose label layout (docs.ultralytics.com/datasets/pose): one row per object, class
    index, box centre x, y, width, height, then kpt_shape[0] keypoints of kpt_shape[1] values (x, y,
    visibility), every coordinate normalised to [0, 1]."""
    text = path.read_text()
    rows = np.array([[float(v) for v in line.split()] for line in text.splitlines()]).reshape(
        -1, 5 + np.prod(kpt_shape)
    )
    assert (rows[:, 0] == 0).all()  # names: {0: person}
    kpts = rows[:, 5:].reshape(len(rows), *kpt_shape)
    coords = np.concatenate([rows[:, 1:5].reshape(-1), kpts[..., :2].reshape(-1)])
    assert ((coords >= 0) & (coords <= 1)).all(), "Ultralytics refuses coordinates outside [0, 1]"
    assert np.isin(kpts[..., 2], (0, 1, 2)).all()
    return rows


def test_yolo_labels_follow_ultralytics_layout(tmp_path):
    folder = _write("yolo", tmp_path)
    data = yaml.safe_load((folder / "data.yaml").read_text())
    assert data["kpt_shape"] == [17, 3] and data["flip_idx"] == list(COCO_FLIP_INDEX)
    assert data["names"] == {0: "person"} and data["train"] == data["val"] == "images"
    labels = sorted((folder / "labels").iterdir())
    assert [p.name for p in labels] == ["walk_000000.txt", "walk_000001.txt", "walk_000002.txt"]
    for label, frame in zip(labels, _frames(_records()), strict=True):
        rows = _read_yolo_label(label, data["kpt_shape"])
        assert len(rows) == len(frame["people"])
        for row, person in zip(rows, frame["people"], strict=True):
            kpts = row[5:].reshape(17, 3)
            for (x, y, s), (nx, ny, v) in zip(person["keypoints"], kpts, strict=True):
                inside = x is not None and 0 <= x <= W and 0 <= y <= H
                assert v == (visibility([x, y, s]) if inside else 0)
                if v:
                    assert (nx * W, ny * H) == pytest.approx((x, y), abs=1e-4)
            labeled = kpts[kpts[:, 2] > 0, :2]
            centre = (labeled.min(0) + labeled.max(0)) / 2
            assert row[1:3] == pytest.approx(centre, abs=2e-6)
            assert row[3:5] == pytest.approx(labeled.max(0) - labeled.min(0), abs=2e-6)


def test_yolo_labels_pass_ultralytics_own_check(tmp_path):
    verify = pytest.importorskip("ultralytics.data.utils").verify_image_label
    import cv2

    folder = _write("yolo", tmp_path)
    (folder / "images").mkdir()
    for label in (folder / "labels").iterdir():
        image = folder / "images" / f"{label.stem}.jpg"
        cv2.imwrite(str(image), np.zeros((H, W, 3), np.uint8))
        args = (str(image), str(label), "", True, 1, 17, 3)  # keypoint labels, 1 class, kpt_shape
        try:
            found = verify(args)
        except ValueError:  # newer releases take single_cls too
            found = verify((*args, False))
        assert found[-1] == "" and found[1] is not None, found[-1]  # the message of a refused label


def test_openpose_files_follow_openpose_output_layout(tmp_path):
    folder = _write("openpose", tmp_path)
    files = sorted(folder.iterdir())
    assert [p.name for p in files] == [f"walk_{i:012d}_keypoints.json" for i in range(3)]
    # OpenPose's COCO-18 order (doc/02_output.md): the names, then where each is in COCO-17.
    names18 = ["Nose", "Neck", "RShoulder", "RElbow", "RWrist", "LShoulder", "LElbow", "LWrist", "RHip", "RKnee",
               "RAnkle", "LHip", "LKnee", "LAnkle", "REye", "LEye", "REar", "LEar"]  # fmt: skip
    coco_name = {
        "Nose": "nose",
        "REye": "right_eye",
        "LEye": "left_eye",
        "REar": "right_ear",
        "LEar": "left_ear",
    }
    for side, word in (("R", "right"), ("L", "left")):
        for part in ("Shoulder", "Elbow", "Wrist", "Hip", "Knee", "Ankle"):
            coco_name[side + part] = f"{word}_{part.lower()}"
    for file, frame in zip(files, _frames(_records()), strict=True):
        data = json.loads(file.read_text())
        assert data["version"] == 1.3 and len(data["people"]) == len(frame["people"])
        for out, person in zip(data["people"], frame["people"], strict=True):
            assert out["person_id"] == [-1 if person["id"] is None else person["id"]]
            assert out["face_keypoints_2d"] == out["hand_left_keypoints_2d"] == []
            flat = np.array(out["pose_keypoints_2d"], dtype=float).reshape(18, 3)
            for name, (x, y, c) in zip(names18, flat, strict=True):
                if name == "Neck":
                    ls, rs = person["keypoints"][5], person["keypoints"][6]
                    assert (x, y, c) == pytest.approx(
                        ((ls[0] + rs[0]) / 2, (ls[1] + rs[1]) / 2, min(ls[2], rs[2]))
                    )
                    continue
                jx, jy, js = person["keypoints"][COCO_KEYPOINTS.index(coco_name[name])]
                assert (x, y, c) == ((jx, jy, js) if visibility([jx, jy, js]) else (0, 0, 0))


def test_csv_reads_back_with_the_stdlib_reader(tmp_path):
    path = _write("csv", tmp_path)
    rows = list(csv.DictReader(path.open(newline="")))
    people = [(f, p) for f in _frames(_records()) for p in f["people"]]
    assert len(rows) == len(people)
    assert list(rows[0])[:7] == ["frame", "time", "id", "score", "nose_x", "nose_y", "nose_score"]
    for row, (frame, person) in zip(rows, people, strict=True):
        assert int(row["frame"]) == frame["frame"] and float(row["time"]) == frame["timestamp"]
        assert row["id"] == ("" if person["id"] is None else str(person["id"]))
        assert float(row["score"]) == person["score"]
        for name, (x, y, s) in zip(COCO_KEYPOINTS, person["keypoints"], strict=True):
            back = [
                None if row[f"{name}_{p}"] == "" else float(row[f"{name}_{p}"]) for p in ("x", "y", "score")
            ]
            assert back == [x, y, s]


def test_mot_reads_back_as_the_devkit_loads_it(tmp_path):
    path = _write("mot", tmp_path)
    table = np.loadtxt(path, delimiter=",", ndmin=2)  # the MOT devkit's own loader reads it this way
    expected = [(f["frame"] + 1, p) for f in _frames(_records()) for p in f["people"] if p["id"] is not None]
    assert table.shape == (len(expected), 10)
    for row, (frame, person) in zip(table, expected, strict=True):
        assert row[0] == frame and row[1] == person["id"] and row[6] == pytest.approx(person["score"])
        assert (row[7:] == -1).all()
        labeled = np.array([(x, y) for x, y, s in person["keypoints"] if visibility([x, y, s])])
        assert row[2:6] == pytest.approx([*labeled.min(0), *(labeled.max(0) - labeled.min(0))], abs=1e-6)


def test_mot_needs_tracked_people(tmp_path):
    with pytest.raises(InputError, match=r"needs tracked people.*track=True"):
        _write("mot", tmp_path, _records(tracked=False))
    header, *rest = _records(tracked=False)
    with pytest.raises(InputError, match="frame 0 has a person without an id"):
        _write("mot", tmp_path, rest)  # version 1: no header to say so
    assert list(tmp_path.iterdir()) == []  # nothing half-made left, temporaries included


def test_version_1_records_need_the_size_from_the_caller(tmp_path):
    v1 = [{k: v for k, v in r.items() if k != "type"} for r in _frames(_records())]
    for r in v1:
        r["schema"] = "hhrnet-rt/keypoints/1"
    with pytest.raises(InputError, match="give it with width='W' and height='H'"):
        _write("coco-dataset", tmp_path, v1)
    path = _write("coco-dataset", tmp_path, v1, defaults={"width": W, "height": H, "source": "walk.jsonl"})
    assert json.loads(path.read_text())["images"][0]["width"] == W


@pytest.mark.parametrize("fmt", list(FORMATS))
def test_an_existing_output_is_refused_and_replaced_only_with_overwrite(tmp_path, fmt):
    target = tmp_path / FORMATS[fmt].target_name("walk")
    if FORMATS[fmt].folder:
        target.mkdir()
        (target / "mine.txt").write_text("user's")
    else:
        target.write_text("user's")
    with pytest.raises(InputError, match="add overwrite=True"):  # the CLI says --overwrite
        FORMATS[fmt].open(target, overwrite=False)
    convert(_records(), [FORMATS[fmt].open(target, overwrite=True)])
    if FORMATS[fmt].folder:
        assert (target / "mine.txt").read_text() == "user's" and len(list(target.rglob("*"))) > 2
    else:
        assert target.read_text() != "user's"
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temporary left


@pytest.mark.parametrize("fmt", ["coco-dataset", "csv", "yolo"])
def test_a_run_cut_short_leaves_whole_files(tmp_path, fmt):
    """Interrupted after two frames (the pipeline closes its sinks in a finally): what is there parses."""
    writer = FORMATS[fmt].open(tmp_path / FORMATS[fmt].target_name("walk"), overwrite=False)
    records = _records()
    writer.begin(records[0])
    for frame in _frames(records)[:2]:
        writer.frame(frame)
    writer.close()
    if fmt == "coco-dataset":
        assert len(json.loads(writer.path.read_text())["images"]) == 2
    elif fmt == "csv":
        assert len(list(csv.DictReader(writer.path.open()))) == 3
    else:
        assert len(list((writer.path / "labels").iterdir())) == 2


def test_publish_folder_renames_whole_or_merges_only_with_overwrite(tmp_path):
    """How a --ray worker's format folder gets its name (hhrnet_rt.core.outputs.publish_folder)."""
    from hhrnet_rt.core.outputs import publish_folder

    def temporary(name):
        folder = tmp_path / name
        (folder / "labels").mkdir(parents=True)
        (folder / "labels" / "a.txt").write_text("new")
        return folder

    final = tmp_path / "walk.yolo"
    publish_folder(temporary(".t1"), final, overwrite=False)
    assert (final / "labels" / "a.txt").read_text() == "new" and not (tmp_path / ".t1").exists()
    (final / "mine.txt").write_text("user's")
    (final / "labels" / "a.txt").write_text("old")
    with pytest.raises(InputError, match="results are in"):
        publish_folder(temporary(".t2"), final, overwrite=False)
    assert (tmp_path / ".t2" / "labels" / "a.txt").exists() and (
        final / "labels" / "a.txt"
    ).read_text() == "old"
    publish_folder(tmp_path / ".t2", final, overwrite=True)
    assert (final / "labels" / "a.txt").read_text() == "new" and (final / "mine.txt").read_text() == "user's"
    assert not (tmp_path / ".t2").exists()
