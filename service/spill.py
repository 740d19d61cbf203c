"""Uncached renders, on the cache volume until their requests have them.

A render the cache does not take (larger than the room its bound leaves, an
index that fails) is still answered: it is moved to a spill file, which the
request that rendered it and those that waited on it open, and which is then
removed (``RenderService``). Spill files belong on the cache volume, whose
size the operator chose (``--cache-max-bytes`` plus the renders in flight:
service/cache.py), not in ``$TMPDIR``, a tmpfs in the container: memory.

Layout: ``<cache>/spill/<pid>-<random>/<random>``. Each process makes its own
directory at its first spill, holds a ``flock()`` on it for its life and
removes it at close; opening the cache removes the directories of processes
that died (``remove_abandoned``), as it removes their ``tmp/`` files.

Only when the cache volume cannot be written at all (full, read-only, gone
and not creatable) do spill files go to a directory under ``$TMPDIR``,
logged once: a full volume must still answer.

Every method blocks; render threads call them, several at once.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import secrets
import shutil
import tempfile
import threading

log = logging.getLogger(__name__)

SPILL_DIRECTORY = "spill"


class Spill:
    """This process's spill directories: on the cache volume, and the
    fallback under ``$TMPDIR``, each made at its first use."""

    def __init__(self, cache_directory: str) -> None:
        self._root = os.path.join(os.path.abspath(cache_directory), SPILL_DIRECTORY)
        self._lock = threading.Lock()
        self._own: str | None = None  # on the cache volume
        self._own_descriptor = -1  # holds the flock that tells it is alive
        self._fallback: str | None = None  # under $TMPDIR
        self._fell_back = False  # logged once per process

    def new_file(self) -> tuple[int, str]:
        """An empty file (descriptor, path) on the cache volume, else off it."""
        try:
            return self._new_on_volume()
        except OSError as error:
            return self.new_file_off_volume(error)

    def new_file_off_volume(self, cause: BaseException) -> tuple[int, str]:
        """An empty file under ``$TMPDIR``, for when the cache volume cannot
        be written (``cause`` says why: logged the first time)."""
        with self._lock:
            if not self._fell_back:
                self._fell_back = True
                log.warning(
                    "uncached renders go to $TMPDIR while the cache volume cannot be written: %s",
                    cause,
                )
            if self._fallback is None or not os.path.isdir(self._fallback):
                self._fallback = tempfile.mkdtemp(prefix="image-factory-uncached-")
            directory = self._fallback
        return tempfile.mkstemp(dir=directory)

    def take(self, path: str, descriptor: int) -> str:
        """Move a finished render from the cache's ``tmp/`` into the spill:
        renamed on the volume (no second copy on disk), else copied from its
        open ``descriptor`` (its name may be gone with the directory)."""
        with contextlib.suppress(OSError):
            target = os.path.join(self._own_directory(), secrets.token_hex(12))
            os.rename(path, target)
            return target
        try:
            return _copy(descriptor, self._new_on_volume())
        except OSError as error:
            return _copy(descriptor, self.new_file_off_volume(error))

    def sweep(self, older_than: float) -> None:
        """Remove spill files last written before ``older_than`` (a time):
        those whose requests were lost before they could remove them."""
        for directory in (self._own, self._fallback):
            if directory is None:
                continue
            with contextlib.suppress(OSError), os.scandir(directory) as entries:
                for item in entries:
                    with contextlib.suppress(OSError):
                        if item.stat().st_mtime < older_than:
                            os.unlink(item.path)

    def close(self) -> None:
        with self._lock:
            for directory in (self._own, self._fallback):
                if directory is not None:
                    shutil.rmtree(directory, ignore_errors=True)
            self._drop_own()
            self._fallback = None

    def _new_on_volume(self) -> tuple[int, str]:
        directory = self._own_directory()
        try:
            return tempfile.mkstemp(dir=directory)
        except FileNotFoundError:
            # Removed under us (rm -rf of the cache, a restore): make another,
            # unless another thread has already.
            with self._lock:
                if self._own == directory:
                    self._drop_own()
            return tempfile.mkstemp(dir=self._own_directory())

    def _own_directory(self) -> str:
        with self._lock:
            if self._own is None:
                os.makedirs(self._root, exist_ok=True)
                own = tempfile.mkdtemp(prefix=f"{os.getpid()}-", dir=self._root)
                descriptor = os.open(own, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
                fcntl.flock(descriptor, fcntl.LOCK_EX)
                self._own, self._own_descriptor = own, descriptor
            return self._own

    def _drop_own(self) -> None:
        if self._own_descriptor >= 0:
            os.close(self._own_descriptor)
        self._own, self._own_descriptor = None, -1


def remove_abandoned(cache_directory: str) -> None:
    """Remove the spill directories of processes that died (unlocked)."""
    root = os.path.join(cache_directory, SPILL_DIRECTORY)
    with contextlib.suppress(FileNotFoundError), os.scandir(root) as entries:
        for item in entries:
            try:
                descriptor = os.open(item.path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
            except OSError:
                continue
            try:
                fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                continue  # its process is alive
            finally:
                os.close(descriptor)
            shutil.rmtree(item.path, ignore_errors=True)


def _copy(source: int, target: tuple[int, str]) -> str:
    """Copy all of ``source`` into the new file ``target``; its path."""
    out, path = target
    try:
        size = os.fstat(source).st_size
        offset = 0
        while offset < size:
            offset += os.sendfile(out, source, offset, size - offset)
    except OSError:
        os.close(out)
        with contextlib.suppress(OSError):
            os.unlink(path)
        raise
    os.close(out)
    return path
