"""The mezzanine store: per original, one smaller copy that renders read.

What a mezzanine is, and when a render reads it, is ``render/mezzanine.py``'s;
this module owns where they are kept and when one is made.

Layout: a ``DiskCache`` of its own under ``<cache>/mezzanine`` (so the
result cache's guarantees hold here too: written under ``tmp/``, renamed
into ``objects/`` in the transaction that records it, its own byte bound
``--mezzanine-max-bytes`` and LRU order shared by every worker, a size
checked at every open so a torn or replaced file is never read). Each
entry is keyed by the original's identity (a rewritten file is a new
original, with a new mezzanine) and committed under its purge name, so a
purge removes it (service/purge.py).

When: the first variant of an original renders from the original as it
always did; the store only notes which variant it was, in a bounded
in-process memo. The second distinct variant of the same original builds
the mezzanine (in its render slot, under its decode reservation and a
deadline) and renders from it; later ones read it. So an original asked
for once pays nothing. With several workers each counts its own variants,
so an original may wait for a second variant in each worker before one of
them builds it; once built, every worker reads it.

Coalescing: within a process, one build per original at a time; a render
that needs the same mezzanine meanwhile waits for it (like a request
waiting for a render of its key). Across processes two workers may build
the same mezzanine at once: the second commit finds the first and is
discarded (``DiskCache.commit``), which costs one build, never a wrong file.

Every method blocks; they run in render threads.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import threading
from collections import OrderedDict
from collections.abc import Iterator

from .cache import CachedFile, CacheUnavailable, DiskCache, TempFile

# The label of every entry (the result cache's is a format).
LABEL = "mezzanine"
# Originals whose first variant is remembered: 64 bytes of digest each.
_REMEMBERED_ORIGINALS = 16_384


def mezzanine_key(identity: str) -> str:
    """The store's key for an original's identity."""
    return hashlib.sha256(("mezzanine\0" + identity).encode("utf-8", "surrogatepass")).hexdigest()


def adopt_mezzanine(key: str, path: str) -> str | None:
    """A file found without a record after a crash: libvips' native format
    (its magic, in either byte order) is adopted; ``load`` checks the rest."""
    try:
        with open(path, "rb") as handle:
            head = handle.read(4)
    except OSError:
        return None
    return LABEL if head in (b"\x08\xf2\xa6\xb6", b"\xb6\xa6\xf2\x08") else None


class MezzanineStore:
    """Owns the mezzanine cache, the first-variant memo and the builds in flight."""

    def __init__(self, cache: DiskCache) -> None:
        self.cache = cache
        self._lock = threading.Lock()
        self._first_variant: OrderedDict[str, str] = OrderedDict()
        self._building: dict[str, threading.Lock] = {}

    def wants(self, identity: str, variant: str) -> bool:
        """Note that ``variant`` (a result key) of the original ``identity``
        is being rendered; True when it is the second distinct one (or later):
        the original is worth a mezzanine."""
        with self._lock:
            first = self._first_variant.get(identity)
            if first is None:
                self._first_variant[identity] = variant
                if len(self._first_variant) > _REMEMBERED_ORIGINALS:
                    self._first_variant.popitem(last=False)
                return False
            self._first_variant.move_to_end(identity)
            return first != variant

    def find(self, identity: str) -> CachedFile | None:
        """The original's mezzanine, whole (its size checked), or None; a
        use, for the LRU order. The descriptor is not kept: the render
        reads the file by name, and an eviction meanwhile only makes that
        render read the original instead."""
        try:
            found = self.cache.open_entry(mezzanine_key(identity))
        except CacheUnavailable:
            return None
        if found is None:
            return None
        entry, descriptor = found
        os.close(descriptor)
        return entry

    @contextlib.contextmanager
    def building(self, identity: str) -> Iterator[None]:
        """Held while this process builds (or waits for another thread's
        build of) the mezzanine of ``identity``: one build per original."""
        with self._lock:
            lock = self._building.setdefault(identity, threading.Lock())
        try:
            with lock:
                yield
        finally:
            with self._lock:
                if not lock.locked() and self._building.get(identity) is lock:
                    del self._building[identity]

    def new_temp(self) -> TempFile:
        """A temporary of the store to build into, named ``.v`` (libvips
        writes its native format only to a name that says so); CacheUnavailable."""
        return self.cache.new_temp(suffix=".v")

    def commit(self, identity: str, temp: TempFile, purge_name: str) -> CachedFile:
        """Keep a finished build under the original's purge name ("": none);
        CacheUnavailable when the store cannot take it."""
        return self.cache.commit(mezzanine_key(identity), temp, LABEL, original=purge_name or None)

    def forget(self, identity: str) -> None:
        """Remove a mezzanine that failed a render (damaged)."""
        self.cache.remove(mezzanine_key(identity))
