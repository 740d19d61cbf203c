"""Which originals were being rendered when a worker crashed, kept on disk.

A decoder that crashes on an original (a heap overflow, a bad frame: the
SIGSEGV and SIGABRT that libvips' loaders have had) would crash every
worker it is sent to: a query of death. So the cache directory records,
beside the renders::

    crashes/inflight/<pid>/<digest>   the originals worker <pid> is rendering now (one
                                      file each: the original's path, the request id)
    crashes/suspects/<digest>         an original in flight at a crash: its path and
                                      the times of the crashes, as JSON

A worker adds its file before a render and removes it after (two system
calls; a crash leaves it behind). When a worker dies by a signal the
supervisor did not send, the supervisor moves that worker's files into the
suspects, with the time (``record_crash``); a clean exit just drops them.
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
import json
import os
import shutil
import time
from collections.abc import Iterator
from dataclasses import dataclass

_DIGEST_CHARACTERS = 32


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

    # -- a worker's side ----------------------------------------------------

    @contextlib.contextmanager
    def rendering(self, digest: str, path: str, request_id: str = "") -> Iterator[None]:
        """Record, for as long as the block runs, that this process renders
        the original ``digest`` (best effort: a cache directory that cannot
        be written must not stop a render)."""
        folder = os.path.join(self._inflight, str(os.getpid()))
        record = os.path.join(folder, digest)
        written = False
        try:
            os.makedirs(folder, exist_ok=True)
            with open(record, "w") as handle:
                handle.write(f"{path}\n{request_id}")
            written = True
        except OSError:
            pass
        try:
            yield
        finally:
            if written:
                with contextlib.suppress(OSError):
                    os.unlink(record)

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
        folder = os.path.join(self._inflight, str(pid))
        paths: list[tuple[str, str]] = []
        try:
            names = os.listdir(folder)
        except OSError:
            return paths
        os.makedirs(self._suspects, exist_ok=True)
        for name in names:
            try:
                with open(os.path.join(folder, name)) as handle:
                    path, _, request_id = handle.read().partition("\n")
            except OSError:
                continue
            target = os.path.join(self._suspects, name)
            earlier = self._read(target)
            kept = [t for t in (earlier.crashes if earlier else ()) if t >= when - self.ttl_seconds]
            self._write(target, Suspect(path, (*kept, when)))
            paths.append((path, request_id))
        shutil.rmtree(folder, ignore_errors=True)
        return paths

    def forget_worker(self, pid: int) -> None:
        """Worker ``pid`` exited on its own or was stopped: nothing to blame."""
        shutil.rmtree(os.path.join(self._inflight, str(pid)), ignore_errors=True)

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
