"""The on-disk LRU cache of rendered images.

Layout under the cache directory::

    index.sqlite3    which entries exist, their size, format and last use
                     (with its -wal and -shm files beside it)
    objects/ab/<key> the rendered files, named by their key's digest
    tmp/<random>     renders being written, each flock()ed by its writer
    spill/<process>/ renders served uncached until their requests open them,
                     each process's directory flock()ed by it (service/spill.py)

Why SQLite in WAL mode for the index: several worker processes, and several
service instances, share one directory. The bound and the LRU order are
properties of the whole directory, so the bookkeeping needs a transaction
that every process honours; SQLite gives that with a file lock and survives
``kill -9`` at any instant. The files themselves stay plain files, so a hit
is served with sendfile and never passes through SQLite's pages.

Atomicity: a render is written under ``tmp/``, then renamed into ``objects/``
inside the same write transaction that records it, and eviction unlinks
inside its transaction too: a rename and an unlink of one key never
interleave across processes. A crash leaves at worst an unrecorded file
(adopted at the next start), a recorded file that is gone (dropped when
missed), or a temporary file (removed once no process holds its lock).

The bound (``max_bytes``) is the size of the whole directory: the entries'
files and the index's three files together stay within it (an operator
sizes the volume by it). Each commit first takes the index's share off the
bound (``index_bytes``), then evicts entries until the rest fit in what is
left. The share is what the index's files may reach before the next commit
measures them again: the database at its full size (``page_count`` pages:
pages still in the WAL are copied there at the next checkpoint), the WAL at
the most it holds between checkpoints (``_WAL_CEILING``), or at its size now
when that is more (a large batch of recency notes, a checkpoint held back by
a reader), and the -shm file at its size. Keeping the share small: SQLite's
default lets a WAL grow to about 4 MB before it is checkpointed, and never
shrinks it; here it is checkpointed every ``_WAL_CHECKPOINT_PAGES`` pages and
cut back to ``_WAL_KEEP_BYTES`` after each checkpoint. A bound smaller than
the index leaves no room: every entry is evicted and every render is served
uncached (``commit`` refuses it).

Beyond the bound, only the renders in flight are on disk, each at most one
output: being written in ``tmp/``, or, when the cache does not take it,
moved to ``spill/`` until its requests have opened it. So the directory
stays within ``max_bytes + concurrency x the largest output``.

Originals: each entry may name the original it was made from (``commit``'s
``original``: the result cache's variants and /info answers, the source
cache's records and bodies), so that ``purge`` removes everything made from
one original, or from every original under a prefix (service/purge.py).
Caches made before the column was added gain it at connect (``_migrate``):
their old rows, and files adopted after a crash, name no original and are
never matched by a purge (they are evicted as usual). A purge removes in
batches of ``_PURGE_BATCH``, each one transaction that unlinks the files
and deletes their rows, so other processes' commits wait for one batch,
never for the whole purge; a crash mid-batch leaves recorded files that are
gone, which are dropped when missed.

Recency: a hit only notes the time in memory; the notes are written in one
batch (every second, and before any eviction in this process), so a hit costs
no disk write.

Every method here blocks; the caller runs them off the event loop.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import secrets
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from . import spill
from .formats import OutputFormat

log = logging.getLogger(__name__)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS entries (
    key TEXT PRIMARY KEY,
    size INTEGER NOT NULL,
    format TEXT NOT NULL,
    last_access REAL NOT NULL,
    original TEXT
);
CREATE INDEX IF NOT EXISTS entries_by_recency ON entries (last_access);
CREATE TABLE IF NOT EXISTS totals (
    id INTEGER PRIMARY KEY CHECK (id = 0),
    bytes INTEGER NOT NULL,
    entries INTEGER NOT NULL
);
INSERT OR IGNORE INTO totals (id, bytes, entries) VALUES (0, 0, 0);
"""


INDEX_NAME = "index.sqlite3"
_KNOWN_LIMIT = 100_000  # about 20 MB of memo at most
# Entries removed per purge transaction: about 0.1 s of unlinks, the longest
# another process's commit waits behind a purge.
_PURGE_BATCH = 500

# The WAL is checkpointed every 64 pages (256 KiB at SQLite's 4 KiB pages;
# its default, 1000 pages, let it reach 4 MB), and truncated to 256 KiB
# after a checkpoint (by default it keeps the largest size it ever had).
_WAL_CHECKPOINT_PAGES = 64
_WAL_KEEP_BYTES = 256 * 1024
# The most the WAL holds between checkpoints: a checkpoint runs after the
# commit that takes it past 64 pages, so it reaches 63 pages plus that
# commit's (about a dozen for a commit and its evictions: 309 KB at most
# over 3,000 commits). A larger transaction (many evictions at once, a big
# batch of recency notes) goes past it; the WAL's own size is counted then,
# until a checkpoint cuts it back. Counted at this size rather than at its
# size of the moment, the index's share of the bound does not swing by
# 256 KiB with each checkpoint.
_WAL_CEILING = _WAL_KEEP_BYTES + 64 * 1024


# How long a statement waits for another process's lock before failing.
_BUSY_SECONDS = 30.0
# Between tries of the switch to WAL, which SQLite does not wait for itself.
_WAL_RETRY_SECONDS = 0.01


class CacheUnavailable(Exception):
    """The cache directory cannot be used right now (full, gone, unwritable)."""


@dataclass(frozen=True, slots=True)
class CachedFile:
    path: str
    label: str  # what the owner records of the file: a render's format
    size: int

    @property
    def format(self) -> OutputFormat:
        """The format of a render (the result cache's label)."""
        return OutputFormat(self.label)


@dataclass(frozen=True, slots=True)
class CacheStats:
    bytes: int
    entries: int


@dataclass(frozen=True, slots=True)
class Purged:
    """What a purge removed: how many entries, made from which originals."""

    entries: int
    originals: frozenset[str]


class TempFile:
    """A file being written in the cache's ``tmp/``; locked while open."""

    def __init__(self, path: str, descriptor: int) -> None:
        self.path = path
        self.descriptor = descriptor

    def discard(self) -> None:
        with contextlib.suppress(OSError):
            os.unlink(self.path)
        self.close()

    def close(self) -> None:
        if self.descriptor >= 0:
            os.close(self.descriptor)
            self.descriptor = -1


class DiskCache:
    """A size-bounded LRU of files, shared safely between processes."""

    def __init__(
        self,
        directory: str,
        max_bytes: int,
        *,
        clock: Callable[[], float] = time.time,
        on_evict: Callable[[int], None] = lambda count: None,
        on_reopen: Callable[[], None] = lambda: None,
        adopt: Callable[[str, str], str | None] | None = None,
    ) -> None:
        self.directory = os.path.abspath(directory)
        self.max_bytes = max_bytes
        self._clock = clock  # recency timestamps; tests pass a counter
        self._on_evict = on_evict
        self._on_reopen = on_reopen  # the directory was deleted or replaced
        # The label of a file found without a record (key, path), or None to
        # remove it; the result cache sniffs the render's format.
        self._adopt = adopt or _sniff_format
        self._objects = os.path.join(self.directory, "objects")
        self._tmp = os.path.join(self.directory, "tmp")
        self._index_path = os.path.join(self.directory, INDEX_NAME)
        self._lock = threading.Lock()  # one connection, used from pool threads
        # The in-memory state below is touched by every hit, from several
        # threads; its own lock is held for dict operations only, never
        # across SQLite or file work.
        self._memo_lock = threading.Lock()
        self._db: sqlite3.Connection | None = None
        self._page_size: int = 4096  # SQLite's default; read from the index at connect
        self._index_identity: tuple[int, int] | None = None  # (st_dev, st_ino) when connected
        self._pending_touches: dict[str, float] = {}
        # This process's memo of entries, so a hit needs no index read. Other
        # processes' evictions leave stale items (found out when the open
        # fails), so it is bounded, dropping the oldest.
        self._known: dict[str, CachedFile] = {}

    # -- lifecycle -------------------------------------------------------

    def open(self) -> None:
        """Create or reopen the directory; clean up after crashed writers.
        CacheUnavailable when the directory cannot be used now (a full disk
        fails SQLite's first write: "database or disk is full"); every later
        use tries to connect again."""
        with self._lock:
            try:
                self._open_index()
                index = self._index_share(self._database())
            except (OSError, sqlite3.Error) as error:
                self._drop_connection()
                raise CacheUnavailable(str(error)) from error
        if index >= self.max_bytes:
            log.warning(
                "cache: the bound, %d bytes, leaves no room beside the index (%d bytes): "
                "every render will be served uncached",
                self.max_bytes,
                index,
            )

    def close(self) -> None:
        with self._lock:
            if self._db is not None:
                with contextlib.suppress(sqlite3.Error, OSError, CacheUnavailable):
                    self._flush_touches()
            self._drop_connection()

    def _open_index(self) -> None:
        """Under the lock: connect, drop crashed writers' temporaries and
        spills, and adopt and bound the files on disk (at start, and on a
        reopen)."""
        self._connect()
        self._remove_stale_temporaries()
        spill.remove_abandoned(self.directory)
        self._reconcile()

    def _connect(self) -> None:
        os.makedirs(self._objects, exist_ok=True)
        os.makedirs(self._tmp, exist_ok=True)
        db = sqlite3.connect(
            self._index_path,
            timeout=_BUSY_SECONDS,
            isolation_level=None,
            check_same_thread=False,
        )
        _enter_wal(db)
        # NORMAL in WAL mode: a crash of the process loses nothing; a power
        # cut may lose the last transactions, which only costs re-renders.
        db.execute("PRAGMA synchronous=NORMAL")
        db.execute(f"PRAGMA wal_autocheckpoint={_WAL_CHECKPOINT_PAGES}")
        db.execute(f"PRAGMA journal_size_limit={_WAL_KEEP_BYTES}")
        db.executescript(_SCHEMA)
        _migrate(db)
        self._page_size = int(db.execute("PRAGMA page_size").fetchone()[0])
        self._db = db
        self._index_identity = _identity(self._index_path)

    def _database(self) -> sqlite3.Connection:
        if self._db is not None and _identity(self._index_path) != self._index_identity:
            # Deleted or replaced under us (rm -rf, a restore): SQLite would
            # go on writing to the unlinked file, and this process would keep
            # its own bound and LRU order apart from every other one. Reopen
            # as at start, so a restored directory's files are adopted and
            # bounded, whichever caller notices first.
            log.warning(
                "cache: the directory %s was deleted or replaced; reopening it", self.directory
            )
            self._on_reopen()
            self._drop_connection()
            try:
                self._open_index()
            except (OSError, sqlite3.Error) as error:
                self._drop_connection()
                raise CacheUnavailable(str(error)) from error
        if self._db is None:
            try:
                self._connect()
            except (OSError, sqlite3.Error) as error:
                raise CacheUnavailable(str(error)) from error
        assert self._db is not None
        return self._db

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        db = self._database()
        db.execute("BEGIN IMMEDIATE")
        try:
            yield db
        except BaseException:
            db.execute("ROLLBACK")
            raise
        db.execute("COMMIT")

    # -- reads -----------------------------------------------------------

    def lookup(self, key: str) -> CachedFile | None:
        """The entry for ``key`` if one is recorded (the file may since have
        been evicted by another process: opening it tells)."""
        with self._memo_lock:
            known = self._known.get(key)
        if known is not None:
            return known
        with self._lock:
            try:
                row = (
                    self._database()
                    .execute("SELECT size, format FROM entries WHERE key = ?", (key,))
                    .fetchone()
                )
            except sqlite3.Error as error:
                self._drop_connection()
                raise CacheUnavailable(str(error)) from error
        if row is None:
            return None
        entry = CachedFile(self._object_path(key), row[1], row[0])
        self._remember(key, entry)
        return entry

    def open_entry(self, key: str) -> tuple[CachedFile, int] | None:
        """Open the entry for reading: its record and an open descriptor, or
        None when there is no whole entry. Notes the hit for recency."""
        entry = self.lookup(key)
        if entry is None:
            return None
        descriptor = self._open_recorded(key, entry)
        if descriptor is None:
            self.forget(key)
            return None
        return entry, descriptor

    def open_remembered(self, key: str) -> tuple[CachedFile, int] | None:
        """``open_entry`` for an entry of this process's memo only: None
        when it is not there, or its file is gone or not the recorded one
        (``open_entry`` then finds out and forgets it). Never reads or
        writes the index, so it may run on the event loop: an ``open`` and
        an ``fstat`` of a file whose inode the kernel has cached."""
        with self._memo_lock:
            entry = self._known.get(key)
        if entry is None:
            return None
        descriptor = self._open_recorded(key, entry)
        return None if descriptor is None else (entry, descriptor)

    def _open_recorded(self, key: str, entry: CachedFile) -> int | None:
        """The entry's file, open, and its hit noted; None when the file is
        gone or not the one recorded (never serve a partial one)."""
        try:
            descriptor = os.open(entry.path, os.O_RDONLY | os.O_CLOEXEC)
        except OSError:
            return None
        if os.fstat(descriptor).st_size != entry.size:
            os.close(descriptor)
            return None
        with self._memo_lock:
            self._pending_touches[key] = self._clock()
        return descriptor

    def forget(self, key: str) -> None:
        """Drop an entry whose file went missing or is not the recorded one
        (unless another process has put it right meanwhile)."""
        self._drop(key, whole_too=False)

    def remove(self, key: str) -> None:
        """Remove an entry whose file is whole but unusable to its owner
        (a mezzanine whose pixels fail to read): its file and its row, in
        one transaction, as eviction does."""
        self._drop(key, whole_too=True)

    def _drop(self, key: str, *, whole_too: bool) -> None:
        with self._memo_lock:
            self._known.pop(key, None)
            self._pending_touches.pop(key, None)
        with (
            self._lock,
            contextlib.suppress(sqlite3.Error, CacheUnavailable),
            self._transaction() as db,
        ):
            if whole_too or self._whole_entry(db, key) is None:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(self._object_path(key))
                self._delete_rows(db, [key])

    def stats(self) -> CacheStats:
        with self._lock:
            try:
                row = (
                    self._database()
                    .execute("SELECT bytes, entries FROM totals WHERE id = 0")
                    .fetchone()
                )
            except sqlite3.Error as error:
                self._drop_connection()
                raise CacheUnavailable(str(error)) from error
        return CacheStats(bytes=row[0], entries=row[1])

    def index_bytes(self) -> int:
        """The index's share of the bound now: ``max_bytes`` less this is
        the room left for entries."""
        with self._lock:
            try:
                return self._index_share(self._database())
            except (OSError, sqlite3.Error) as error:
                self._drop_connection()
                raise CacheUnavailable(str(error)) from error

    # -- writes ----------------------------------------------------------

    def new_temp(self, suffix: str = "") -> TempFile:
        """A fresh, locked file in ``tmp/`` to render into (named with
        ``suffix`` for a writer that picks its format by the name)."""
        path = os.path.join(self._tmp, secrets.token_hex(12) + suffix)
        try:
            os.makedirs(self._tmp, exist_ok=True)
            descriptor = os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o644)
        except OSError as error:
            raise CacheUnavailable(str(error)) from error
        # The lock tells a restarting process that this writer is alive.
        fcntl.flock(descriptor, fcntl.LOCK_EX)
        return TempFile(path, descriptor)

    def commit(
        self,
        key: str,
        temp: TempFile,
        label: OutputFormat | str,
        *,
        replace: bool = False,
        original: str | None = None,
    ) -> CachedFile:
        """Move a finished render into place and record it, evicting the
        least recently used entries beyond the bound. ``replace`` puts the
        file in place of a recorded one (a small record that is rewritten,
        such as the source cache's freshness notes: a crash between the
        rename and the commit leaves a size that disagrees with the record,
        which is then dropped, never served). ``original`` names what the
        entry was made from, for ``purge`` (None: no purge matches it)."""
        output_format = label.value if isinstance(label, OutputFormat) else label
        original = _storable(original)
        size = os.fstat(temp.descriptor).st_size
        final = self._object_path(key)
        victims: list[str] = []
        with self._lock:
            try:
                self._flush_touches()
                with self._transaction() as db:
                    existing = None if replace else self._whole_entry(db, key)
                    if existing is None:
                        room = self.max_bytes - self._index_share(db)
                        if size > room:
                            # Past the handler below: the directory is
                            # fine, so the connection stays.
                            raise CacheUnavailable(
                                f"a {size}-byte render does not fit the {max(room, 0)} "
                                f"bytes the index leaves of a {self.max_bytes}-byte cache"
                            )
                        os.makedirs(os.path.dirname(final), exist_ok=True)
                        os.rename(temp.path, final)
                        self._record(db, key, size, output_format, self._clock(), original=original)
                        victims = self._evict(db)
                    else:
                        # Another process committed this key meanwhile. Never
                        # rename over a recorded file: a crash before COMMIT
                        # would leave the record describing the old file.
                        # An adopted row learns its original here.
                        db.execute(
                            "UPDATE entries SET last_access = ?, "
                            "original = coalesce(original, ?) WHERE key = ?",
                            (self._clock(), original, key),
                        )
            except (OSError, sqlite3.Error) as error:
                self._drop_connection()
                raise CacheUnavailable(str(error)) from error
        if existing is None:
            temp.close()
            entry = CachedFile(final, output_format, size)
        else:
            temp.discard()
            entry = existing
        with self._memo_lock:
            for victim in victims:
                self._known.pop(victim, None)
        self._remember(key, entry)
        return entry

    def purge(self, *, original: str | None = None, prefix: str | None = None) -> Purged:
        """Remove every entry made from ``original``, or from any original
        whose name starts with ``prefix`` (exactly one of the two; an empty
        prefix matches every named entry). Each batch unlinks its files
        inside the transaction that deletes their rows, as eviction does."""
        if (original is None) == (prefix is None):
            raise ValueError("purge takes an original or a prefix")
        parameters: tuple[str, ...]
        if original is not None:
            where, parameters = "original = ?", (original,)
        else:
            assert prefix is not None
            low, high = _prefix_range(prefix)
            where, parameters = "original >= ?", (low,)
            if high is not None:
                where, parameters = "original >= ? AND original < ?", (low, high)
        removed = 0
        originals: set[str] = set()
        while True:
            with self._lock:
                try:
                    with self._transaction() as db:
                        rows = db.execute(
                            f"SELECT key, original FROM entries WHERE {where} LIMIT ?",  # noqa: S608 - our own clauses
                            (*parameters, _PURGE_BATCH),
                        ).fetchall()
                        keys = [key for key, _ in rows]
                        for key in keys:
                            with contextlib.suppress(FileNotFoundError):
                                os.unlink(self._object_path(key))
                        self._delete_rows(db, keys)
                except (OSError, sqlite3.Error) as error:
                    self._drop_connection()
                    raise CacheUnavailable(str(error)) from error
            with self._memo_lock:
                for key in keys:
                    self._known.pop(key, None)
                    self._pending_touches.pop(key, None)
            removed += len(keys)
            originals.update(name for _, name in rows)
            if len(rows) < _PURGE_BATCH:
                return Purged(removed, frozenset(originals))

    def drop_memo(self) -> None:
        """Forget this process's memo of entries (after another process's
        purge: its items would only fail their open, one by one)."""
        with self._memo_lock:
            self._known.clear()

    def flush(self) -> None:
        """Write the batched recency notes (called about once a second)."""
        with self._lock:
            try:
                self._flush_touches()
            except (OSError, sqlite3.Error, CacheUnavailable) as error:
                log.warning("cache: could not record recency: %s", error)
                self._drop_connection()

    def _remember(self, key: str, entry: CachedFile) -> None:
        with self._memo_lock:
            self._known[key] = entry
            if len(self._known) > _KNOWN_LIMIT:
                del self._known[next(iter(self._known))]

    # -- internals (caller holds self._lock) -----------------------------

    def _object_path(self, key: str) -> str:
        return os.path.join(self._objects, key[:2], key)

    def _whole_entry(self, db: sqlite3.Connection, key: str) -> CachedFile | None:
        """The recorded entry, if its file is there at the recorded size."""
        row = db.execute("SELECT size, format FROM entries WHERE key = ?", (key,)).fetchone()
        if row is None:
            return None
        path = self._object_path(key)
        try:
            if os.stat(path).st_size != row[0]:
                return None
        except FileNotFoundError:
            return None
        return CachedFile(path, row[1], row[0])

    def _record(
        self,
        db: sqlite3.Connection,
        key: str,
        size: int,
        fmt: str,
        last_access: float,
        *,
        original: str | None = None,
    ) -> None:
        previous = db.execute("SELECT size FROM entries WHERE key = ?", (key,)).fetchone()
        db.execute(
            "INSERT INTO entries (key, size, format, last_access, original) "
            "VALUES (?, ?, ?, ?, ?) "
            "ON CONFLICT(key) DO UPDATE SET size = excluded.size, format = excluded.format, "
            "last_access = excluded.last_access, "
            "original = coalesce(excluded.original, entries.original)",
            (key, size, fmt, last_access, original),
        )
        added_entries = 0 if previous else 1
        added_bytes = size - (previous[0] if previous else 0)
        db.execute(
            "UPDATE totals SET bytes = bytes + ?, entries = entries + ? WHERE id = 0",
            (added_bytes, added_entries),
        )

    def _evict(self, db: sqlite3.Connection) -> list[str]:
        """Evict the least recently used entries until the entries and the
        index together fit the bound (all of them if the index alone does
        not: then nothing is cached)."""
        (total,) = db.execute("SELECT bytes FROM totals WHERE id = 0").fetchone()
        room = self.max_bytes - self._index_share(db)
        victims: list[str] = []
        if total <= room:
            return victims
        rows = db.execute("SELECT key, size FROM entries ORDER BY last_access, key")
        for key, size in rows:
            if total <= room:
                break
            victims.append(key)
            total -= size
        for key in victims:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self._object_path(key))
        self._delete_rows(db, victims)
        if victims:
            self._on_evict(len(victims))
        return victims

    def _index_share(self, db: sqlite3.Connection) -> int:
        """The bytes the index's files count against the bound (the module
        docstring says why each is counted so). About 12 us: the page count,
        from SQLite's page cache, and three stat()s."""
        pages: int = db.execute("PRAGMA page_count").fetchone()[0]
        database = max(pages * self._page_size, _file_size(self._index_path))
        wal = max(_file_size(self._index_path + "-wal"), _WAL_CEILING)
        return database + wal + _file_size(self._index_path + "-shm")

    def _delete_rows(self, db: sqlite3.Connection, keys: list[str]) -> None:
        for key in keys:
            row = db.execute("DELETE FROM entries WHERE key = ? RETURNING size", (key,)).fetchone()
            if row is not None:
                db.execute(
                    "UPDATE totals SET bytes = bytes - ?, entries = entries - 1 WHERE id = 0",
                    (row[0],),
                )

    def _flush_touches(self) -> None:
        with self._memo_lock:
            # Swapped under the memo lock: a hit noting its time meanwhile
            # lands in the new dict, never in the one being written out.
            touches, self._pending_touches = self._pending_touches, {}
        if not touches:
            return
        with self._transaction() as db:
            db.executemany(
                "UPDATE entries SET last_access = max(last_access, ?) WHERE key = ?",
                [(when, key) for key, when in touches.items()],
            )

    def _drop_connection(self) -> None:
        """After an error, reconnect on next use (the directory may be back)."""
        with self._memo_lock:
            self._known.clear()
        if self._db is not None:
            with contextlib.suppress(sqlite3.Error):
                self._db.close()
            self._db = None

    def _remove_stale_temporaries(self) -> None:
        """Remove temporary files whose writer has died (its lock is gone)."""
        with os.scandir(self._tmp) as entries:
            for item in entries:
                try:
                    descriptor = os.open(item.path, os.O_RDONLY | os.O_CLOEXEC)
                except OSError:
                    continue
                try:
                    fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    continue  # a live writer holds it
                finally:
                    os.close(descriptor)
                with contextlib.suppress(OSError):
                    os.unlink(item.path)

    def _reconcile(self) -> None:
        """Make the index and the files agree after a crash: adopt unrecorded
        files, drop records whose file is gone, then enforce the bound."""
        db = self._database()
        recorded = {key: size for key, size in db.execute("SELECT key, size FROM entries")}
        on_disk: dict[str, int] = {}
        with os.scandir(self._objects) as shards:
            for shard in shards:
                if not shard.is_dir(follow_symlinks=False):
                    continue
                with os.scandir(shard.path) as files:
                    for item in files:
                        on_disk[item.name] = item.stat(follow_symlinks=False).st_size
        # A recorded file of another size counts as both: dropped, re-adopted.
        missing = [key for key, size in recorded.items() if on_disk.get(key) != size]
        unrecorded = [key for key, size in on_disk.items() if recorded.get(key) != size]
        if not missing and not unrecorded:
            with self._transaction() as txn:
                self._evict(txn)
            return
        with self._transaction() as txn:
            self._delete_rows(txn, missing)
            for key in unrecorded:
                label = self._adopt(key, self._object_path(key))
                if label is None:
                    with contextlib.suppress(OSError):
                        os.unlink(self._object_path(key))
                    continue
                # Unknown recency: treat adopted files as the oldest.
                self._record(txn, key, on_disk[key], label, 0.0)
            self._evict(txn)
        log.info(
            "cache: reconciled %d unrecorded files and %d missing entries",
            len(unrecorded),
            len(missing),
        )


def _enter_wal(db: sqlite3.Connection) -> None:
    """PRAGMA journal_mode=WAL, waiting out other connections doing the
    same. While another connection is setting up a new index's WAL, SQLite
    answers "database is locked" at once, without calling its busy handler:
    two workers starting on a fresh cache directory lost that race about
    one start in ten, and the loser served uncached until its first request
    reconnected (behind any lock that request met)."""
    deadline = time.monotonic() + _BUSY_SECONDS
    while True:
        try:
            db.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as error:
            busy = error.sqlite_errorcode & 0xFF == sqlite3.SQLITE_BUSY  # BUSY_RECOVERY too
            if not busy or time.monotonic() >= deadline:
                raise
        time.sleep(_WAL_RETRY_SECONDS)


def _migrate(db: sqlite3.Connection) -> None:
    """Give a cache made before purges the ``original`` column and its index.
    Idempotent, and in a write transaction: workers connecting at once must
    not both add the column."""
    db.execute("BEGIN IMMEDIATE")
    try:
        columns = {row[1] for row in db.execute("PRAGMA table_info(entries)")}
        if "original" not in columns:
            db.execute("ALTER TABLE entries ADD COLUMN original TEXT")
        db.execute("CREATE INDEX IF NOT EXISTS entries_by_original ON entries (original)")
    except BaseException:
        db.execute("ROLLBACK")
        raise
    db.execute("COMMIT")


def _storable(original: str | None) -> str | None:
    """The name as the index can hold it: a path with bytes that are not
    UTF-8 (decoded with surrogate escapes) is recorded under no original."""
    if original is None:
        return None
    try:
        original.encode("utf-8")
    except UnicodeEncodeError:
        return None
    return original


def _prefix_range(prefix: str) -> tuple[str, str | None]:
    """The names starting with ``prefix`` as a range, ``low <= name < high``
    (None: no upper end), in SQLite's order of text (its bytes in UTF-8, so
    code points): no LIKE pattern, whose wildcards would need escaping."""
    characters = list(prefix)
    while characters:
        code = ord(characters[-1]) + 1
        if 0xD800 <= code <= 0xDFFF:  # surrogates: never in a stored name
            code = 0xE000
        if code <= 0x10FFFF:
            characters[-1] = chr(code)
            return prefix, "".join(characters)
        characters.pop()  # the last code point: carry into the one before
    return prefix, None


def _file_size(path: str) -> int:
    try:
        return os.stat(path).st_size
    except FileNotFoundError:
        return 0


def _identity(path: str) -> tuple[int, int] | None:
    try:
        info = os.stat(path)
    except OSError:
        return None
    return info.st_dev, info.st_ino


_MAGIC = (
    (b"\xff\xd8\xff", OutputFormat.JPEG),
    (b"\x89PNG\r\n\x1a\n", OutputFormat.PNG),
    (b"GIF8", OutputFormat.GIF),
)


def _sniff_format(key: str, path: str) -> str | None:
    """The format of a render found without a record (adopted after a crash)."""
    try:
        with open(path, "rb") as handle:
            head = handle.read(16)
    except OSError:
        return None
    for magic, fmt in _MAGIC:
        if head.startswith(magic):
            return fmt.value
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return OutputFormat.WEBP.value
    if head[4:12] in (b"ftypavif", b"ftypavis"):
        return OutputFormat.AVIF.value
    return None
