"""Every frame FFmpeg can decode from a video stream, in order: fast frame threads that lose nothing.

FFmpeg's frame threading decodes several frames at once and keeps them in flight. When a packet fails
to decode (a file cut short: the demuxer flags the last, partial packet as corrupt), the frames still in
flight are lost without an error: a 60-frame H.264 mp4 cut at half its size gave 27 frames with frame
threads and 29 with slice threads (the 30th, partial packet fails either way). So the decoder starts
with frame threads (capture keeps up with 1080p) and, at the first packet the demuxer flags as corrupt,
drains what is in flight and continues on a fresh slice-threaded decoder. That decoder first replays the
packets since the last keyframe (the references the next frames need); the frames it rebuilds this way
were already delivered and are dropped by their timestamps.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

# Packets since the last keyframe are kept for the switch. A long GOP of a high-rate file can be large:
# beyond this many bytes the copy is dropped, and the switch (if one comes) starts at the next keyframe.
REPLAY_LIMIT_BYTES = 64 * 1024 * 1024


class StreamDecoder:
    """Decode one video stream of an open PyAV container.

    Attributes:
        failures: packets that could not be decoded (or 1 for a container that breaks off), skipped.
        switched: whether a corrupt packet made the decoder switch to slice threads.
    """

    def __init__(self, container: Any, stream: Any) -> None:
        self._container = container
        self._stream = stream
        stream.thread_type = "AUTO"  # frame threads where the codec has them (H.264, HEVC, VP9, ...)
        self._decoder = stream.codec_context
        self._since_key: list[Any] | None = []  # None: over REPLAY_LIMIT_BYTES since the last keyframe
        self._since_key_bytes = 0
        self._last_pts: int | None = None  # of the newest frame delivered: replayed frames are older
        self.failures = 0
        self.switched = False

    def frames(self) -> Iterator[Any]:
        """Yield ``av.VideoFrame`` objects in presentation order until the stream (or file) ends."""
        import av

        packets = self._container.demux(self._stream)
        while True:
            try:
                packet = next(packets)
            except StopIteration:
                break
            except av.error.FFmpegError:
                # A broken container structure: nothing after it can be located reliably.
                self.failures += 1
                break
            if packet.size == 0:  # demux's end-of-stream marker; the decoder is drained below
                continue
            if packet.is_corrupt and not self.switched:
                yield from self._switch_to_slice_threads()
            if not self.switched:
                self._remember(packet)
            yield from self._decode(packet)
        yield from self._decode(None)

    def _decode(self, packet: Any, *, count_failures: bool = True) -> Iterator[Any]:
        import av

        try:
            frames = self._decoder.decode(packet)
        except av.error.FFmpegError:
            self.failures += count_failures  # one bad packet: count it and carry on with the next
            return
        for frame in frames:
            if frame.time_base is None:  # packet.decode() sets it; a codec context's decode() does not
                frame.time_base = self._stream.time_base
            if frame.pts is not None:
                if self.switched and self._last_pts is not None and frame.pts <= self._last_pts:
                    continue  # rebuilt by the replay after the switch: already delivered
                self._last_pts = frame.pts if self._last_pts is None else max(frame.pts, self._last_pts)
            yield frame

    def _remember(self, packet: Any) -> None:
        if packet.is_keyframe:
            self._since_key, self._since_key_bytes = [], 0
        if self._since_key is None:
            return
        self._since_key_bytes += packet.size
        if self._since_key_bytes > REPLAY_LIMIT_BYTES:
            self._since_key = None
        else:
            self._since_key.append(packet)

    def _switch_to_slice_threads(self) -> Iterator[Any]:
        import av

        yield from self._decode(None)  # drain: the frames in flight are whole, the bad packet is not sent yet
        old = self._decoder
        fresh = av.CodecContext.create(old.name, "r")
        fresh.extradata = old.extradata  # SPS/PPS for H.264 in mp4 live here, not in the packets
        # Codecs whose packets do not describe the picture (raw video) need these from the container.
        fresh.width, fresh.height, fresh.pix_fmt = old.width, old.height, old.pix_fmt
        fresh.thread_type = "SLICE"
        self._decoder, self.switched = fresh, True
        for packet in self._since_key or ():
            yield from self._decode(packet, count_failures=False)  # failures were counted the first time
        self._since_key = None
