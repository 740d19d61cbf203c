"""Where a download goes: counted, sniffed, written to a file, never held whole.

The byte limit counts the bytes that arrive (nothing is decompressed on the
way: a gzip body is refused by its first bytes, not inflated), and a body
that does not start like an image we accept is refused after its first
bytes, before the rest is read.
"""

from __future__ import annotations

import hashlib
import os

from ..errors import Overloaded, SourceTooLarge, UnprocessableImage

# Enough for every signature below (ISO BMFF's brand ends at byte 12).
_SNIFF_BYTES = 16
# The container brands libvips' heifload reads (AVIF and HEIC stills and
# sequences).
_HEIF_BRANDS = frozenset(
    {b"avif", b"avis", b"heic", b"heix", b"heim", b"heis", b"hevc", b"hevx", b"mif1", b"msf1"}
)


def looks_like_image(head: bytes, *, allow_svg: bool) -> bool:
    """Whether the first bytes are those of a format the loader allow-list
    accepts (formats.ACCEPTED_LOADERS: JPEG, PNG, WebP, GIF, HEIF, TIFF),
    or of an SVG when SVG is on."""
    if head.startswith((b"\xff\xd8\xff", b"\x89PNG\r\n\x1a\n", b"GIF87a", b"GIF89a")):
        return True
    if head.startswith((b"II*\x00", b"MM\x00*")):
        return True
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return True
    if head[4:8] == b"ftyp" and head[8:12] in _HEIF_BRANDS:
        return True
    if allow_svg:
        text = head.lstrip(b"\xef\xbb\xbf \t\r\n")
        return text.startswith((b"<?xml", b"<svg", b"<!--", b"<!DOCTYPE"))
    return False


class TruncatedBody(UnprocessableImage):
    """The connection ended before the body did: the origin failed, so a
    copy already held may stand in (stale-if-error)."""


class BodySink:
    """Writes a download to ``descriptor`` (a source-cache temp file).

    ``write`` is called on the event loop once per received chunk: a write
    of 64 KiB to the page cache takes microseconds, less than a trip to a
    thread would."""

    def __init__(self, descriptor: int, *, max_bytes: int, allow_svg: bool = False) -> None:
        self._descriptor = descriptor
        self._max_bytes = max_bytes
        self._allow_svg = allow_svg
        self._received = 0
        self._head = b""
        self._sniffed = False
        # The digest names a body only when its origin sent no validator;
        # hashing 100 MB costs about 90 ms, half of such a download's time.
        self._hash: hashlib._Hash | None = hashlib.sha256()

    @property
    def received(self) -> int:
        return self._received

    @property
    def digest(self) -> str:
        """The SHA-256 of what was written, hex (unless ``named_by_origin``)."""
        if self._hash is None:
            raise RuntimeError("the body was named by its origin: it has no digest")
        return self._hash.hexdigest()

    def named_by_origin(self) -> None:
        """Before the body: its origin's validators name it, no digest is needed."""
        self._hash = None

    def expect_length(self, length: int | None) -> None:
        """Refuse a declared length over the limit before reading a byte."""
        if length is not None and length > self._max_bytes:
            raise SourceTooLarge(
                f"the original is {length} bytes, over the limit of {self._max_bytes}"
            )

    def write(self, chunk: bytes) -> None:
        self._received += len(chunk)
        if self._received > self._max_bytes:
            raise SourceTooLarge(f"the original is over the limit of {self._max_bytes} bytes")
        if not self._sniffed:
            self._head += chunk[: _SNIFF_BYTES - len(self._head)]
            if len(self._head) >= _SNIFF_BYTES:
                self._sniff()
        if self._hash is not None:
            self._hash.update(chunk)
        view = memoryview(chunk)
        try:
            while view:
                written = os.write(self._descriptor, view)
                view = view[written:]
        except OSError as error:  # a full or failing cache volume: worth a retry later
            raise Overloaded(
                f"the source cache cannot take the original: {error.strerror}"
            ) from None

    def finish(self, expected_length: int | None) -> int:
        """The body's size, once all of it arrived; a body shorter than its
        declared length (the connection closed early) is refused."""
        if expected_length is not None and self._received < expected_length:
            raise TruncatedBody(
                f"the origin's body is truncated: {self._received} of {expected_length} bytes"
            )
        if not self._sniffed:
            self._sniff()
        return self._received

    def _sniff(self) -> None:
        self._sniffed = True
        if not looks_like_image(self._head, allow_svg=self._allow_svg):
            if self._head.startswith(b"\x1f\x8b"):
                raise UnprocessableImage("the origin sent a compressed body, not an image")
            raise UnprocessableImage("the origin's body is not an image of an accepted format")
