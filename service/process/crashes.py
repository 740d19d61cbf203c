"""Which originals were being rendered when a worker crashed, kept on disk.

A decoder that crashes on an original (a heap overflow, a bad frame: the
SIGSEGV and SIGABRT that libvips' loaders have had) would crash every
worker it is sent to: a query of death. So the cache directory records,
beside the renders::

    crashes/inflight/<pid>-<n>   the originals worker <pid> is rendering now: one
                                 file per crash log of the process, each original's
                                 digest, path and request id, as JSON
    crashes/suspects/<digest>    an original in flight at a crash: its path and
                                 the times of the crashes, as JSON

A worker rewrites its file in place before a render and after it (one
``pwrite`` each, of a length line and the JSON; a crash leaves the last one
behind). A file per render, created and unlinked, cost 1.2 ms of CPU a
render on ext4, mostly its inode allocator scanning the inodes just freed
(``find_inode_bit``, ``recently_deleted``: 13 % of a small render's CPU).
When a worker dies by a signal the supervisor did not send, the supervisor
moves that worker's records into the suspects, with the time
(``record_crash``); a clean exit just drops them.
A suspect with one crash within ``--poison-ttl`` is rendered alone in its
worker (no other render in flight there, so an innocent neighbour is not
blamed next time); one with two is refused with a 422 without being
rendered again. ``image-factory poison list`` and ``poison clear [PATH]``
show and lift it.

Standard library only, and no hashlib at import: the supervisor, which
never computes a digest, stays free of OpenSSL.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass

_DIGEST_CHARACTERS = 32
# Numbers the crash logs of one process (tests make several apps in one).
_LOG_NUMBERS = itertools.count()


@dataclass(frozen=True, slots=True)
class Suspect:
    path: str
    crashes: tuple[float, ...]  # when, within the TTL


def original_digest(identity: str) -> str:
    """The file name for an original's identity (path, size, mtime, inode)."""
    import hashlib  # noqa: PLC0415 - only workers name originals; see the module docstring

    return hashlib.sha256(identity.encode()).hexdigest()[:_DIGEST_CHARACTERS]


class CrashLog:
    """The crash records under one cache directory."""

    def __init__(self, cache_dir: str, ttl_seconds: float) -> None:
        self.root = os.path.join(os.path.abspath(cache_dir), "crashes")
        self.ttl_seconds = ttl_seconds
        self._inflight = os.path.join(self.root, "inflight")
        self._suspects = os.path.join(self.root, "suspects")
        self._number = next(_LOG_NUMBERS)
        # This process's renders in flight, by a number of their own (one
        # original may be rendered by two requests at once).
        self._lock = threading.Lock()
        self._rendering: dict[int, tuple[str, str, str]] = {}
        self._tickets = itertools.count()
        self._record: tuple[int, int] | None = None  # (pid, descriptor)

    # -- a worker's side ----------------------------------------------------

    @contextlib.contextmanager
    def rendering(self, digest: str, path: str, request_id: str = "") -> Iterator[None]:
        """Record, for as long as the block runs, that this process renders
        the original ``digest`` (best effort: a cache directory that cannot
        be written must not stop a render)."""
        with self._lock:
            ticket = next(self._tickets)
            self._rendering[ticket] = (digest, path, request_id)
            written = self._write_rendering()
        try:
            yield
        finally:
            with self._lock:
                del self._rendering[ticket]
                # Also when its own write failed: a later render's may list it.
                if written or self._record is not None:
                    self._write_rendering()

    def _write_rendering(self) -> bool:
        """Rewrite this process's record (the lock held); whether it could.
        One write of a length line and the JSON after it: what a crash
        leaves is always one whole record, whatever an older, longer one
        left after it."""
        body = json.dumps(list(self._rendering.values())).encode()
        try:
            descriptor = self._record_descriptor()
            os.pwrite(descriptor, b"%d\n%s" % (len(body), body), 0)
        except OSError:
            return False
        return True

    def close(self) -> None:
        """This process is done rendering: its record goes (once no render
        is in flight; a crash log used again opens a new one)."""
        with self._lock:
            if self._record is None or self._rendering:
                return
            pid, descriptor = self._record
            self._record = None
            if pid != os.getpid():
                return  # the parent's, inherited
            os.close(descriptor)
            with contextlib.suppress(OSError):
                os.unlink(os.path.join(self._inflight, f"{pid}-{self._number}"))

    def _record_descriptor(self) -> int:
        pid = os.getpid()
        if self._record is None or self._record[0] != pid:  # first, or forked
            os.makedirs(self._inflight, exist_ok=True)
            path = os.path.join(self._inflight, f"{pid}-{self._number}")
            flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC
            self._record = (pid, os.open(path, flags, 0o644))
        return self._record[1]

    def crashes(self, digest: str, now: float | None = None) -> int:
        """How many crashes within the TTL the original ``digest`` was in
        flight at (0 for an original never suspected: one failed open)."""
        suspect = self._read(os.path.join(self._suspects, digest))
        if suspect is None:
            return 0
        since = (time.time() if now is None else now) - self.ttl_seconds
        return sum(1 for when in suspect.crashes if when >= since)

    # -- the supervisor's side ----------------------------------------------

    def record_crash(self, pid: int, now: float | None = None) -> list[tuple[str, str]]:
        """Worker ``pid`` crashed: each original it had in flight becomes a
        suspect (one more crash, older ones past the TTL dropped); their
        paths, each with the id of the request that asked for it."""
        when = time.time() if now is None else now
        paths: list[tuple[str, str]] = []
        in_flight = self._in_flight_of(pid)
        if in_flight:
            os.makedirs(self._suspects, exist_ok=True)
        for digest, path, request_id in in_flight:
            target = os.path.join(self._suspects, digest)
            earlier = self._read(target)
            kept = [t for t in (earlier.crashes if earlier else ()) if t >= when - self.ttl_seconds]
            self._write(target, Suspect(path, (*kept, when)))
            paths.append((path, request_id))
        self.forget_worker(pid)
        return paths

    def forget_worker(self, pid: int) -> None:
        """Worker ``pid`` exited on its own or was stopped: nothing to blame."""
        for name in self._records_of(pid):
            with contextlib.suppress(OSError):
                os.unlink(os.path.join(self._inflight, name))

    def _records_of(self, pid: int) -> list[str]:
        try:
            return [name for name in os.listdir(self._inflight) if name.startswith(f"{pid}-")]
        except OSError:
            return []

    def _in_flight_of(self, pid: int) -> list[tuple[str, str, str]]:
        """The (digest, path, request id) of each render worker ``pid`` had
        in flight; none from a record that cannot be read whole."""
        found: list[tuple[str, str, str]] = []
        for name in self._records_of(pid):
            try:
                with open(os.path.join(self._inflight, name), "rb") as handle:
                    length = int(handle.readline())
                    records = json.loads(handle.read(length))
                found.extend((str(d), str(p), str(r)) for d, p, r in records)
            except (OSError, ValueError, TypeError):
                continue  # torn or foreign: advice lost, never an error
        return found

    # -- the command's side -------------------------------------------------

    def suspects(self) -> list[Suspect]:
        """Every suspect, with the crashes still within the TTL."""
        found: list[Suspect] = []
        since = time.time() - self.ttl_seconds
        with contextlib.suppress(OSError), os.scandir(self._suspects) as entries:
            for entry in entries:
                suspect = self._read(entry.path)
                if suspect is not None:
                    recent = tuple(t for t in suspect.crashes if t >= since)
                    if recent:
                        found.append(Suspect(suspect.path, recent))
        return sorted(found, key=lambda suspect: suspect.path)

    def clear(self, path: str | None = None) -> int:
        """Forget the suspects (of ``path`` only, if given); how many."""
        cleared = 0
        with contextlib.suppress(OSError), os.scandir(self._suspects) as entries:
            for entry in entries:
                suspect = self._read(entry.path)
                if path is None or (suspect is not None and suspect.path == path):
                    with contextlib.suppress(OSError):
                        os.unlink(entry.path)
                        cleared += 1
        return cleared

    # -- files --------------------------------------------------------------

    @staticmethod
    def _read(path: str) -> Suspect | None:
        try:
            with open(path) as handle:
                data = json.load(handle)
            return Suspect(str(data["path"]), tuple(float(t) for t in data["crashes"]))
        except (OSError, ValueError, KeyError, TypeError):
            return None  # absent, or torn: a suspect's record is advice, never an error

    @staticmethod
    def _write(path: str, suspect: Suspect) -> None:
        temporary = f"{path}.{os.getpid()}.tmp"
        with open(temporary, "w") as handle:
            json.dump({"path": suspect.path, "crashes": list(suspect.crashes)}, handle)
        os.replace(temporary, path)  # atomic: a reader sees the old record or the new
