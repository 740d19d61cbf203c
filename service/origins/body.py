"""A stand-in for the lead's BodySink: counts a download and writes it to a descriptor.

Same signatures as the real one (issue 19's design); the real one also sniffs
the first bytes and refuses what is not an image. This one exists only so the
S3 client can be built and tested before the real sink lands.
"""

from __future__ import annotations

import hashlib
import os

from ..errors import SourceTooLarge, UnprocessableImage


class BodySink:
    """Receives one download's body, chunk by chunk, into ``descriptor``."""

    def __init__(self, descriptor: int, *, max_bytes: int) -> None:
        self._descriptor = descriptor
        self._max_bytes = max_bytes
        self._size = 0
        self._hash = hashlib.sha256()

    def expect_length(self, length: int | None) -> None:
        """Refuse a declared length over the limit before any byte is read."""
        if length is not None and length > self._max_bytes:
            raise SourceTooLarge(
                f"the original is {length} bytes, over the limit of {self._max_bytes}"
            )

    def write(self, chunk: bytes) -> None:
        """Count and write one chunk; refuse the body once it passes the limit."""
        self._size += len(chunk)
        if self._size > self._max_bytes:
            raise SourceTooLarge(f"the original is over the limit of {self._max_bytes} bytes")
        self._hash.update(chunk)
        view = memoryview(chunk)
        while view:
            written = os.write(self._descriptor, view)
            view = view[written:]

    def finish(self, expected_length: int | None) -> int:
        """The body's size; a body shorter than its declared length is truncated."""
        if expected_length is not None and self._size < expected_length:
            raise UnprocessableImage("the origin's body is truncated")
        return self._size

    @property
    def digest(self) -> str:
        """The sha256 of what was written, in hex."""
        return self._hash.hexdigest()
