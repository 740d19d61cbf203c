"""Hosts in URL sources: numeric spellings, the normal form, ``--url-sources`` patterns.

Three readers must agree on what a host means: the pattern check here, the
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
from dataclasses import dataclass
from ipaddress import AddressValueError, IPv4Address, IPv6Address

Address = IPv4Address | IPv6Address

# inet_aton's parts: 0x-prefixed hex, 0-prefixed octal, or decimal (ASCII only:
# Python's int() would take other scripts' digits).
_IPV4_PART = re.compile(r"0[xX][0-9a-fA-F]+|0[0-7]*|[1-9][0-9]*", re.ASCII)
_LABEL = re.compile(r"[a-z0-9_-]{1,63}", re.ASCII)
_PORT = re.compile(r"[0-9]{1,5}", re.ASCII)
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


@dataclass(frozen=True, slots=True)
class HostPattern:
    """One ``--url-sources`` item: which hosts, and on which port (None: any)."""

    name: str = ""  # the exact host, or what a wildcard's subdomains end in
    wildcard: bool = False  # "*" (name empty) or "*.name"
    address: Address | None = None  # an IP pattern matches by address only
    port: int | None = None

    def matches(self, name: str, address: Address | None, port: int) -> bool:
        """Whether the normalised host ``name`` (reading as ``address``) matches."""
        if self.port is not None and port != self.port:
            return False
        if self.address is not None:
            return address == self.address
        if self.wildcard and not self.name:
            return True
        if address is not None:
            return False  # a numeric spelling is an address, never a name
        if self.wildcard:
            return name.endswith("." + self.name)
        return name == self.name


@dataclass(frozen=True, slots=True)
class HostPatterns:
    """The ``--url-sources`` allow-list: a host is allowed when one pattern matches."""

    patterns: tuple[HostPattern, ...]

    @classmethod
    def parse(cls, text: str) -> HostPatterns:
        """Comma-separated ``host[:port]`` patterns; ValueError names a bad one.

        ``example.com`` (any port), ``example.com:8443``, ``*.example.com``
        (subdomains at any depth, not example.com itself), ``*`` (any host),
        IP literals (``127.0.0.1:9000``, ``[::1]:9000``, ``[::1]``).
        """
        if not text:
            raise ValueError("no host patterns given: expected example.com,*.example.com:443")
        return cls(tuple(_parse_pattern(item, text) for item in text.split(",")))

    def allows(self, host: str, port: int) -> bool:
        """Whether ``host`` (in any spelling) on ``port`` matches a pattern."""
        try:
            name = normalise_host(host)
        except ValueError:
            return False  # no pattern can match what cannot be a host
        address = literal_address(name)
        return any(pattern.matches(name, address, port) for pattern in self.patterns)


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


def _parse_pattern(item: str, text: str) -> HostPattern:
    if not item:
        raise ValueError(f"an empty host pattern in {text!r}")
    if any(character.isspace() for character in item):
        raise ValueError(f"bad host pattern {item!r}: spaces are not allowed")
    try:
        host, port = _split_port(item)
        return _host_pattern(host, port)
    except ValueError as error:
        raise ValueError(f"bad host pattern {item!r}: {error}") from None


def _split_port(item: str) -> tuple[str, int | None]:
    if item.startswith("["):
        host, bracket, rest = item.partition("]")
        host += bracket
    else:
        host, colon, rest = item.rpartition(":")
        if not colon:
            return item, None
        rest = colon + rest
        if ":" in host:
            raise ValueError("one ':' at most (an IPv6 address goes in brackets: [::1]:9000)")
    if not rest:
        return host, None
    if not rest.startswith(":") or not _PORT.fullmatch(rest[1:]):
        raise ValueError("a port is 1 to 65535 after a ':'")
    port = int(rest[1:])
    if not 1 <= port <= 65535:
        raise ValueError(f"port {port} is not in 1 to 65535")
    return host, port


def _host_pattern(host: str, port: int | None) -> HostPattern:
    if host == "*":
        return HostPattern(wildcard=True, port=port)
    if host.startswith("*."):
        suffix = host[2:]
        if not suffix or "*" in suffix:
            raise ValueError("'*.' needs a domain name after it: *.example.com")
        name = normalise_host(suffix)
        if literal_address(name) is not None:
            raise ValueError("'*.' needs a domain name after it, not an address")
        return HostPattern(name=name, wildcard=True, port=port)
    if "*" in host:
        raise ValueError("'*' is a whole pattern or its first label: *.example.com")
    name = normalise_host(host)
    return HostPattern(name=name, address=literal_address(name), port=port)
