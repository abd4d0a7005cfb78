"""``--segment-time``: a long recording in playable pieces, so an end without close (SIGKILL, power loss)
costs only the piece being written (issue 20)."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner
from video_helpers import index_image, make_video, read_index, read_video

from hhrnet_rt.cli import app
from hhrnet_rt.core.errors import InputError
from hhrnet_rt.poses import Poses
from hhrnet_rt.video.segments import SegmentedMp4Sink, segment_path
from hhrnet_rt.video.sinks import FrameResult, Mp4Sink
from hhrnet_rt.video.sources import Frame


def _result(k: int, fps: float = 10.0) -> FrameResult:
    image = index_image(k, 64, 48)
    return FrameResult(Frame(k, k / fps, image, 0.0), Poses.empty(), image, 0.0)


def test_segments_split_by_time_and_the_closed_ones_play_when_the_last_is_never_closed(tmp_path):
    sink = SegmentedMp4Sink(tmp_path / "rec.mp4", 0.3, lambda p: Mp4Sink(p, 10.0, timestamps="capture"))
    for k in range(10):
        sink.write(_result(k))
    # no close(): the process was killed while writing the 4th segment
    assert sink.paths == [segment_path(tmp_path / "rec.mp4", k) for k in range(4)]
    assert sink.paths[0].name == "rec_000.mp4"
    for k, expected in enumerate(([0, 1, 2], [3, 4, 5], [6, 7, 8])):
        frames, _ = read_video(sink.paths[k])
        assert [read_index(f) for f in frames] == expected
    sink.close()
    assert [read_index(f) for f in read_video(sink.paths[3])[0]] == [9]


def test_a_taken_first_segment_name_is_refused_before_the_run(tmp_path):
    (tmp_path / "rec_000.mp4").write_bytes(b"someone's file")
    with pytest.raises(InputError, match="rec_000.mp4"):
        SegmentedMp4Sink(tmp_path / "rec.mp4", 1.0, lambda p: Mp4Sink(p, 10.0))
    assert (tmp_path / "rec_000.mp4").read_bytes() == b"someone's file"


def test_cli_video_segment_time(tmp_path, tiny):
    clip = make_video(tmp_path / "clip.mp4", 12, width=64, height=48, fps=5)  # 2.4 s: 1 s pieces
    out = tmp_path / "o.mp4"
    result = CliRunner().invoke(app, ["video", str(clip), "--out", str(out), "--segment-time", "1", *tiny])
    assert result.exit_code == 0, result.output
    assert [len(read_video(segment_path(out, k))[0]) for k in range(3)] == [5, 5, 2]
    assert not out.exists() and not segment_path(out, 3).exists()
