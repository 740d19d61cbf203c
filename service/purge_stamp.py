"""The purge generation: how every process learns at once that a purge ran.

Each worker keeps memos that a purge in another process (a worker that took
the ``POST /admin/purge``, or ``image-factory purge``) cannot reach: the
source cache's records and 404s, the result cache's entries, the header
facts. A purge ends by adding one to a counter kept in a file of the cache
directory (``purges``: 8 bytes, little-endian), and each process compares
the counter with the one it last saw, dropping its memos when it changed.

Why a file read with ``pread`` and not a row of the index: the source
cache consults its memo on every request for a remote original, on the
event loop, where a SQLite read (a lock, tens of microseconds) does not
belong; a ``pread`` of 8 bytes from the page cache costs about a
microsecond. (Not a shared mapping either, which would save that call:
reading a mapped file whose page a full disk cannot back is a SIGBUS that
takes the process down, where a ``pread`` fails with an error.) Writers
take an ``flock`` on the file, so two purges never
lose an increment; a reader may, in principle, see a torn value: that is
only a number it has not seen, and costs one needless drop of the memos.

The file is opened once and reopened by ``refresh`` (the housekeeping
tick) when the directory was deleted or replaced; when it cannot be opened
(a full or unwritable volume) the generation reads 0 until it can.
"""

from __future__ import annotations

import contextlib
import fcntl
import os

STAMP_NAME = "purges"
_WIDTH = 8


class PurgeStamp:
    """The counter in ``<directory>/purges``; one per process."""

    def __init__(self, directory: str) -> None:
        self.path = os.path.join(directory, STAMP_NAME)
        self._descriptor = -1
        self._identity: tuple[int, int] | None = None
        self.refresh()

    def generation(self) -> int:
        """The number of purges so far (0 while the file cannot be read)."""
        if self._descriptor < 0:
            return 0
        try:
            data = os.pread(self._descriptor, _WIDTH, 0)
        except OSError:
            return 0
        return int.from_bytes(data.ljust(_WIDTH, b"\0"), "little")

    def refresh(self) -> None:
        """Blocking: open the file, again when it was replaced (or created
        after this process failed to create it)."""
        try:
            info = os.stat(self.path)
            identity: tuple[int, int] | None = (info.st_dev, info.st_ino)
        except OSError:
            identity = None
        if self._descriptor >= 0 and identity == self._identity:
            return
        self.close()
        try:
            os.makedirs(os.path.dirname(self.path), exist_ok=True)
            descriptor = os.open(self.path, os.O_RDONLY | os.O_CREAT | os.O_CLOEXEC, 0o644)
        except OSError:
            return
        info = os.fstat(descriptor)
        self._descriptor, self._identity = descriptor, (info.st_dev, info.st_ino)

    def bump(self) -> int:
        """Blocking: add one purge to the count; the new generation."""
        os.makedirs(os.path.dirname(self.path), exist_ok=True)
        descriptor = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX)
            data = os.pread(descriptor, _WIDTH, 0).ljust(_WIDTH, b"\0")
            generation = int.from_bytes(data, "little") + 1
            os.pwrite(descriptor, generation.to_bytes(_WIDTH, "little"), 0)
        finally:
            os.close(descriptor)  # releases the lock
        return generation

    def close(self) -> None:
        if self._descriptor >= 0:
            with contextlib.suppress(OSError):
                os.close(self._descriptor)
            self._descriptor, self._identity = -1, None
