"""Where originals come from: ``--originals``, ``--origin NAME=SPEC``, headers.

A spec is a directory, an ``http://`` or ``https://`` URL prefix, or
``s3://BUCKET[/PREFIX]``. Parsing here never touches the network; each
problem is a ``ValueError`` with a one-line message for the settings error.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass

from yarl import URL

# Names are URL path segments and metric labels: short, lowercase, plain.
_NAME = re.compile(r"[a-z0-9][a-z0-9_-]{0,62}", re.ASCII)
# A header name is an RFC 9110 token; a value may not break the header line.
_HEADER_NAME = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+", re.ASCII)
# Hop-by-hop and framing headers are ours to set, never an operator's.
_RESERVED_HEADERS = frozenset(
    {"host", "content-length", "transfer-encoding", "connection", "accept-encoding", "te"}
)
log = logging.getLogger(__name__)

DEFAULT_ORIGIN = "default"  # the name --originals goes by in metrics, logs and headers
URL_SOURCES = "url"  # the name ?url= sources go by in metrics and logs
RESERVED_NAMES = frozenset({DEFAULT_ORIGIN, URL_SOURCES})


@dataclass(frozen=True, slots=True)
class DirectorySpec:
    root: str


@dataclass(frozen=True, slots=True)
class HttpSpec:
    prefix: URL  # ends with '/': keys are appended to it


@dataclass(frozen=True, slots=True)
class S3Spec:
    text: str  # s3://BUCKET[/PREFIX], parsed by origins.s3.S3Location


OriginSpec = DirectorySpec | HttpSpec | S3Spec


def parse_origin_spec(text: str) -> OriginSpec:
    """A directory, an HTTP(S) prefix or an S3 location; ValueError when not."""
    stripped = text.strip()
    if not stripped:
        raise ValueError("must not be empty")
    scheme, separator, _ = stripped.partition("://")
    if not separator:
        return DirectorySpec(os.path.abspath(os.path.expanduser(stripped)))
    scheme = scheme.lower()
    if scheme == "s3":
        from .s3 import S3Location  # noqa: PLC0415 - aiobotocore is heavy, loaded for S3 only

        S3Location.parse(stripped)
        return S3Spec(stripped)
    if scheme not in ("http", "https"):
        raise ValueError(f"expected a directory, http(s):// or s3:// prefix, got {text!r}")
    try:
        url = URL(stripped)
    except ValueError as error:
        raise ValueError(f"{text!r} is not a URL: {error}") from None
    if not url.host or url.user or url.password or url.query_string or url.fragment:
        raise ValueError(
            f"{text!r}: an origin prefix is scheme://host[:port]/path, without "
            "credentials (use --origin-header), query or fragment"
        )
    if not url.path.endswith("/"):
        url = url.with_path(url.path + "/")
    return HttpSpec(url)


def parse_named_origin(text: str) -> tuple[str, OriginSpec]:
    """``NAME=SPEC`` for ``--origin``."""
    name, separator, spec = text.partition("=")
    name = name.strip()
    if not separator or not _NAME.fullmatch(name):
        raise ValueError(
            f"expected NAME=SPEC with a lowercase name of letters, digits, - and _, got {text!r}"
        )
    if name in RESERVED_NAMES:
        # "default" names --originals (for headers and metrics), "url" the
        # ?url= sources: an origin of either name would be confused with them.
        raise ValueError(f"{name!r} is reserved; choose another origin name")
    return name, parse_origin_spec(spec)


@dataclass(frozen=True, slots=True)
class OriginHeader:
    """A header sent to one HTTP origin, and only there. ``@FILE`` values are
    read from the file when it changes, so a token can be rotated by
    rewriting the file (docs/origins.md)."""

    origin: str
    name: str
    value: str | None = None
    file: str | None = None


def parse_origin_header(text: str) -> OriginHeader:
    """``ORIGIN=Header-Name: value`` or ``ORIGIN=Header-Name: @/path/to/file``."""
    origin, separator, header = text.partition("=")
    origin = origin.strip()
    name, colon, value = header.partition(":")
    name, value = name.strip(), value.strip()
    if not separator or not _NAME.fullmatch(origin) or not colon:
        raise ValueError(f"expected ORIGIN=Header-Name: value, got {_redacted(text)!r}")
    if not _HEADER_NAME.fullmatch(name) or name.lower() in _RESERVED_HEADERS:
        raise ValueError(f"{name!r} cannot be sent as an origin header")
    if value.startswith("@"):
        path = os.path.abspath(os.path.expanduser(value[1:]))
        read_header_file(path)  # fail at start, not at the first request
        return OriginHeader(origin, name, file=path)
    check_header_value(value)
    return OriginHeader(origin, name, value=value)


def read_header_file(path: str) -> str:
    try:
        with open(path, encoding="utf-8") as handle:
            value = handle.read().strip()
    except (OSError, UnicodeDecodeError) as error:
        raise ValueError(f"cannot read the header value file {path!r}: {error}") from None
    check_header_value(value)
    return value


def check_header_value(value: str) -> None:
    if not value or any(ord(c) < 0x20 or ord(c) == 0x7F for c in value):
        raise ValueError("a header value must be one non-empty line")


def _redacted(text: str) -> str:
    """The flag without its value, which may be a secret."""
    return text.partition(":")[0] + (": ..." if ":" in text else "")


class HeaderValues:
    """An origin's configured headers, as sent: ``@FILE`` values are read
    again whenever the file's mtime changes, so rotating a token is
    rewriting its file (one stat per download; a file that became
    unreadable keeps the last value it had, and says so in the log)."""

    def __init__(self, headers: Sequence[OriginHeader]) -> None:
        self._fixed = {h.name: h.value for h in headers if h.value is not None}
        self._files = [(h.name, h.file) for h in headers if h.file is not None]
        self._read: dict[str, tuple[int, str]] = {}  # path: (mtime_ns, value)
        for _, path in self._files:
            self._current(path)  # read at start: checked by the settings already

    def __call__(self) -> dict[str, str]:
        values = dict(self._fixed)
        for name, path in self._files:
            values[name] = self._current(path)
        return values

    def _current(self, path: str) -> str:
        known = self._read.get(path)
        try:
            mtime = os.stat(path).st_mtime_ns
            if known is None or known[0] != mtime:
                known = (mtime, read_header_file(path))
                self._read[path] = known
        except (OSError, ValueError) as error:
            if known is None:
                raise
            log.warning("origin header file %s: %s; sending its last value", path, error)
        return known[1]
