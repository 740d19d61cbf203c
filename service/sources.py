"""Find originals under the originals directory, and nowhere else.

Every path that leaves the root is "not found": ``..`` segments (however they
were encoded: the router hands us the decoded path), absolute paths, hidden
segments, symlinks resolving outside, and anything that is not a regular file.
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass

from .errors import NotFound, SourceTooLarge

# O_NONBLOCK: opening a FIFO that slipped in after the check must not hang a worker.
_OPEN_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC


@dataclass(frozen=True, slots=True)
class Original:
    """A resolved original and the identity that keys its renders."""

    relative: str  # the path under the root, '/'-separated
    path: str  # the real, absolute path
    size: int
    mtime_ns: int
    inode: int
    # A remote original's identity (its origin's ETag or the like, from the
    # source cache): the body's file is only where it is kept here.
    remote_identity: str = ""
    # What a purge and the CDN's tag name it by (service/purge.py): the path
    # after /picture/ as the URL gives it (NAME/... for a named origin), or
    # a ?url= source's URL; "" for none (the fallback image). Not part of the
    # identity: a symlink's two names share their renders.
    purge_name: str = ""

    @property
    def identity(self) -> str:
        """Changes whenever the file is replaced or rewritten."""
        if self.remote_identity:
            return "remote\0" + self.remote_identity
        return f"{self.relative}\0{self.size}\0{self.mtime_ns}\0{self.inode}"


class OriginalsDirectory:
    """The confined root that originals are read from."""

    def __init__(self, root: str, *, max_source_bytes: int, name: str = "") -> None:
        self.root = os.path.realpath(root)
        self.max_source_bytes = max_source_bytes
        # A named origin's originals are told apart from the default's.
        self._prefix = f"{name}/" if name else ""

    def resolve(self, url_path: str) -> Original:
        """The original at ``url_path`` (already percent-decoded), or NotFound."""
        segments = checked_segments(url_path)
        real = os.path.realpath(os.path.join(self.root, *segments))
        if os.path.commonpath((real, self.root)) != self.root or real == self.root:
            raise NotFound()
        relative = os.path.relpath(real, self.root)
        if any(part.startswith(".") for part in relative.split(os.sep)):
            raise NotFound()  # a symlink that lands on a hidden file
        try:
            info = os.stat(real)
        except (OSError, ValueError):
            raise NotFound() from None
        if not stat.S_ISREG(info.st_mode):
            raise NotFound()
        if info.st_size > self.max_source_bytes:
            raise SourceTooLarge(
                f"the original is {info.st_size} bytes, over the limit of {self.max_source_bytes}"
            )
        return Original(
            relative=self._prefix + relative.replace(os.sep, "/"),
            path=real,
            size=info.st_size,
            mtime_ns=info.st_mtime_ns,
            inode=info.st_ino,
            purge_name=self._prefix + url_path,
        )


def checked_segments(url_path: str) -> list[str]:
    """The path's segments, or NotFound for a path that could leave a root
    or name a hidden file: an empty, ``.``-led (``..`` included, however it
    was encoded: the router hands us the decoded path), NUL or backslash
    segment. Remote origins are held to it too, before any request."""
    segments = url_path.split("/")
    for segment in segments:
        if not segment or segment.startswith(".") or "\0" in segment or "\\" in segment:
            raise NotFound()
    return segments


class OriginalChanged(Exception):
    """The file on disk is no longer the one the request was keyed on."""


def open_original(original: Original) -> int:
    """Open the resolved original, checking it is still the same file."""
    try:
        descriptor = os.open(original.path, _OPEN_FLAGS)
    except OSError:
        raise OriginalChanged() from None
    info = os.fstat(descriptor)
    if (
        not stat.S_ISREG(info.st_mode)
        or info.st_size != original.size
        or info.st_mtime_ns != original.mtime_ns
        or info.st_ino != original.inode
    ):
        os.close(descriptor)
        raise OriginalChanged()
    return descriptor
