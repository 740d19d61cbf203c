"""Counting a JPEG's scans from its markers, without decoding it.

The render refuses a JPEG in too many scans (limits.MAX_JPEG_SCANS):
libjpeg decodes every scan before the first pixel, out of the render
deadline's reach. This reads the file's bytes only.
"""

from __future__ import annotations

import os

_SCAN_CHUNK_BYTES = 1 << 20
_FILL_BLOCK_BYTES = 1 << 16
# Real JPEGs have tens of segments before their first scan.
_MAX_HEADER_SEGMENTS = 1024
# Stuffing (0x00), TEM, SOI, EOI and the restart markers carry no length.
_MARKERS_WITHOUT_LENGTH = frozenset({0x00, 0x01, 0xD8, 0xD9, *range(0xD0, 0xD8)})


def jpeg_scans(descriptor: int, *, stop_after: int | None = None) -> int:
    """The start-of-scan markers (0xFFDA) of the JPEG open at ``descriptor``,
    counting stopped once past ``stop_after``.

    Counted at C speed, in 1 MiB chunks, from the end of the metadata
    segments on: entropy-coded data never holds the pair (it stuffs each
    0xFF with a zero), but an ICC profile or EXIF block may (a 400 KB
    profile in the test corpus holds 43). Between scans a table could hold
    it by chance: an extra count, far under the limit."""
    count, carry, position = 0, b"", _scans_start(descriptor)
    while chunk := os.pread(descriptor, _SCAN_CHUNK_BYTES, position):
        count += (carry + chunk).count(b"\xff\xda")
        if stop_after is not None and count > stop_after:
            break
        carry = chunk[-1:]
        position += len(chunk)
    return count


def _scans_start(descriptor: int) -> int:
    """Where the scans may begin: past the segments before the first scan,
    walked by their lengths as long as they are well formed. Anything else
    (junk, which libjpeg skips with a warning; a marker without a length;
    the first scan) ends the walk there, and everything from there on is
    counted."""
    position = 2  # after SOI
    for _ in range(_MAX_HEADER_SEGMENTS):
        head = os.pread(descriptor, 4, position)
        if len(head) < 4 or head[0] != 0xFF:
            return position
        marker = head[1]
        if marker == 0xFF:  # fill bytes: skip the run, up to its last 0xFF
            run = os.pread(descriptor, _FILL_BLOCK_BYTES, position)
            fill = len(run) - len(run.lstrip(b"\xff"))
            position += fill if fill == len(run) else fill - 1
            continue
        if marker in _MARKERS_WITHOUT_LENGTH or marker == 0xDA:
            return position
        position += 2 + int.from_bytes(head[2:4], "big")
    return position
