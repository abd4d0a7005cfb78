"""The JPEG marker walk, exactly as libjpeg (OpenCV's decoder) does it: the size a JPEG will decode to, and
whether its compressed data is cut short, read without decoding a pixel.

The server bounds images by the size in their header before decoding; a walk that disagrees with the
decoder's lets a file that "says" 1x1 decode to 16000x16000. libjpeg's rules (``jdmarker.c``,
``next_marker`` and ``read_markers``), followed here:

- any bytes other than 0xFF before a marker are skipped (libjpeg warns "extraneous bytes"), and so are
  stuffed ``FF 00`` pairs; repeated 0xFF are fill bytes;
- SOI, EOI, RST0-7 and TEM have no parameters; every other marker before the frame has a 2-byte length;
- the first SOF0/1/2/9/10 (C0 C1 C2 C9 CA) gives the frame; other SOF kinds and unknown markers are
  errors to libjpeg (and so here), as is a scan (SOS) or EOI before any frame.

Example:
    >>> jpeg_header(b"\\xff\\xd8\\xff\\xc0\\x00\\x0b\\x08\\x00\\x02\\x00\\x03\\x01\\x01\\x11\\x00")
    JpegHeader(width=3, height=2, scan=None)
"""

from __future__ import annotations

import struct
from typing import NamedTuple

SOI_MAGIC = b"\xff\xd8"
_FRAMES = {0xC0, 0xC1, 0xC2, 0xC9, 0xCA}  # what libjpeg decodes (baseline, extended, progressive, arith.)
_NO_PARAMETERS = {0xD8, 0xD9, 0x01, *range(0xD0, 0xD8)}  # SOI, EOI, TEM, RST0-7
_SKIPPED = {0xC4, 0xCC, 0xDB, 0xDD, 0xDC, 0xFE, *range(0xE0, 0xF0)}  # DHT DAC DQT DRI DNL COM APPn
_SOS, _EOI = 0xDA, 0xD9
#: How a cut-short JPEG is described to users (file and server alike).
CUT_SHORT = (
    "cut short (its data ends before the end-of-image marker; part of it would be grey): copy it again"
)


class JpegHeader(NamedTuple):
    """``width`` x ``height`` of the frame; ``scan``: offset of the first scan's marker (``None`` if the
    walk stopped at the frame, as :func:`jpeg_header` does unless asked for the scan)."""

    width: int
    height: int
    scan: int | None


class JpegHeaderError(ValueError):
    """The bytes are not a JPEG libjpeg would decode; the text says why."""


def _next_marker(data: bytes, pos: int) -> tuple[int, int, int]:
    """(marker, offset of its first 0xFF, offset just past the marker byte) at or after ``pos``,
    skipping what libjpeg skips."""
    n = len(data)
    while True:
        while pos < n and data[pos] != 0xFF:  # extraneous bytes
            pos += 1
        start = pos
        while pos < n and data[pos] == 0xFF:  # the marker's 0xFF and any fill bytes
            pos += 1
        if pos >= n:
            raise JpegHeaderError("the JPEG data ends before its frame header")
        if data[pos] != 0:  # FF 00 is stuffed data, not a marker: go on
            return data[pos], start, pos + 1
        pos += 1


def jpeg_header(data: bytes, *, find_scan: bool = False) -> JpegHeader:
    """The frame size libjpeg reads from ``data`` (and, with ``find_scan``, where the first scan starts).

    Raises:
        JpegHeaderError: not a JPEG, no frame header, or a header libjpeg refuses.
    """
    if not data.startswith(SOI_MAGIC):
        raise JpegHeaderError("not a JPEG (no start-of-image marker)")
    pos, frame = 2, None
    while True:
        marker, at, pos = _next_marker(data, pos)
        if marker in _NO_PARAMETERS:
            if marker == 0xD8:
                raise JpegHeaderError("a second start-of-image marker")
            if marker == _EOI:
                raise JpegHeaderError("the JPEG ends (EOI) before its image data")
            continue
        if pos + 2 > len(data):
            raise JpegHeaderError("the JPEG data ends inside a marker segment")
        (length,) = struct.unpack(">H", data[pos : pos + 2])
        if length < 2:
            raise JpegHeaderError(f"a marker segment of impossible length {length}")
        if marker in _FRAMES:
            if frame is not None:
                raise JpegHeaderError("a second frame header")
            if length < 8 or pos + 7 > len(data):
                raise JpegHeaderError("the frame header is cut short")
            height, width = struct.unpack(">HH", data[pos + 3 : pos + 7])
            frame = (width, height)
            if not find_scan:
                return JpegHeader(width, height, None)
        elif marker == _SOS:
            if frame is None:
                raise JpegHeaderError("a scan before the frame header")
            return JpegHeader(*frame, at)
        elif marker not in _SKIPPED:
            raise JpegHeaderError(f"a marker libjpeg does not decode (0xFF{marker:02X})")
        pos += length


def jpeg_cut_short(data: bytes) -> bool:
    """The JPEG's compressed data has no end-of-image marker after its first scan: the file was cut short
    (an interrupted copy or download), and decoders fill the missing part with grey without an error.

    Inside scan data every 0xFF is stuffed (``FF 00``) or a restart marker, so an ``FF D9`` after the
    first scan is the end-of-image marker. A file that is not a readable JPEG is not judged here.
    """
    try:
        scan = jpeg_header(data, find_scan=True).scan
    except JpegHeaderError:
        return False
    return scan is not None and data.find(b"\xff\xd9", scan + 2) < 0
