"""Signed URLs: HMAC-SHA256 over the path and query exactly as sent.

``s`` is the URL-safe base64 (no padding) of HMAC-SHA256(key, P), where P is
the request path plus ``?`` plus the query with the ``s`` parameter removed,
still percent-encoded as sent (just the path when nothing else remains).
``s`` must be the last parameter. Several keys may verify (rotation); the
first one signs.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Sequence
from urllib.parse import urlsplit, urlunsplit


def signature(key: str, signed_part: str) -> str:
    digest = hmac.new(key.encode(), signed_part.encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def split_signature(raw_path_qs: str) -> tuple[str, str | None]:
    """(the signed part, the ``s`` value) of a raw request target; the
    value is None unless ``s`` is present as the last parameter."""
    path, sep, query = raw_path_qs.partition("?")
    if not sep:
        return path, None
    parameters = query.split("&")
    name, equals, value = parameters[-1].partition("=")
    if name != "s" or not equals:
        return raw_path_qs, None
    rest = "&".join(parameters[:-1])
    return (f"{path}?{rest}" if rest else path), value


def origin_form(target: str) -> str:
    """The path and query of a request target as sent: an absolute-form
    target (``GET http://host/picture/...``, which HTTP/1.1 servers must
    accept, and which some clients send to what they take for a proxy)
    loses its scheme and authority, so it verifies like the origin form."""
    scheme, separator, rest = target.partition("://")
    if not separator or scheme.lower() not in ("http", "https"):
        return target
    authority_end = min((i for i in (rest.find("/"), rest.find("?")) if i >= 0), default=len(rest))
    path_and_query = rest[authority_end:]
    return path_and_query if path_and_query.startswith("/") else "/" + path_and_query


def verify(raw_path_qs: str, keys: Sequence[str]) -> bool:
    """Whether the request target as sent (origin or absolute form) carries
    a valid signature under any of ``keys``. Every key is compared, in
    constant time, whatever matched before."""
    signed_part, given = split_signature(origin_form(raw_path_qs))
    if given is None:
        return False
    valid = False
    for key in keys:
        valid |= hmac.compare_digest(signature(key, signed_part), given)
    return valid


def sign_url(url: str, key: str) -> str:
    """The URL with its ``s`` parameter appended (an existing one replaced)."""
    parts = urlsplit(url)
    target = parts.path + (f"?{parts.query}" if parts.query else "")
    unsigned, _ = split_signature(target)
    signed = f"{unsigned}{'&' if '?' in unsigned else '?'}s={signature(key, unsigned)}"
    path, _, query = signed.partition("?")
    return urlunsplit((parts.scheme, parts.netloc, path, query, parts.fragment))
