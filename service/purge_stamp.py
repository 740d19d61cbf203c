"""The purge generation: how every process learns at once that a purge ran.

Each worker keeps memos that a purge in another process (a worker that took
the ``POST /admin/purge``, or ``image-factory purge``) cannot reach: the
source cache's records and 404s, the result cache's entries, the header
facts. A purge ends by adding one to a counter kept in a file of the cache
directory (``purges``: 8 bytes, little-endian), and each process compares
the counter with the one it last saw, dropping its memos when it changed.

Why a file mapped into memory and not a row of the index: the hit memo
and the source cache consult it on every request they answer, on the
event loop, where a SQLite read (a lock, tens of microseconds) does not
belong, nor any system call: the 8 bytes are read from a shared mapping
of the file (the page cache every process sees), with no I/O. Writers
take an ``flock`` on the file, so two purges never lose an increment; a
reader may, in principle, see a torn value: that is only a number it has
not seen, and costs one needless drop of the memos.

The file is mapped once and again by ``refresh`` (the housekeeping tick)
when the directory was deleted or replaced; when it cannot be (a full or
unwritable volume) the generation reads 0 until it can.
"""

from __future__ import annotations

import contextlib
import fcntl
import mmap
import os

STAMP_NAME = "purges"
_WIDTH = 8


class PurgeStamp:
    """The counter in ``<directory>/purges``; one per process."""

    def __init__(self, directory: str) -> None:
        self.path = os.path.join(directory, STAMP_NAME)
        self._view: mmap.mmap | None = None
        self._identity: tuple[int, int] | None = None
        self.refresh()

    def generation(self) -> int:
        """The number of purges so far (0 while the file cannot be read)."""
        view = self._view
        if view is None:
            return 0
        return int.from_bytes(view[:_WIDTH], "little")

    def refresh(self) -> None:
        """Blocking: open the file, again when it was replaced (or created
        after this process failed to create it)."""
        try:
            info = os.stat(self.path)
            identity: tuple[int, int] | None = (info.st_dev, info.st_ino)
        except OSError:
            identity = None
        if self._view is not None and identity == self._identity:
            return
        self.close()
        try:
            os.makedirs(os.path.dirname(self.path), exist_ok=True)
            descriptor = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        except OSError:
            return
        try:
            info = os.fstat(descriptor)
            if info.st_size < _WIDTH:
                # A new file: its 8 bytes, zeros, before it can be mapped (a
                # purge writing meanwhile keeps its bytes: same size).
                os.ftruncate(descriptor, _WIDTH)
            view = mmap.mmap(descriptor, _WIDTH, access=mmap.ACCESS_READ)
        except OSError:
            return
        finally:
            os.close(descriptor)  # the mapping stays
        self._view, self._identity = view, (info.st_dev, info.st_ino)

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
        if self._view is not None:
            with contextlib.suppress(OSError):
                self._view.close()
            self._view, self._identity = None, None
