"""A live stream on 127.0.0.1 that can be made to fail: FFmpeg serving MPEG-TS over HTTP in listen mode,
fed consecutively numbered pictures by a thread that plays a camera at its frame rate.

For the chaos test and ``benchmarks/bench_chaos.py``: :meth:`StreamServer.kill` and :meth:`start` make an
outage (a server restart, optionally at another size), :meth:`stall` stops the server process without
closing the connection (a camera that hangs), and a server never started again is a stream that never
comes back. Each picture spells its number in vertical bands (:func:`numbered_image`, read back by
:func:`read_number`), so a reader can tell which camera frames it received, twice or out of order.

Needs the ``ffmpeg`` program (Debian: ``apt-get install ffmpeg``): :func:`ffmpeg_problem` says what is
missing, for a skip with a reason.
"""

from __future__ import annotations

import contextlib
import shutil
import signal
import socket
import subprocess
import threading
import time

import numpy as np

BITS = 16  # 65536 numbers: over 40 minutes at 25 fps
_LEVELS = (16, 235)  # video-range black and white survive lossy coding


def numbered_image(number: int, width: int, height: int) -> np.ndarray:
    """A BGR picture whose ``BITS`` vertical bands spell ``number`` in binary (MSB first)."""
    image = np.empty((height, width, 3), np.uint8)
    band = width // BITS
    for b in range(BITS):
        image[:, b * band : (b + 1) * band] = _LEVELS[(number >> (BITS - 1 - b)) & 1]
    image[:, BITS * band :] = _LEVELS[0]
    return image


def read_number(image: np.ndarray) -> int:
    """Inverse of :func:`numbered_image` (the median of each band's centre)."""
    height, width = image.shape[:2]
    band = width // BITS
    value = 0
    for b in range(BITS):
        patch = image[height // 4 : height - height // 4, b * band + band // 4 : b * band + band - band // 4]
        value = (value << 1) | int(np.median(patch) > 128)
    return value


def ffmpeg_problem() -> str | None:
    """Why no stream server can run here, or ``None``."""
    return None if shutil.which("ffmpeg") else "the ffmpeg program is not installed (apt-get install ffmpeg)"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class StreamServer:
    """One camera's stream at ``url`` (see the module docstring).

    Args:
        width, height: the pictures' size (``start`` may change it: a camera that reconnects at another).
        fps: the camera's frame rate. Its pictures are numbered 0, 1, 2 ... across restarts, none skipped
            (one the feeder is late for is sent late): a number a reader never got was lost on the way,
            in the server that was killed or in the reader.
    """

    def __init__(self, width: int = 160, height: int = 48, fps: float = 25.0) -> None:
        self.port, self.fps = free_port(), fps
        self.size = (width, height)
        self.url = f"http://127.0.0.1:{self.port}/live.ts"
        self._lock = threading.Lock()
        self._up = False  # whether the server is meant to answer (start) or gone (kill)
        self._proc: subprocess.Popen[bytes] | None = None
        self._thread: threading.Thread | None = None
        self._next = 0  # the next picture's number

    def start(self, size: tuple[int, int] | None = None) -> None:
        """Serve (again); the stream's reader may connect from now on."""
        self.kill()
        self.size = size or self.size
        self._up = True
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()
        self._wait_listening()

    def _serve(self) -> None:
        """FFmpeg in listen mode serves one client and exits when it leaves: start it again for the next
        (as a real server takes the next client), for as long as the server is up."""
        width, height = self.size
        while True:
            with self._lock:
                if not self._up:
                    return
                self._proc = subprocess.Popen(
                    ["ffmpeg", "-nostdin", "-hide_banner", "-loglevel", "error", "-f", "rawvideo",
                     "-pix_fmt", "bgr24", "-s", f"{width}x{height}", "-framerate", str(self.fps), "-i", "pipe:0",
                     "-c:v", "mpeg1video", "-q:v", "2", "-g", str(max(1, round(self.fps / 5))), "-f", "mpegts",
                     "-listen", "1", self.url],
                    stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                )  # fmt: skip
                proc = self._proc
            self._feed(proc)
            proc.wait()

    def _wait_listening(self, timeout_s: float = 5.0) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:  # not by connecting: that would be FFmpeg's one client
            if _listening(self.port):
                return
            time.sleep(0.02)

    def _feed(self, proc: subprocess.Popen[bytes]) -> None:
        assert proc.stdin is not None
        width, height = self.size
        t0, sent = time.monotonic(), 0
        try:
            while proc.poll() is None:
                proc.stdin.write(numbered_image(self._next, width, height).tobytes())
                proc.stdin.flush()
                self._next, sent = self._next + 1, sent + 1
                time.sleep(max(0.0, t0 + sent / self.fps - time.monotonic()))
        except (BrokenPipeError, OSError, ValueError):
            pass  # the picture died with the server: its number is lost
        finally:
            with contextlib.suppress(OSError, ValueError):
                proc.stdin.close()

    def stall(self) -> None:
        """Stop sending without closing the connection (the process is frozen; ``kill`` or ``start`` ends
        it)."""
        with self._lock:
            if self._proc is not None and self._proc.poll() is None:
                self._proc.send_signal(signal.SIGSTOP)

    def kill(self) -> None:
        """The server goes away (its connection closes)."""
        with self._lock:
            self._up = False
            proc, self._proc = self._proc, None
            if proc is not None:
                proc.kill()  # SIGKILL ends a stopped process too
        if self._thread is not None:
            self._thread.join(timeout=10)
            self._thread = None

    def __enter__(self) -> StreamServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.kill()


def _listening(port: int) -> bool:
    """Whether a socket on this machine listens on ``port`` (Linux: /proc/net/tcp; elsewhere assume so)."""
    try:
        with open("/proc/net/tcp") as f:
            rows = f.read().splitlines()[1:]
    except OSError:
        return True
    return any(row.split()[1].endswith(f":{port:04X}") and row.split()[3] == "0A" for row in rows)
