"""One choice of people: what is drawn = what the HUD and the summary count = what the files hold.

A stand-in estimator returns four people at known places with person scores 0.05, 0.2, 0.5 and 0.9, so
each person's pixels, the HUD's text and the JSON lines can be checked against the threshold exactly.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from rich.console import Console

from hhrnet_rt.poses import Poses
from hhrnet_rt.video import JsonLinesSink, run_pipeline
from hhrnet_rt.video import stages as stages_module
from hhrnet_rt.video.records import frames_of
from hhrnet_rt.video.report import summary_table
from hhrnet_rt.video.sources import Frame

SCORES = (0.05, 0.2, 0.5, 0.9)
W, H, FRAMES = 320, 160, 3


def _x(person: int) -> int:
    return 60 + 70 * person  # clear of the HUD box in the top-left corner


class _Blank:
    live, fps, size, frame_count, decode_failures, description = False, 25.0, (W, H), FRAMES, 0, "blank"

    def __init__(self) -> None:
        self.n = 0

    def read(self):
        if self.n == FRAMES:
            return None
        self.n += 1
        return Frame(self.n - 1, (self.n - 1) / 25, np.zeros((H, W, 3), np.uint8), 0.0)

    def close(self) -> None:
        pass


class _FourPeople:
    def prepare(self, image):
        return image

    def infer(self, prepared):
        return None

    def decode(self, maps, prepared) -> Poses:
        kp = np.zeros((len(SCORES), 17, 3), np.float32)
        for p in range(len(SCORES)):
            kp[p, :, :] = (_x(p), 120.0, 0.9)  # every joint on one spot, found with score 0.9
        return Poses(kp, np.array(SCORES, np.float32))


class _Keep:
    def __init__(self) -> None:
        self.images = []

    def write(self, result) -> None:
        self.images.append(result.image.copy())

    def close(self) -> None:
        pass


def _run(tmp_path, monkeypatch, *, min_score=None, max_people=None):
    hud_lines = []
    real_hud = stages_module.draw_hud

    def spy(frame, lines, **kw):
        hud_lines.append(list(lines))
        return real_hud(frame, lines, **kw)

    monkeypatch.setattr(stages_module, "draw_hud", spy)
    keep, js = _Keep(), tmp_path / "k.jsonl"
    result = run_pipeline(
        _Blank(), _FourPeople(), [keep, JsonLinesSink(js)], hud=True,
        min_score=min_score, max_people=max_people,
    )  # fmt: skip
    records = frames_of(json.loads(line) for line in js.read_text().splitlines())
    drawn = [
        [p for p in range(len(SCORES)) if image[110:131, _x(p) - 10 : _x(p) + 11].any()]
        for image in keep.images
    ]
    counted = [int(next(t for t in lines if t.startswith("people")).split()[1]) for lines in hud_lines]
    console = Console(width=200, record=True)
    console.print(summary_table(result))
    return result, records, drawn, counted, console.export_text()


@pytest.mark.parametrize(("min_score", "max_people", "kept"), [(0.3, None, [2, 3]), (0.2, 2, [2, 3]),
                                                               (None, 1, [3]), (0.0, None, [0, 1, 2, 3])])  # fmt: skip
def test_drawn_counted_and_written_are_the_same_people(tmp_path, monkeypatch, min_score, max_people, kept):
    result, records, drawn, counted, summary = _run(tmp_path, monkeypatch, min_score=min_score,
                                                    max_people=max_people)  # fmt: skip
    if min_score is None:  # only --max-people: the picture still hides the 0.05 fragment, if kept
        kept_drawn = [p for p in kept if SCORES[p] > 0.1]
    else:
        kept_drawn = kept
    written = [sorted(SCORES.index(round(person["score"], 4)) for person in r["people"]) for r in records]
    assert written == [kept] * FRAMES
    assert drawn == [kept_drawn] * FRAMES
    assert counted == [len(kept_drawn)] * FRAMES
    assert result.people_written == len(kept) * FRAMES and result.people_drawn == len(kept_drawn) * FRAMES
    assert "people (all frames)" in summary and str(len(kept) * FRAMES) in summary


def test_default_files_keep_everyone_and_the_picture_hides_fragments(tmp_path, monkeypatch):
    result, records, drawn, counted, summary = _run(tmp_path, monkeypatch)
    assert all(len(r["people"]) == 4 for r in records)  # official: every group, as the evaluation wants
    assert drawn == [[1, 2, 3]] * FRAMES and counted == [3] * FRAMES  # the HUD counts what is drawn
    assert f"{3 * FRAMES} drawn / {4 * FRAMES} in the files" in summary
