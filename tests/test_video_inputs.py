"""Video inputs that are not a clean constant-rate file: cut short, rotated, variable frame rate.

Nothing is dropped silently: every frame FFmpeg can decode comes out (frame threading used to lose the
ones in flight when a cut file's last packet failed), undecodable packets are counted, a file that gives
fewer frames than its container announces says so, rotated phone video comes out upright, and variable
frame rate keeps its timing in the JSON lines and the mp4 alike.
"""

from __future__ import annotations

import json
from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np
import pytest
from typer.testing import CliRunner
from video_helpers import index_image, read_index

from hhrnet_rt.cli import app
from hhrnet_rt.video import FileSource
from hhrnet_rt.video.records import frames_of

runner = CliRunner()


def write_h264(path: Path, times_ms: list[int], *, rotation: int = 0, faststart: bool = True) -> Path:
    """Index frames at the given presentation times (ms); the lower half is noise so packets are large."""
    rng = np.random.default_rng(0)
    options = {"movflags": "+faststart"} if faststart else {}
    with av.open(str(path), "w", options=options) as container:
        stream = container.add_stream("libx264", rate=25)
        stream.width, stream.height, stream.pix_fmt = 160, 120, "yuv420p"
        stream.codec_context.time_base = Fraction(1, 1000)
        if rotation:
            stream.set_display_rotation(rotation)
        for i, t in enumerate(times_ms):
            image = index_image(i).copy()
            image[90:] = rng.integers(0, 256, (30, 160, 3), dtype=np.uint8)
            frame = av.VideoFrame.from_ndarray(image, format="bgr24")
            frame.pts, frame.time_base = t, Fraction(1, 1000)
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def slice_threaded_count(path: Path) -> tuple[int, int]:
    """(frames, failed packets) of a plain slice-threaded decode: what FFmpeg can decode of the file."""
    frames = failures = 0
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        stream.thread_type = "SLICE"
        for packet in container.demux(stream):
            try:
                frames += len(packet.decode())
            except av.error.FFmpegError:
                failures += 1
    return frames, failures


@pytest.fixture(scope="module")
def cut_file(tmp_path_factory) -> Path:
    """A 60-frame H.264 mp4 (index at the front) cut at half its size, as an interrupted copy leaves it."""
    folder = tmp_path_factory.mktemp("cut")
    whole = write_h264(folder / "whole.mp4", [40 * i for i in range(60)])
    data = whole.read_bytes()
    cut = folder / "cut.mp4"
    cut.write_bytes(data[: len(data) // 2])
    return cut


def test_a_cut_file_gives_every_decodable_frame_in_order(cut_file):
    expected_frames, expected_failures = slice_threaded_count(cut_file)
    assert 20 < expected_frames < 40  # about half of the 60
    source = FileSource(cut_file)
    frames = list(iter(source.read, None))
    source.close()
    # Frame threads alone gave 2 frames fewer here (the ones in flight when the cut packet failed).
    assert len(frames) == expected_frames
    assert [read_index(f.image) for f in frames] == list(range(expected_frames))
    assert [f.index for f in frames] == list(range(expected_frames))
    np.testing.assert_allclose(
        [f.timestamp for f in frames], [0.04 * i for i in range(expected_frames)], atol=1e-9
    )
    assert source.decode_failures == expected_failures == 1  # the partial packet, counted once


def test_a_gap_in_a_transport_stream_loses_no_decodable_frame(tmp_path):
    """20 TS packets lost mid-file: the demuxer flags the damaged packet corrupt, the decoder switches to
    slice threads there and replays from the last keyframe; no frame is lost or delivered twice."""
    rng = np.random.default_rng(0)
    with av.open(str(tmp_path / "whole.ts"), "w") as container:
        stream = container.add_stream("libx264", rate=25)
        stream.width, stream.height, stream.pix_fmt = 160, 120, "yuv420p"
        for i in range(40):
            image = index_image(i).copy()
            image[90:] = rng.integers(0, 256, (30, 160, 3), dtype=np.uint8)
            for packet in stream.encode(av.VideoFrame.from_ndarray(image, format="bgr24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    data = (tmp_path / "whole.ts").read_bytes()
    cut = len(data) // 2 // 188 * 188
    gap = tmp_path / "gap.ts"
    gap.write_bytes(data[:cut] + data[cut + 20 * 188 :])
    source = FileSource(gap)
    frames = list(iter(source.read, None))
    source.close()
    assert source._decoder.switched  # the case this test is about
    assert len(frames) == slice_threaded_count(gap)[0]
    indices = [read_index(f.image) for f in frames]
    assert indices[:10] == list(range(10)) and indices[-5:] == list(range(35, 40))
    times = [f.timestamp for f in frames]
    assert all(b > a for a, b in zip(times, times[1:], strict=False))  # in order, none twice


def test_a_cut_file_is_reported(cut_file, tmp_path, tiny):
    result = runner.invoke(app, ["video", str(cut_file), "--out", str(tmp_path / "o.mp4"), *tiny])
    assert result.exit_code == 0, result.output
    out = " ".join(result.output.split())  # Rich wraps long lines
    assert "announces 60 frames but" in out and "cut short or damaged" in out


def test_a_whole_file_or_max_frames_gives_no_shortfall_warning(tmp_path, tiny):
    clip = write_h264(tmp_path / "whole.mp4", [40 * i for i in range(5)])
    for extra in ([], ["--max-frames", "2"]):
        result = runner.invoke(
            app, ["video", str(clip), "--out", str(tmp_path / f"o{len(extra)}.mp4"), *tiny, *extra]
        )
        assert result.exit_code == 0, result.output
        assert "announces" not in result.output


@pytest.mark.parametrize("rotation", [90, -90, 180])
def test_rotated_video_is_turned_upright(tmp_path, rotation):
    """OpenCV's capture applies the display matrix by default: an independent reference for the turn."""
    clip = write_h264(tmp_path / "phone.mp4", [0, 40, 80], rotation=rotation)
    source = FileSource(clip)
    ours = [f.image for f in iter(source.read, None)]
    source.close()
    capture = cv2.VideoCapture(str(clip))
    theirs = [capture.read()[1] for _ in range(3)]
    capture.release()
    for a, b in zip(ours, theirs, strict=True):
        assert a.shape == b.shape == ((120, 160, 3) if rotation == 180 else (160, 120, 3))
        np.testing.assert_array_equal(a, b)  # same decoder, same lossless 90-degree turns
    assert source.size == (ours[0].shape[1], ours[0].shape[0])
    assert read_index(np.rot90(ours[2], -(rotation // 90))) == 2  # turned back, the stored picture


def test_rotated_video_output_plays_upright(tmp_path, tiny):
    clip = write_h264(tmp_path / "phone.mp4", [0, 40, 80], rotation=-90)
    out = tmp_path / "o.mp4"
    result = runner.invoke(app, ["video", str(clip), "--out", str(out), *tiny])
    assert result.exit_code == 0, result.output
    with av.open(str(out)) as container:
        frame = next(container.decode(video=0))
    # The pixels are upright and no display rotation is left over to turn them a second time.
    assert (frame.width, frame.height) == (120, 160) and not frame.rotation


def test_variable_frame_rate_keeps_its_timing(tmp_path, tiny):
    times_ms = [0, 40, 80, 200, 240, 500, 520]
    clip = write_h264(tmp_path / "vfr.mp4", times_ms)
    out, js = tmp_path / "o.mp4", tmp_path / "o.jsonl"
    result = runner.invoke(app, ["video", str(clip), "--out", str(out), "--json", str(js), *tiny])
    assert result.exit_code == 0, result.output
    records = frames_of(json.loads(line) for line in js.read_text().splitlines())
    expected = [t / 1000 for t in times_ms]
    np.testing.assert_allclose([r["timestamp"] for r in records], expected, atol=1e-6)
    with av.open(str(out)) as container:
        shown_at = [frame.time for frame in container.decode(video=0)]
    # The mp4 shows frame i when the JSON says (was: one frame per 1/25 s, 0.00 ... 0.24 s). The output's
    # time base is the input's (1 ms here), so the times agree to float rounding.
    np.testing.assert_allclose(shown_at, expected, atol=1e-6)
