"""Hosts in URL sources: numeric spellings and the normal form.

Three readers must agree on what a host means: the pattern check, the
address check (``addresses``) and the connection. ``literal_address`` reads
a host the way the C library's resolver does when the host is a number, so
``2130706433``, ``0x7f.1`` and ``0177.0.0.1`` are all 127.0.0.1 to every one
of them; the resolver guard connects to that address without a DNS query.

A trailing dot after a numeric IPv4 host (``127.0.0.1.``) is read as that
address too. glibc 2.36 (checked on Debian 12) does not parse it as a number
and sends it to DNS instead (``EAI_NONAME`` from a normal resolver), but
WHATWG URL parsers and other libcs read it as the address: reading it so
here means no resolver can make it mean anything else.

``normalise_host`` uses the stdlib ``idna`` codec (IDNA 2003), but yarl, which
builds the connection's host, follows UTS 46: ``straße.de`` is
``xn--strae-oqa.de`` to yarl and ``strasse.de`` to the codec, and a pattern
for one must never match a request for the other. So a name is refused
where the two are known to differ: the four deviation characters (ß, ς,
ZWJ, ZWNJ), five CJK compatibility ideographs whose decomposition Unicode
4.0 corrected, and any character outside Unicode 3.2, the codec's tables
(ẞ, Cherokee small letters). Callers should still pass the host as it will
be connected to (yarl's ``URL.raw_host``).
"""

from __future__ import annotations

import re
import unicodedata
from ipaddress import AddressValueError, IPv4Address, IPv6Address

Address = IPv4Address | IPv6Address

# inet_aton's parts: 0x-prefixed hex, 0-prefixed octal, or decimal (ASCII only:
# Python's int() would take other scripts' digits).
_IPV4_PART = re.compile(r"0[xX][0-9a-fA-F]+|0[0-7]*|[1-9][0-9]*", re.ASCII)
_LABEL = re.compile(r"[a-z0-9_-]{1,63}", re.ASCII)
# Where IDNA 2003 and UTS 46 give one host two names (the module docstring).
_DIVERGENT = frozenset("\u00df\u03c2\u200c\u200d\U0002f868\U0002f874\U0002f91f\U0002f95f\U0002f9bf")
_MAX_NAME = 253


def literal_address(host: str) -> Address | None:
    """The address a numeric host spells, or None when it is a name.

    IPv4 in every spelling ``inet_aton`` takes (1 to 4 parts, hex, octal);
    IPv6 with or without brackets. ValueError for what is neither a name nor
    a valid address: a bracketed or colon-holding host that is no IPv6
    address, and any zone id (``fe80::1%eth0``: an interface is not a host).
    """
    if host.startswith("[") or host.endswith("]"):
        if not (host.startswith("[") and host.endswith("]")):
            raise ValueError(f"unbalanced brackets in host {host!r}")
        return _ipv6(host[1:-1])
    if ":" in host:
        return _ipv6(host)
    if not host.isascii():
        try:  # as socket.getaddrinfo would: fullwidth digits are digits to it
            host = host.encode("idna").decode("ascii")
        except UnicodeError:
            return None
    return _ipv4(host.removesuffix("."))


def normalise_host(host: str) -> str:
    """Lowercase, IDNA-encoded, one trailing dot removed, IPv6 unbracketed.

    An IPv6 literal is given in its compressed form (``[::FFFF:7F00:1]`` is
    ``::ffff:7f00:1``). ValueError for a host that cannot be encoded: empty
    labels, over-long labels or names, characters a host name cannot hold.
    """
    if host.startswith("[") or ":" in host:
        return str(literal_address(host))
    try:
        name = host.encode("idna").decode("ascii").lower()
        divergent = not host.isascii() and not (
            _idna_2003_agrees(host) and _idna_2003_agrees(name.encode("ascii").decode("idna"))
        )
    except UnicodeError as error:
        raise ValueError(f"host {host!r} cannot be IDNA-encoded: {error}") from None
    if divergent:
        raise ValueError(f"host {host!r} names one host in IDNA 2003 and another in UTS 46")
    name = name.removesuffix(".")
    if len(name) > _MAX_NAME or not all(_LABEL.fullmatch(label) for label in name.split(".")):
        raise ValueError(f"{host!r} is not a host name")
    return name


def _idna_2003_agrees(text: str) -> bool:
    return not any(c in _DIVERGENT or unicodedata.ucd_3_2_0.category(c) == "Cn" for c in text)


def _ipv4(text: str) -> IPv4Address | None:
    """inet_aton's reading: a.b.c.d, a.b.c (c: 16 bits), a.b (b: 24 bits), a."""
    parts = text.split(".")
    if len(parts) > 4 or not all(_IPV4_PART.fullmatch(part) for part in parts):
        return None
    values = [_part_value(part) for part in parts]
    *leading, number = values
    if any(value > 0xFF for value in leading) or number >= 1 << (8 * (5 - len(values))):
        return None
    for position, value in enumerate(leading):
        number |= value << (24 - 8 * position)
    return IPv4Address(number)


def _part_value(part: str) -> int:
    if part[:2] in ("0x", "0X"):
        return int(part[2:], 16)
    return int(part, 8) if part.startswith("0") else int(part)


def _ipv6(text: str) -> IPv6Address:
    if "%" in text:
        raise ValueError(f"zone ids are refused: {text!r}")
    try:
        return IPv6Address(text)
    except AddressValueError:
        raise ValueError(f"{text!r} is not an IPv6 address") from None
