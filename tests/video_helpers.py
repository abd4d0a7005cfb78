"""Helpers for the video tests: synthetic videos whose frames carry their own index, a fake estimator.

The fake estimator is only for pipeline mechanics (ordering, errors, interrupts, live policy); the
end-to-end tests use the real PoseEstimator with the golden tiny model.
"""

from __future__ import annotations

import threading
import time
from fractions import Fraction
from pathlib import Path

import numpy as np

from hhrnet_rt.poses import Poses

BITS = 8
LEVELS = (16, 235)  # video-range black and white survive H.264 at any sane quality


def index_image(index: int, width: int = 160, height: int = 120) -> np.ndarray:
    """A BGR picture whose 8 vertical bands spell ``index`` in binary (MSB first)."""
    image = np.empty((height, width, 3), np.uint8)
    band = width // BITS
    for b in range(BITS):
        bit = (index >> (BITS - 1 - b)) & 1
        image[:, b * band : (b + 1) * band] = LEVELS[bit]
    return image


def read_index(image: np.ndarray) -> int:
    """Inverse of :func:`index_image`; the median of each band's centre ignores thin drawn lines."""
    height, width = image.shape[:2]
    band = width // BITS
    value = 0
    for b in range(BITS):
        x0 = b * band + band // 4
        patch = image[height // 8 : height - height // 8, x0 : x0 + band // 2]
        value = (value << 1) | int(np.median(patch) > 128)
    return value


def make_video(
    path: Path, n: int, *, width: int = 160, height: int = 120, fps: int = 25, codec: str = "libx264"
) -> Path:
    """Write ``n`` index frames with PyAV."""
    import av

    with av.open(str(path), "w") as container:
        stream = container.add_stream(codec, rate=fps)
        stream.width, stream.height = width, height
        stream.pix_fmt = "yuvj420p" if codec == "mjpeg" else "yuv420p"
        for i in range(n):
            frame = av.VideoFrame.from_ndarray(index_image(i, width, height), format="bgr24")
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def make_video_with_bad_packets(path: Path, n: int, bad: set[int], *, fps: int = 25) -> Path:
    """MJPEG in Matroska where the packets of frames in ``bad`` are replaced by garbage bytes."""
    import av

    rng = np.random.default_rng(7)
    with av.open(str(path), "w") as container:
        stream = container.add_stream("mjpeg", rate=fps)
        stream.width, stream.height, stream.pix_fmt = 160, 120, "yuvj420p"
        for i in range(n):
            frame = av.VideoFrame.from_ndarray(index_image(i), format="bgr24")
            for packet in stream.encode(frame):
                if i in bad:
                    junk = av.Packet(rng.integers(0, 256, packet.size, dtype=np.uint8).tobytes())
                    junk.pts, junk.dts, junk.time_base = packet.pts, packet.dts, packet.time_base
                    junk.stream = stream
                    packet = junk
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def read_video(path: Path) -> tuple[list[np.ndarray], Fraction | None]:
    """Every frame of a video (BGR) and its average rate."""
    import av

    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        frames = [f.to_ndarray(format="bgr24") for f in container.decode(stream)]
        return frames, stream.average_rate


class FakeEstimator:
    """prepare/infer/decode with optional delays and a stage that raises; one person per frame.

    The person's nose x encodes the frame's own index (read from the picture), so tests can check that
    poses stay attached to the right frame.
    """

    num_joints = 17

    def __init__(
        self,
        *,
        delays: dict[str, float] | None = None,
        fail: dict[str, int] | None = None,
        block: threading.Event | None = None,
    ) -> None:
        self.delays = delays or {}
        self.fail = fail or {}  # stage name -> call number at which it raises
        self.calls = {"prepare": 0, "infer": 0, "decode": 0}
        self.block = block  # infer waits on this event (to simulate a stuck backend)

    def _step(self, stage: str) -> None:
        n = self.calls[stage]
        self.calls[stage] = n + 1
        if self.delays.get(stage):
            time.sleep(self.delays[stage])
        if self.fail.get(stage) == n:
            raise RuntimeError(f"boom in {stage}")

    def prepare(self, image):
        self._step("prepare")
        return {"index": read_index(image), "shape": image.shape}

    def infer(self, prepared):
        self._step("infer")
        if self.block is not None:
            self.block.wait()
        return {"maps": prepared["index"]}

    def decode(self, maps, prepared) -> Poses:
        self._step("decode")
        kp = np.zeros((1, 17, 3), np.float32)
        kp[0, :, 0] = float(prepared["index"])
        kp[0, :, 1] = 5.0
        kp[0, :, 2] = 0.05  # below the default drawing threshold: the index bands stay clean
        return Poses(kp, np.array([0.5], np.float32))


class PacedSource:
    """A synthetic source that yields index frames at a fixed rate (like a camera); raises on request."""

    def __init__(self, n: int, *, fps: float = 200.0, live: bool = True, fail_at: int | None = None) -> None:
        self.n, self.fps, self.live, self.fail_at = n, fps, live, fail_at
        self.rate = None
        self.frame_count = n
        self.decode_failures = 0
        self.description = "paced"
        self.closed = False
        self._i = 0
        self._t0 = time.perf_counter()

    def read(self):
        from hhrnet_rt.video import Frame

        if self._i == self.fail_at:
            raise RuntimeError("camera unplugged")
        if self._i >= self.n:
            return None
        delay = self._t0 + self._i / self.fps - time.perf_counter()
        if delay > 0:
            time.sleep(delay)
        now = time.perf_counter()
        frame = Frame(self._i, now - self._t0, index_image(self._i), now)
        self._i += 1
        return frame

    def close(self) -> None:
        self.closed = True


def run_in_thread(fn, timeout: float = 20.0):
    """Run ``fn`` in a thread; fail the test (instead of hanging) if it has not returned in ``timeout``."""
    box: dict = {}

    def target():
        try:
            box["value"] = fn()
        except BaseException as exc:  # noqa: BLE001 - handed back to the test
            box["error"] = exc

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    thread.join(timeout)
    assert not thread.is_alive(), f"did not return within {timeout} s (hang)"
    if "error" in box:
        raise box["error"]
    return box["value"]


def poses_from_record(record: dict, num_joints: int = 17) -> Poses:
    """The Poses a JSON lines record describes (to 0.005 px: the file rounds x/y to 0.01 px)."""
    if not record["people"]:
        return Poses.empty(num_joints)
    keypoints = np.array([p["keypoints"] for p in record["people"]], np.float32)
    return Poses(keypoints, np.array([p["score"] for p in record["people"]], np.float32))


def assert_output_frames(
    out_frames: list[np.ndarray], in_frames: list[np.ndarray], records: list[dict], *, skip_hud: bool = False
) -> None:
    """Output frame i must be input frame ``records[i]["frame"]`` with record i's people drawn on it.

    Redrawing from the JSON avoids a second inference; matching by nearest picture (not exact equality)
    absorbs H.264 loss, and checking that frame i is nearest to expectation i (not i-1 or i+1) checks order.
    """
    from hhrnet_rt.draw import PoseAnnotator

    assert len(out_frames) == len(records)
    annotator = PoseAnnotator()
    expected = [
        annotator.annotate(in_frames[r["frame"]].copy(), poses_from_record(r)).astype(np.float32)
        for r in records
    ]
    keep = np.ones(expected[0].shape[:2], bool) if expected else None
    if skip_hud:  # the HUD text changes every frame: leave out the top-left box (generously)
        h, w = keep.shape
        keep[: h // 3, : w // 2] = False
    for i, frame in enumerate(out_frames):
        errors = [float(np.mean((frame.astype(np.float32) - e)[keep] ** 2)) for e in expected]
        assert int(np.argmin(errors)) == i, (
            f"output frame {i} looks like expected frame {int(np.argmin(errors))}"
        )
        psnr = 10 * np.log10(255.0**2 / max(errors[i], 1e-9))
        # yuv420p halves the chroma resolution of the coloured 2-px skeleton lines, so a correct frame scores
        # only about 22-25 dB here; any other frame of these clips scores about 7-11 dB.
        assert psnr > 18, f"output frame {i}: PSNR {psnr:.1f} dB against its expected picture"


def decoded_frames(path: Path) -> list[np.ndarray]:
    """Input frames as the pipeline sees them (FileSource: undecodable packets skipped)."""
    from hhrnet_rt.video import FileSource

    source = FileSource(path)
    try:
        return [frame.image for frame in iter(source.read, None)]
    finally:
        source.close()
