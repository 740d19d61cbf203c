"""The SSRF address table: which addresses the fetcher may connect to."""

from __future__ import annotations

import re
from ipaddress import IPv4Address, IPv4Network, IPv6Address, IPv6Network, ip_address, ip_network

import pytest
from hypothesis import given
from hypothesis import strategies as st

from service.origins.addresses import (
    EMBEDDINGS,
    METADATA_ENDPOINTS,
    REFUSED,
    address_refusal,
    parse_networks,
)

Address = IPv4Address | IPv6Address
Network = IPv4Network | IPv6Network

RESERVED_V6 = "reserved (outside global unicast 2000::/3)"
IETF = "reserved (IETF protocol assignments)"
PUBLIC = IPv4Address("8.8.8.8")


def refusal(text: str, allowed: str = "") -> str | None:
    return address_refusal(ip_address(text), parse_networks(allowed) if allowed else ())


# The embeddings built from their RFCs' bit layouts, not from the module's code.
def mapped(v4: IPv4Address) -> IPv6Address:
    return IPv6Address(0xFFFF << 32 | int(v4))


def compatible(v4: IPv4Address) -> IPv6Address:
    return IPv6Address(int(v4))


def nat64(v4: IPv4Address, prefix: str = "64:ff9b::") -> IPv6Address:
    return IPv6Address(int(IPv6Address(prefix)) | int(v4))


def sixtofour(v4: IPv4Address, suffix: int = 1) -> IPv6Address:
    return IPv6Address(0x2002 << 112 | int(v4) << 80 | suffix)


def teredo(server: IPv4Address, client: IPv4Address, flags_port: int = 0x8000_F227) -> IPv6Address:
    obfuscated = ~int(client) & 0xFFFFFFFF
    return IPv6Address(0x20010000 << 96 | int(server) << 64 | flags_port << 32 | obfuscated)


@pytest.mark.parametrize(
    ("address", "reason"),
    [
        # Each range: just below, first, last, just above.
        ("0.0.0.0", "unspecified"),  # noqa: S104 (an address to check, not to bind)
        ("0.255.255.255", "unspecified"),
        ("1.0.0.0", None),
        ("9.255.255.255", None),
        ("10.0.0.0", "private network"),
        ("10.255.255.255", "private network"),
        ("11.0.0.0", None),
        ("100.63.255.255", None),
        ("100.64.0.0", "CGNAT (shared address space)"),
        ("100.127.255.255", "CGNAT (shared address space)"),
        ("100.128.0.0", None),
        ("126.255.255.255", None),
        ("127.0.0.0", "loopback"),
        ("127.0.0.1", "loopback"),
        ("127.255.255.255", "loopback"),
        ("128.0.0.0", None),
        ("169.253.255.255", None),
        ("169.254.0.0", "link-local"),
        ("169.254.255.255", "link-local"),
        ("169.255.0.0", None),
        ("172.15.255.255", None),
        ("172.16.0.0", "private network"),
        ("172.31.255.255", "private network"),
        ("172.32.0.0", None),
        ("191.255.255.255", None),
        ("192.0.0.0", IETF),
        ("192.0.0.9", IETF),  # PCP anycast: globally reachable, still no image origin
        ("192.0.0.255", IETF),
        ("192.0.1.0", None),
        ("192.0.1.255", None),
        ("192.0.2.0", "documentation"),
        ("192.0.2.255", "documentation"),
        ("192.0.3.0", None),
        ("192.88.98.255", None),
        ("192.88.99.0", "reserved (6to4 relay anycast, deprecated)"),
        ("192.88.99.255", "reserved (6to4 relay anycast, deprecated)"),
        ("192.88.100.0", None),
        ("192.167.255.255", None),
        ("192.168.0.0", "private network"),
        ("192.168.255.255", "private network"),
        ("192.169.0.0", None),
        ("198.17.255.255", None),
        ("198.18.0.0", "reserved (benchmarking)"),
        ("198.19.255.255", "reserved (benchmarking)"),
        ("198.20.0.0", None),
        ("198.51.99.255", None),
        ("198.51.100.0", "documentation"),
        ("198.51.100.255", "documentation"),
        ("198.51.101.0", None),
        ("203.0.112.255", None),
        ("203.0.113.0", "documentation"),
        ("203.0.113.255", "documentation"),
        ("203.0.114.0", None),
        ("223.255.255.255", None),
        ("224.0.0.0", "multicast"),
        ("239.255.255.255", "multicast"),
        ("240.0.0.0", "reserved"),
        ("255.255.255.254", "reserved"),
        ("255.255.255.255", "broadcast"),
    ],
)
def test_ipv4_ranges_and_their_boundaries(address: str, reason: str | None) -> None:
    """Every refused IPv4 range, inside at both ends, allowed just outside."""
    assert refusal(address) == reason


@pytest.mark.parametrize(
    ("address", "reason"),
    [
        ("::", "unspecified"),
        ("::1", "loopback"),
        ("::2", "IPv4-compatible IPv6"),
        ("::ffff:ffff", "IPv4-compatible IPv6"),
        ("::1:0:0", RESERVED_V6),
        ("::fffe:ffff:ffff", RESERVED_V6),
        ("::ffff:0:0", "IPv4-mapped IPv6"),
        ("::ffff:ffff:ffff", "IPv4-mapped IPv6"),
        ("::1:0:0:0", RESERVED_V6),
        ("ff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", RESERVED_V6),
        ("100::", "discard-only"),
        ("100::ffff:ffff:ffff:ffff", "discard-only"),
        ("100:0:0:1::", RESERVED_V6),
        ("1fff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", RESERVED_V6),
        ("2000::", None),
        ("2000:ffff:ffff:ffff:ffff:ffff:ffff:ffff", None),
        ("2001:1::", IETF),
        ("2001:1::1", IETF),  # PCP anycast, globally reachable: refused with its block
        ("2001:1ff:ffff:ffff:ffff:ffff:ffff:ffff", IETF),
        ("2001:200::", None),
        ("2001:1:ffff:ffff:ffff:ffff:ffff:ffff", IETF),
        ("2001:2::", "reserved (benchmarking)"),
        ("2001:2:0:ffff:ffff:ffff:ffff:ffff", "reserved (benchmarking)"),
        ("2001:2:1::", IETF),
        ("2001:10::1", IETF),  # ORCHID, deprecated
        ("2001:db7:ffff:ffff:ffff:ffff:ffff:ffff", None),
        ("2001:db8::", "documentation"),
        ("2001:db8:ffff:ffff:ffff:ffff:ffff:ffff", "documentation"),
        ("2001:db9::", None),
        ("2001:4860:4860::8888", None),
        ("3ffe:ffff:ffff:ffff:ffff:ffff:ffff:ffff", None),
        ("3fff::", "documentation"),
        ("3fff:fff:ffff:ffff:ffff:ffff:ffff:ffff", "documentation"),
        ("3fff:1000::", None),
        ("3fff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", None),
        ("4000::", RESERVED_V6),
        ("5eff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", RESERVED_V6),
        ("5f00::", "reserved (segment routing SIDs)"),
        ("5f00:ffff:ffff:ffff:ffff:ffff:ffff:ffff", "reserved (segment routing SIDs)"),
        ("5f01::", RESERVED_V6),
        ("8000::", RESERVED_V6),
        ("fbff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", RESERVED_V6),
        ("fc00::", "private network"),
        ("fd12:3456::1", "private network"),
        ("fdff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", "private network"),
        ("fe00::", RESERVED_V6),
        ("fe7f:ffff:ffff:ffff:ffff:ffff:ffff:ffff", RESERVED_V6),
        ("fe80::", "link-local"),
        ("febf:ffff:ffff:ffff:ffff:ffff:ffff:ffff", "link-local"),
        ("fec0::", "site-local"),
        ("feff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", "site-local"),
        ("ff00::", "multicast"),
        ("ff02::1", "multicast"),
        ("ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", "multicast"),
    ],
)
def test_ipv6_ranges_and_their_boundaries(address: str, reason: str | None) -> None:
    """Every refused IPv6 range, inside at both ends, outside just past them."""
    assert refusal(address) == reason


@pytest.mark.parametrize(
    ("address", "reason"),
    [
        ("64:ff9a:ffff:ffff:ffff:ffff:ffff:ffff", RESERVED_V6),
        ("64:ff9b::", "NAT64 embedding of unspecified"),
        ("64:ff9b::808:808", None),
        ("64:ff9b::ffff:ffff", "NAT64 embedding of broadcast"),
        ("64:ff9b::1:0:0", RESERVED_V6),  # outside the /96: carries no IPv4 address
        ("64:ff9b:0:ffff::", RESERVED_V6),
        ("64:ff9b:1::", "NAT64 embedding of unspecified"),
        ("64:ff9b:1::808:808", None),
        ("64:ff9b:1:ffff:ffff:ffff:808:808", None),
        ("64:ff9b:1:ffff:ffff:ffff:ffff:ffff", "NAT64 embedding of broadcast"),
        ("64:ff9b:2::", RESERVED_V6),
        ("2001:ffff:ffff:ffff:ffff:ffff:ffff:ffff", None),
        ("2002::", "6to4 embedding of unspecified"),
        ("2002:808:808::1", None),
        ("2002:ffff:ffff:ffff:ffff:ffff:ffff:ffff", "6to4 embedding of broadcast"),
        ("2003::", None),
        ("2001::", "Teredo embedding of unspecified"),  # server 0.0.0.0
        ("2001:0:808:808:8000:f227:f7f7:fbfb", None),  # server 8.8.8.8, client 8.8.4.4
        ("2001:0:ffff:ffff:ffff:ffff:ffff:ffff", "Teredo embedding of broadcast"),
        ("2001:1::", IETF),  # just past Teredo, back in 2001::/23
    ],
)
def test_embedding_prefixes_and_their_boundaries(address: str, reason: str | None) -> None:
    """NAT64, 6to4 and Teredo carry an IPv4 address only inside their prefix."""
    assert refusal(address) == reason


@pytest.mark.parametrize(
    "address",
    [
        "169.254.169.254",
        "fd00:ec2::254",
        "100.100.100.200",
        "168.63.129.16",
        *(str(endpoint) for endpoint, _ in METADATA_ENDPOINTS),
    ],
)
def test_metadata_endpoints_are_named_before_their_range(address: str) -> None:
    """A metadata endpoint says so, even inside link-local or a public range."""
    assert refusal(address) == "cloud metadata endpoint"


def test_a_zone_id_does_not_hide_a_metadata_endpoint() -> None:
    """fd00:ec2::254%eth0 is still the AWS metadata endpoint."""
    assert refusal("fd00:ec2::254%eth0") == "cloud metadata endpoint"
    assert refusal("fe80::1%2") == "link-local"


EMBEDDED = [
    (IPv4Address("127.0.0.1"), "loopback"),
    (IPv4Address("10.1.2.3"), "private network"),
    (IPv4Address("169.254.169.254"), "cloud metadata endpoint"),
    (IPv4Address("168.63.129.16"), "cloud metadata endpoint"),
    (IPv4Address("100.64.0.1"), "CGNAT (shared address space)"),
    (PUBLIC, None),
]


@pytest.mark.parametrize(("v4", "reason"), EMBEDDED)
def test_mapped_addresses_are_refused_whatever_they_carry(
    v4: IPv4Address, reason: str | None
) -> None:
    """::ffff:a.b.c.d is refused outright, ::ffff:8.8.8.8 too."""
    assert address_refusal(mapped(v4)) == "IPv4-mapped IPv6"


@pytest.mark.parametrize(("v4", "reason"), EMBEDDED)
def test_compatible_addresses_are_refused_whatever_they_carry(
    v4: IPv4Address, reason: str | None
) -> None:
    """::a.b.c.d (deprecated IPv4-compatible) is refused outright."""
    assert address_refusal(compatible(v4)) == "IPv4-compatible IPv6"


@pytest.mark.parametrize(("v4", "reason"), EMBEDDED)
@pytest.mark.parametrize("prefix", ["64:ff9b::", "64:ff9b:1::", "64:ff9b:1:abcd::"])
def test_nat64_carries_its_ipv4_refusal(prefix: str, v4: IPv4Address, reason: str | None) -> None:
    """A NAT64 address is refused exactly when the IPv4 address it carries is."""
    expected = None if reason is None else f"NAT64 embedding of {reason}"
    assert address_refusal(nat64(v4, prefix)) == expected


@pytest.mark.parametrize(("v4", "reason"), EMBEDDED)
def test_6to4_carries_its_ipv4_refusal(v4: IPv4Address, reason: str | None) -> None:
    """A 6to4 address is refused exactly when the IPv4 address it carries is."""
    expected = None if reason is None else f"6to4 embedding of {reason}"
    assert address_refusal(sixtofour(v4)) == expected


@pytest.mark.parametrize(("v4", "reason"), EMBEDDED)
def test_teredo_client_carries_its_ipv4_refusal(v4: IPv4Address, reason: str | None) -> None:
    """A Teredo client's address (inverted in the last 32 bits) is checked."""
    expected = None if reason is None else f"Teredo embedding of {reason}"
    assert address_refusal(teredo(PUBLIC, v4)) == expected


@pytest.mark.parametrize(("v4", "reason"), EMBEDDED)
def test_teredo_server_carries_its_ipv4_refusal(v4: IPv4Address, reason: str | None) -> None:
    """A Teredo server's address (bits 32 to 64) is checked."""
    expected = None if reason is None else f"Teredo embedding of {reason}"
    assert address_refusal(teredo(v4, PUBLIC)) == expected


def test_teredo_reads_the_rfc_4380_example() -> None:
    """RFC 4380's example address carries 65.54.227.120 and 192.0.2.45."""
    assert refusal("2001:0:4136:e378:8000:63bf:3fff:fdd2") == "Teredo embedding of documentation"


@given(st.ip_addresses(v=4), st.integers(min_value=0, max_value=2**80 - 1))
def test_nat64_and_6to4_agree_with_the_ipv4_address(v4: IPv4Address, suffix: int) -> None:
    """For any IPv4 address, its NAT64 and 6to4 forms are refused just when it is."""
    refused = address_refusal(v4) is not None
    assert (address_refusal(nat64(v4)) is not None) is refused
    assert (address_refusal(nat64(v4, "64:ff9b:1::")) is not None) is refused
    assert (address_refusal(sixtofour(v4, suffix)) is not None) is refused


@given(st.ip_addresses(v=4), st.ip_addresses(v=4), st.integers(min_value=0, max_value=2**32 - 1))
def test_teredo_is_refused_when_either_end_is(
    server: IPv4Address, client: IPv4Address, flags_port: int
) -> None:
    """A Teredo address is refused when its server or its client is."""
    either = address_refusal(server) is not None or address_refusal(client) is not None
    assert (address_refusal(teredo(server, client, flags_port)) is not None) is either


@given(st.ip_addresses())
def test_the_table_is_at_least_as_strict_as_the_stdlib(address: Address) -> None:
    """Whatever is allowed, ``is_global`` agrees (NAT64, 6to4, Teredo aside)."""
    embedded = isinstance(address, IPv6Address) and any(address in net for net, _ in EMBEDDINGS)
    if address_refusal(address) is None and not embedded:
        assert address.is_global


@pytest.mark.parametrize(("network", "reason"), REFUSED)
def test_every_row_is_refused_at_both_ends(network: Network, reason: str) -> None:
    """The first and the last address of every row are refused."""
    assert address_refusal(network.network_address) is not None
    assert address_refusal(network.broadcast_address) is not None


def test_the_tables_are_in_address_order_for_the_docs() -> None:
    """REFUSED lists IPv4 then IPv6, each by address then by prefix."""
    keys = [(net.version, net.network_address.packed, net.prefixlen) for net, _ in REFUSED]
    assert keys == sorted(keys)
    assert len(set(keys)) == len(keys)


def test_allowed_networks_open_exactly_their_addresses() -> None:
    """10.1.0.0/16 opens 10.1.0.0 to 10.1.255.255, not a neighbour."""
    assert refusal("10.1.0.0", "10.1.0.0/16") is None
    assert refusal("10.1.255.255", "10.1.0.0/16") is None
    assert refusal("10.0.255.255", "10.1.0.0/16") == "private network"
    assert refusal("10.2.0.0", "10.1.0.0/16") == "private network"


def test_any_allowed_network_opens() -> None:
    """With several networks, the address needs to be in one of them."""
    assert refusal("fd00::1", "10.0.0.0/8,fd00::/8") is None
    assert refusal("10.0.0.1", "10.0.0.0/8,fd00::/8") is None
    assert refusal("127.0.0.1", "10.0.0.0/8,fd00::/8") == "loopback"


@pytest.mark.parametrize(
    ("address", "allowed"),
    [
        ("169.254.169.254", "169.254.0.0/16"),
        ("169.254.169.254", "169.254.169.254/31"),
        ("169.254.169.254", "0.0.0.0/0"),
        ("168.63.129.16", "168.63.0.0/16"),
        ("100.100.100.200", "100.64.0.0/10"),
        ("fd00:ec2::254", "fd00::/8"),
        ("fd00:ec2::254", "::/0"),
        ("fe80::a9fe:a9fe", "fe80::/10"),
    ],
)
def test_no_allowed_range_opens_a_metadata_endpoint(address: str, allowed: str) -> None:
    """Allowing link-local or everything still keeps the credentials shut."""
    assert refusal(address, allowed) == "cloud metadata endpoint"


@pytest.mark.parametrize(
    ("address", "allowed"),
    [
        ("169.254.169.254", "169.254.169.254/32"),
        ("168.63.129.16", "168.63.129.16"),
        ("fd00:ec2::254", "fd00:ec2::254/128"),
        ("64:ff9b::a9fe:a9fe", "64:ff9b::a9fe:a9fe/128"),
    ],
)
def test_a_metadata_endpoint_opens_only_by_its_own_address(address: str, allowed: str) -> None:
    """An operator who means it names the single address."""
    assert refusal(address, allowed) is None


@pytest.mark.parametrize(
    "address", ["::ffff:169.254.169.254", "::169.254.169.254", "64:ff9b::a9fe:a9fe"]
)
def test_allowing_a_whole_embedding_keeps_metadata_shut(address: str) -> None:
    """::/0 opens what it holds, except what carries a metadata endpoint."""
    assert refusal(address, "::/0") is not None


def test_an_allowed_embedding_prefix_opens_what_it_carries() -> None:
    """Allowing 64:ff9b::/96 opens the NAT64 form of loopback (an exact prefix)."""
    assert refusal("64:ff9b::7f00:1", "64:ff9b::/96") is None


@pytest.mark.parametrize("address", ["::ffff:127.0.0.1", "64:ff9b::7f00:1", "2002:7f00:1::"])
def test_an_allowed_ipv4_network_does_not_open_its_ipv6_forms(address: str) -> None:
    """Allowing 127.0.0.0/8 opens 127.0.0.1, not the IPv6 addresses carrying it."""
    assert refusal("127.0.0.1", "127.0.0.0/8") is None
    assert refusal(address, "127.0.0.0/8") is not None


def test_a_zone_id_is_inside_its_allowed_network() -> None:
    """fe80::1%eth0 is opened by fe80::/10."""
    assert refusal("fe80::1%eth0", "fe80::/10") is None


def test_networks_parse_from_a_comma_separated_list() -> None:
    """IPv4 and IPv6 CIDRs, and a bare address as its single-address network."""
    assert parse_networks("10.0.0.0/8,fd00::/8,1.2.3.4,::1") == (
        ip_network("10.0.0.0/8"),
        ip_network("fd00::/8"),
        ip_network("1.2.3.4/32"),
        ip_network("::1/128"),
    )


@pytest.mark.parametrize(
    ("text", "named"),
    [
        ("", "no networks"),
        ("10.0.0.1/8", "'10.0.0.1/8'"),
        ("10.0.0.0/8,fd00::1/8", "'fd00::1/8'"),
        ("10.0.0.0/8,", "empty"),
        (",10.0.0.0/8", "empty"),
        ("10.0.0.0/8,,fd00::/8", "empty"),
        ("10.0.0.0/8, fd00::/8", "' fd00::/8'"),
        ("10.0.0.0/33", "'10.0.0.0/33'"),
        ("example.com", "'example.com'"),
        ("010.0.0.0/8", "'010.0.0.0/8'"),
        ("fe80::%eth0/64", "zone"),
    ],
)
def test_bad_networks_are_one_line_errors_naming_the_item(text: str, named: str) -> None:
    """Host bits, empty items, spaces, prefixes, names, zones: the item is named."""
    with pytest.raises(ValueError, match=re.escape(named)) as caught:
        parse_networks(text)
    assert "\n" not in str(caught.value)


@given(st.ip_addresses(v=4), st.ip_addresses(v=4))
def test_the_embedding_builders_agree_with_the_stdlib(
    server: IPv4Address, client: IPv4Address
) -> None:
    """The tests' own bit layouts are the ones ``ipaddress`` reads back."""
    assert mapped(client).ipv4_mapped == client
    assert sixtofour(client).sixtofour == client
    assert teredo(server, client).teredo == (server, client)
