"""Which IP addresses the fetcher may connect to: the SSRF address table.

A URL source names a host; whatever it resolves to, the fetcher connects only
to addresses this module permits. ``address_refusal`` answers with ``None``
(connect) or a short reason for the log and the 403 message.

The rules, in the order they apply:

1. Cloud metadata endpoints (``METADATA_ENDPOINTS``) are refused first, so
   169.254.169.254 reads "cloud metadata endpoint", not "link-local".
2. The operator's allowed networks (``--url-sources-allow-networks``) open
   exactly the addresses inside them, except metadata endpoints (and IPv6
   addresses carrying one), which only an allowed network of that single
   address (/32, /128) opens: allowing 169.254.0.0/16 for a link-local
   origin must not hand out credentials.
   An allowed network opens its own addresses only: 127.0.0.0/8 opens
   127.0.0.1, not ::ffff:127.0.0.1 or the NAT64 form 64:ff9b::7f00:1.
3. NAT64, 6to4 and Teredo addresses (``EMBEDDINGS``) are read for the IPv4
   address they carry, which is checked by rules 1 and 4: a NAT64 gateway
   connects to 64:ff9b::7f00:1 by connecting to 127.0.0.1.
4. Every other address is looked up in ``REFUSED``; the longest matching
   prefix gives the reason, so the table can stay in address order.

Why a table and not ``ipaddress``' ``is_global``: it was wrong for some
ranges before Python 3.12.4 (gh-113171), and this table is what the
operator's documentation lists.
"""

from __future__ import annotations

from collections.abc import Sequence
from ipaddress import IPv4Address, IPv4Network, IPv6Address, IPv6Network, ip_address, ip_network

Address = IPv4Address | IPv6Address
Network = IPv4Network | IPv6Network

_GLOBAL_UNICAST_ONLY = "reserved (outside global unicast 2000::/3)"

REFUSED: tuple[tuple[Network, str], ...] = tuple(
    (ip_network(text), reason)
    for text, reason in (
        ("0.0.0.0/8", "unspecified"),  # "this network"
        ("10.0.0.0/8", "private network"),
        ("100.64.0.0/10", "CGNAT (shared address space)"),
        ("127.0.0.0/8", "loopback"),
        ("169.254.0.0/16", "link-local"),
        ("172.16.0.0/12", "private network"),
        # Also holds the anycast 192.0.0.9 (PCP) and 192.0.0.10 (TURN) that
        # IANA marks globally reachable: no image origin lives there.
        ("192.0.0.0/24", "reserved (IETF protocol assignments)"),
        ("192.0.2.0/24", "documentation"),
        ("192.88.99.0/24", "reserved (6to4 relay anycast, deprecated)"),
        ("192.168.0.0/16", "private network"),
        ("198.18.0.0/15", "reserved (benchmarking)"),
        ("198.51.100.0/24", "documentation"),
        ("203.0.113.0/24", "documentation"),
        ("224.0.0.0/4", "multicast"),
        ("240.0.0.0/4", "reserved"),
        ("255.255.255.255/32", "broadcast"),
        # IPv6. Only 2000::/3 is allocated as global unicast; every other
        # block is IETF-reserved (the IANA IPv6 address space registry) apart
        # from the special blocks listed with their own reasons, and NAT64,
        # which EMBEDDINGS reads before this table.
        ("::/8", _GLOBAL_UNICAST_ONLY),
        ("::/96", "IPv4-compatible IPv6"),  # deprecated; :: and ::1 are longer prefixes
        ("::/128", "unspecified"),
        ("::1/128", "loopback"),
        ("::ffff:0:0/96", "IPv4-mapped IPv6"),
        ("100::/8", _GLOBAL_UNICAST_ONLY),
        ("100::/64", "discard-only"),
        ("200::/7", _GLOBAL_UNICAST_ONLY),
        ("400::/6", _GLOBAL_UNICAST_ONLY),
        ("800::/5", _GLOBAL_UNICAST_ONLY),
        ("1000::/4", _GLOBAL_UNICAST_ONLY),
        # The IANA special-purpose registry's 2001::/23 is refused whole, apart
        # from Teredo (2001::/32, an embedding). The registry marks a few
        # blocks inside it globally reachable: PCP, TURN and DNS-SD anycast
        # (2001:1::1-3), AMT relays (2001:3::/32), AS112 (2001:4:112::/48),
        # ORCHIDv2 and drone IDs (2001:20::/28, 2001:30::/28). Those are
        # protocol services and identifiers, never where images are served; an
        # operator who needs one opens it with an allowed network.
        ("2001::/23", "reserved (IETF protocol assignments)"),
        ("2001:2::/48", "reserved (benchmarking)"),
        ("2001:db8::/32", "documentation"),
        ("3fff::/20", "documentation"),
        ("4000::/2", _GLOBAL_UNICAST_ONLY),
        ("5f00::/16", "reserved (segment routing SIDs)"),
        ("8000::/1", _GLOBAL_UNICAST_ONLY),
        ("fc00::/7", "private network"),  # unique local addresses
        ("fe80::/10", "link-local"),
        ("fec0::/10", "site-local"),  # deprecated, but stacks still route it locally
        ("ff00::/8", "multicast"),
    )
)

METADATA_ENDPOINTS: tuple[tuple[Address, str], ...] = tuple(
    (ip_address(text), clouds)
    for text, clouds in (
        ("169.254.169.254", "AWS, GCP, Azure, Oracle, DigitalOcean, OpenStack"),
        ("169.254.170.2", "AWS ECS task metadata and credentials"),
        ("169.254.170.23", "AWS EKS Pod Identity agent"),
        ("100.100.100.200", "Alibaba Cloud"),
        ("168.63.129.16", "Azure WireServer"),  # a public address: only this rule refuses it
        ("192.0.0.192", "Oracle Cloud Classic"),
        ("fd00:ec2::254", "AWS (IPv6)"),
        ("fd00:ec2::23", "AWS EKS Pod Identity agent (IPv6)"),
        ("fd20:ce::254", "GCP (IPv6)"),
        ("fe80::a9fe:a9fe", "OpenStack (IPv6)"),
    )
)

# Where each carries its IPv4 address: NAT64 in the last 32 bits (RFC 6052's
# /96 format; the local-use 64:ff9b:1::/48 is read the same way, though a
# translator there may use another RFC 6052 length, placing the IPv4 address
# elsewhere, which the address alone cannot tell), 6to4 in bits 16-48, Teredo
# its server in bits 32-64 and its client, inverted, in the last 32.
EMBEDDINGS: tuple[tuple[IPv6Network, str], ...] = (
    (IPv6Network("64:ff9b::/96"), "NAT64"),
    (IPv6Network("64:ff9b:1::/48"), "NAT64"),
    (IPv6Network("2002::/16"), "6to4"),
    (IPv6Network("2001::/32"), "Teredo"),
)

_METADATA = frozenset(address for address, _ in METADATA_ENDPOINTS)
_LOW_32 = 0xFFFFFFFF


def address_refusal(address: Address, allowed: Sequence[Network] = ()) -> str | None:
    """None when a connection to ``address`` is permitted, else why not."""
    if isinstance(address, IPv6Address):
        address = IPv6Address(int(address))  # drop a zone id: it would defeat equality
    metadata = _is_metadata(address)
    if any(_opens(network, address, metadata=metadata) for network in allowed):
        return None
    return _refusal(address)


def parse_networks(text: str) -> tuple[Network, ...]:
    """Comma-separated networks in CIDR form (``10.0.0.0/8,fd00::/8``).

    Host bits must be clear ("10.0.0.1/8" is a mistake, not 10.0.0.0/8); a
    bare address is that one address (/32, /128).
    """
    if not text:
        raise ValueError("no networks given: expected CIDRs such as 10.0.0.0/8,fd00::/8")
    networks: list[Network] = []
    for item in text.split(","):
        if not item:
            raise ValueError(f"an empty network in {text!r}")
        if "%" in item:
            raise ValueError(f"bad network {item!r}: zone ids are not allowed")
        try:
            networks.append(ip_network(item))  # strict: host bits set is an error
        except ValueError as error:
            raise ValueError(f"bad network {item!r}: {error}") from None
    return tuple(networks)


def _opens(network: Network, address: Address, *, metadata: bool) -> bool:
    if network.version != address.version or address not in network:
        return False
    return not metadata or network.num_addresses == 1


def _is_metadata(address: Address) -> bool:
    """A metadata endpoint, itself or carried inside an IPv6 address."""
    candidates: list[Address] = [address]
    if isinstance(address, IPv6Address):
        candidates += _carried(address)
        if int(address) >> 32 in (0, 0xFFFF):  # IPv4-compatible or IPv4-mapped
            candidates.append(IPv4Address(int(address) & _LOW_32))
    return any(candidate in _METADATA for candidate in candidates)


def _refusal(address: Address) -> str | None:
    if address in _METADATA:
        return "cloud metadata endpoint"
    if isinstance(address, IPv6Address):
        name = _embedding(address)
        if name is not None:
            for v4 in _carried(address):
                reason = _refusal(v4)
                if reason is not None:
                    return f"{name} embedding of {reason}"
            return None
    matches = [
        (network.prefixlen, reason)
        for network, reason in REFUSED
        if network.version == address.version and address in network
    ]
    return max(matches)[1] if matches else None


def _embedding(address: IPv6Address) -> str | None:
    return next((name for network, name in EMBEDDINGS if address in network), None)


def _carried(address: IPv6Address) -> tuple[IPv4Address, ...]:
    """The IPv4 addresses a NAT64, 6to4 or Teredo address carries."""
    name = _embedding(address)
    if name == "NAT64":
        return (IPv4Address(int(address) & _LOW_32),)
    if name == "6to4":
        return (IPv4Address((int(address) >> 80) & _LOW_32),)
    if name == "Teredo":
        server = IPv4Address((int(address) >> 64) & _LOW_32)
        return (server, IPv4Address(~int(address) & _LOW_32))
    return ()
