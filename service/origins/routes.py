"""Which origin a ``/picture/<path>`` reads from, and under which key.

With no ``--origin``, every path reads from ``--originals``. With named
origins, a path whose first segment names one reads the rest of the path
from it; any other path reads from ``--originals`` only when it was given
(the bundled samples are no default then), else is a 404. The path is
checked like a local one (no ``..``, hidden or empty segments) before any
origin is asked.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from ..errors import NotFound
from ..sources import OriginalsDirectory, checked_segments
from .fetched import OriginClient
from .source_cache import Source

Origin = OriginalsDirectory | OriginClient


@dataclass(frozen=True, slots=True)
class LocalTarget:
    directory: OriginalsDirectory
    path: str


@dataclass(frozen=True, slots=True)
class RemoteTarget:
    source: Source


class Routes:
    def __init__(self, default: Origin | None, named: Mapping[str, Origin]) -> None:
        self._default = default
        self._named = dict(named)

    @property
    def remote(self) -> bool:
        """Whether any origin is remote (so the source cache is needed)."""
        return any(
            not isinstance(origin, OriginalsDirectory)
            for origin in (self._default, *self._named.values())
            if origin is not None
        )

    def target(self, path: str) -> LocalTarget | RemoteTarget:
        segments = checked_segments(path)
        origin, key = self._default, path
        if len(segments) > 1 and segments[0] in self._named:
            origin, key = self._named[segments[0]], "/".join(segments[1:])
        if origin is None:
            raise NotFound()
        if isinstance(origin, OriginalsDirectory):
            return LocalTarget(origin, key)
        return RemoteTarget(Source(origin, key))
