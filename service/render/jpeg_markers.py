"""A JPEG's markers, read without decoding it: its scans and its luma
quantisation table, and whether that table is the JPEG standard's.

The render refuses a JPEG in too many scans (limits.MAX_JPEG_SCANS):
libjpeg decodes every scan before the first pixel, out of the render
deadline's reach. The save step keeps the JPEG standard's table for an
original made with it, near its own q (render/encoding.py). This reads
the file's bytes only.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

SCAN_CHUNK_BYTES = 1 << 18
_FILL_BLOCK_BYTES = 1 << 16
# Real JPEGs have tens of segments before their first scan.
_MAX_HEADER_SEGMENTS = 1024
_DQT = 0xDB  # define quantisation tables
# Stuffing (0x00), TEM, SOI, EOI and the restart markers carry no length.
_MARKERS_WITHOUT_LENGTH = frozenset({0x00, 0x01, 0xD8, 0xD9, *range(0xD0, 0xD8)})


def jpeg_scans(descriptor: int, *, stop_after: int | None = None) -> int:
    """The start-of-scan markers (0xFFDA) of the JPEG open at ``descriptor``,
    counting stopped once past ``stop_after``.

    Counted at C speed from the end of the metadata segments on:
    entropy-coded data never holds the pair (it stuffs each 0xFF with a
    zero), but an ICC profile or EXIF block may (a 400 KB profile in the
    test corpus holds 43). Between scans a table could hold it by chance:
    an extra count, far under the limit."""
    count, previous, position = 0, 0, _scans_start(descriptor)
    # One buffer under the service's 1 MiB mmap threshold, read into again
    # and again: a new bytes object per 1 MiB read was a fresh mapping whose
    # pages the kernel zeroed, a third of the count's time.
    chunk = bytearray(SCAN_CHUNK_BYTES)
    while read := os.preadv(descriptor, [chunk], position):
        count += chunk.count(b"\xff\xda", 0, read) + (previous == 0xFF and chunk[0] == 0xDA)
        if stop_after is not None and count > stop_after:
            break
        previous = chunk[read - 1]
        position += read
    return count


@dataclass(frozen=True, slots=True)
class _Segment:
    marker: int | None  # None: where the walk stopped
    position: int
    length: int = 0  # of its body, after the marker and the length field


def _header_segments(descriptor: int) -> Iterator[_Segment]:
    """The segments before the first scan, walked by their lengths as long
    as they are well formed; last, where the walk stopped. Anything else
    (junk, which libjpeg skips with a warning; a marker without a length;
    the first scan) ends the walk there."""
    position = 2  # after SOI
    for _ in range(_MAX_HEADER_SEGMENTS):
        head = os.pread(descriptor, 4, position)
        if len(head) < 4 or head[0] != 0xFF:
            break
        marker = head[1]
        if marker == 0xFF:  # fill bytes: skip the run, up to its last 0xFF
            run = os.pread(descriptor, _FILL_BLOCK_BYTES, position)
            fill = len(run) - len(run.lstrip(b"\xff"))
            position += fill if fill == len(run) else fill - 1
            continue
        if marker in _MARKERS_WITHOUT_LENGTH or marker == 0xDA:
            break
        length = int.from_bytes(head[2:4], "big")
        yield _Segment(marker, position, max(0, length - 2))
        position += 2 + length
    yield _Segment(None, position)


def _scans_start(descriptor: int) -> int:
    """Where the scans may begin: past the segments before the first scan
    (from there on, everything is counted)."""
    *_, stopped = _header_segments(descriptor)
    return stopped.position


def luma_quantisation(descriptor: int) -> tuple[int, ...] | None:
    """The JPEG's quantisation table 0 (the luma table, by convention), its
    64 values in the file's zig-zag order; None where the segments before
    the first scan define none."""
    for segment in _header_segments(descriptor):
        if segment.marker != _DQT:
            continue
        body = os.pread(descriptor, segment.length, segment.position + 4)
        offset = 0
        while offset < len(body):  # a segment may hold several tables
            precision, table = body[offset] >> 4, body[offset] & 0x0F
            size = 64 * (2 if precision else 1)
            values = body[offset + 1 : offset + 1 + size]
            if len(values) < size:
                return None
            if table == 0:
                if precision:
                    return tuple(
                        int.from_bytes(values[i : i + 2], "big") for i in range(0, size, 2)
                    )
                return tuple(values)
            offset += 1 + size
    return None


# The JPEG standard's (ITU T.81) Annex K luminance table, in natural order.
_ANNEX_K_LUMA = (
    16, 11, 10, 16, 24, 40, 51, 61,
    12, 12, 14, 19, 26, 58, 60, 55,
    14, 13, 16, 24, 40, 57, 69, 56,
    14, 17, 22, 29, 51, 87, 80, 62,
    18, 22, 37, 56, 68, 109, 103, 77,
    24, 35, 55, 64, 81, 104, 113, 92,
    49, 64, 78, 87, 103, 121, 120, 101,
    72, 92, 95, 98, 112, 100, 103, 99,
)  # fmt: skip
# The natural index of each coefficient in the zig-zag order a DQT holds.
_ZIGZAG = (
    0, 1, 8, 16, 9, 2, 3, 10, 17, 24, 32, 25, 18, 11, 4, 5,
    12, 19, 26, 33, 40, 48, 41, 34, 27, 20, 13, 6, 7, 14, 21, 28,
    35, 42, 49, 56, 57, 50, 43, 36, 29, 22, 15, 23, 30, 37, 44, 51,
    58, 59, 52, 45, 38, 31, 39, 46, 53, 60, 61, 54, 47, 55, 62, 63,
)  # fmt: skip


def annex_k_luma(quality: int) -> tuple[int, ...]:
    """The luma table libjpeg writes for Annex K at ``quality`` (its
    ``jpeg_set_quality`` scaling, baseline), in a DQT's zig-zag order."""
    scale = 5000 // quality if quality < 50 else 200 - 2 * quality
    return tuple(min(255, max(1, (_ANNEX_K_LUMA[i] * scale + 50) // 100)) for i in _ZIGZAG)


_ANNEX_K_QUALITY = {annex_k_luma(q): q for q in range(100, 0, -1)}  # equal tables: the lower q


def annex_k_quality(luma: Sequence[int] | None) -> int | None:
    """The q of an original JPEG whose luma table is Annex K's at that q;
    None for any other table."""
    return None if luma is None else _ANNEX_K_QUALITY.get(tuple(luma))
