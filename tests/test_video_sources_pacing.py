"""A video file played as a camera keeps its own frame rate, counted from the first read (fake clock)."""

from __future__ import annotations

import pytest
from video_helpers import make_video

from hhrnet_rt.video import sources


class FakeClock:
    """Stands in for the ``time`` module inside hhrnet_rt.video.sources: sleeping advances the clock."""

    def __init__(self, start: float = 1000.0) -> None:
        self.now = start
        self.sleeps: list[float] = []

    def perf_counter(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


@pytest.fixture
def clock(monkeypatch):
    fake = FakeClock()
    monkeypatch.setattr(sources, "time", fake)
    return fake


def test_paced_file_waits_from_the_first_read_not_from_opening(tmp_path, clock):
    path = make_video(tmp_path / "clip.mp4", 5, fps=25)
    source = sources.CameraSource(str(path))
    try:
        clock.now += 20.0  # the model loads between opening the source and the first read
        frames = [source.read() for _ in range(4)]
    finally:
        source.close()
    assert [f.index for f in frames] == [0, 1, 2, 3]
    # One sleep per frame after the first, each one frame interval: the 20 s of loading are not "owed".
    assert clock.sleeps == pytest.approx([0.04, 0.04, 0.04])
    assert [f.timestamp for f in frames] == pytest.approx([0.0, 0.04, 0.08, 0.12])


def test_unpaced_source_never_sleeps(tmp_path, clock):
    path = make_video(tmp_path / "clip.mp4", 3, fps=25)
    source = sources.CameraSource(str(path), pace=False)
    try:
        assert all(source.read() is not None for _ in range(3))
    finally:
        source.close()
    assert clock.sleeps == []
