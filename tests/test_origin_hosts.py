"""Hosts in URL sources: numeric spellings, the normal form, ``--url-sources`` patterns."""

from __future__ import annotations

import re
import socket
import sys
from ipaddress import IPv4Address, IPv6Address, ip_address

import pytest
import yarl
from hypothesis import given
from hypothesis import strategies as st

from service.origins.hosts import HostPattern, HostPatterns, literal_address, normalise_host

Address = IPv4Address | IPv6Address

glibc = pytest.mark.skipif(
    sys.platform != "linux", reason="the oracle is the C library's getaddrinfo"
)


def os_reads(host: str) -> IPv4Address | None:
    """The IPv4 address getaddrinfo reads a numeric host as (no DNS query)."""
    try:
        infos = socket.getaddrinfo(
            host, None, socket.AF_INET, socket.SOCK_STREAM, 0, socket.AI_NUMERICHOST
        )
    except (socket.gaierror, UnicodeError):
        return None
    return IPv4Address(infos[0][4][0])


@pytest.mark.parametrize(
    "host",
    [
        "127.0.0.1",
        "2130706433",
        "0x7f000001",
        "0X7F000001",
        "017700000001",
        "0x7f.1",
        "127.1",
        "127.0.1",
        "0177.0.0.1",
        "0x7f.0x0.0x0.0x1",
        "0177.0.0.01",
        "0x000000007f.1",
        "127.0.0.1.",
        "2130706433.",
        "0x7f.1.",
        "１２７.０.０.１",  # noqa: RUF001 (fullwidth digits on purpose)
    ],
)
def test_numeric_spellings_of_loopback_read_as_it(host: str) -> None:
    """Decimal, hex, octal, short forms, a trailing dot, fullwidth digits: 127.0.0.1."""
    assert literal_address(host) == IPv4Address("127.0.0.1")


@pytest.mark.parametrize(
    ("host", "address"),
    [
        ("0", "0.0.0.0"),  # noqa: S104 (an address to read, not to bind)
        ("0x0", "0.0.0.0"),  # noqa: S104
        ("16909060", "1.2.3.4"),
        ("1.131844", "1.2.3.4"),
        ("1.2.772", "1.2.3.4"),
        ("01.02.03.04", "1.2.3.4"),
        ("1.0xffffff", "1.255.255.255"),
        ("1.2.0xffff", "1.2.255.255"),
        ("4294967295", "255.255.255.255"),
        ("00000000000000127.1", "87.0.0.1"),  # leading zeros make it octal
    ],
)
def test_each_part_count_has_its_own_width(host: str, address: str) -> None:
    """a (32 bits), a.b (24), a.b.c (16), a.b.c.d (8 each), as inet_aton reads."""
    assert literal_address(host) == IPv4Address(address)


@pytest.mark.parametrize(
    "host",
    [
        "",
        "example.com",
        "localhost",
        "1.2.3.4.5",
        "256.1.1.1",
        "1.256.1.1",
        "1.2.3.256",
        "1.2.3.0400",
        "1.2.0x10000",
        "1.0x1000000",
        "4294967296",
        "0x100000000",
        "08",
        "09.1.1.1",
        "0x",
        "0x.1",
        "1..1",
        ".1.2.3",
        "1.2.3.4..",
        "1.2.3.4 ",  # inet_aton would take this; getaddrinfo does not
        "1.2.3.4 x",
        " 1.2.3.4",
        "1.2.3.4\n",
        "+1.2.3.4",
        "1.2.3.-4",
        "1e3",
        "0x7g.1",
        "1.2.3.4x",
    ],
)
def test_names_and_near_misses_are_not_addresses(host: str) -> None:
    """What inet_aton's exact form refuses is a name (None), for DNS to answer."""
    assert literal_address(host) is None


@pytest.mark.parametrize(
    ("host", "address"),
    [
        ("::1", "::1"),
        ("[::1]", "::1"),
        ("[0:0:0:0:0:0:0:1]", "::1"),
        ("[::FFFF:127.0.0.1]", "::ffff:7f00:1"),
        ("2001:db8::1", "2001:db8::1"),
        ("[64:ff9b::7f00:1]", "64:ff9b::7f00:1"),
    ],
)
def test_ipv6_literals_read_with_or_without_brackets(host: str, address: str) -> None:
    """An IPv6 host is its address, bracketed as in a URL or bare."""
    assert literal_address(host) == IPv6Address(address)


@pytest.mark.parametrize(
    "host",
    [
        "[fe80::1%eth0]",
        "fe80::1%eth0",
        "[fe80::1%25eth0]",
        "[::1",
        "::1]",
        "[::1]:80",
        "[]",
        "[127.0.0.1]",
        "[example.com]",
        "::1::",
        "1:2:3:4:5:6:7:8:9",
        "[::ffff:0177.0.0.1]",
    ],
)
def test_malformed_ipv6_literals_and_zone_ids_are_errors(host: str) -> None:
    """A bracketed or colon-holding host that is no IPv6 address is a ValueError."""
    with pytest.raises(ValueError, match=r"^[^\n]+$"):
        literal_address(host)


_NUMBER = st.integers(min_value=0, max_value=2**32 + 1)
_PART = st.one_of(
    _NUMBER.map(str),
    _NUMBER.map(hex),
    _NUMBER.map(lambda n: f"0{n:o}"),
    st.text(alphabet="0123456789abcdefxX", max_size=4),
)
NUMERIC_LOOKING = st.one_of(
    st.text(alphabet="0123456789abcdefxX. ", max_size=24),
    st.tuples(st.lists(_PART, max_size=5), st.sampled_from(["", ".", "..", " "])).map(
        lambda parts_end: ".".join(parts_end[0]) + parts_end[1]
    ),
)


@glibc
@given(NUMERIC_LOOKING)
def test_numeric_reading_is_the_c_librarys(host: str) -> None:
    """Whatever getaddrinfo reads as an IPv4 number, so do we (one trailing dot aside)."""
    if host.endswith(".") and not host.endswith(".."):
        assert literal_address(host) == os_reads(host[:-1])
    else:
        assert literal_address(host) == os_reads(host)


@glibc
def test_glibc_leaves_a_trailing_dot_to_dns() -> None:
    """The oracle's one difference: glibc's numeric parser refuses 127.0.0.1."""
    assert os_reads("127.0.0.1.") is None
    assert os_reads("127.0.0.1") == literal_address("127.0.0.1.")


SPELLINGS = [
    str,
    lambda a: str(int(a)),
    lambda a: hex(int(a)),
    lambda a: ".".join(f"0{part:o}" for part in a.packed),
    lambda a: ".".join(hex(part) for part in a.packed),
    lambda a: f"{a.packed[0]}.{int.from_bytes(a.packed[1:], 'big')}",
    lambda a: f"{a}.",
]


@given(st.ip_addresses(v=4), st.sampled_from(SPELLINGS))
def test_every_spelling_reads_back_as_its_address(address: IPv4Address, spell: object) -> None:
    """Dotted, decimal, hex, octal, two-part and trailing-dot forms of any address."""
    assert callable(spell)
    assert literal_address(spell(address)) == address


@pytest.mark.parametrize(
    ("host", "normal"),
    [
        ("example.com", "example.com"),
        ("EXAMPLE.com.", "example.com"),
        ("Example.COM", "example.com"),
        ("a_b.example.com", "a_b.example.com"),
        ("bücher.de", "xn--bcher-kva.de"),
        ("BÜCHER.de", "xn--bcher-kva.de"),
        ("ＥＸＡＭＰＬＥ.com", "example.com"),  # noqa: RUF001 (fullwidth on purpose)
        ("example.com\u3002", "example.com"),  # an ideographic full stop is a dot
        ("XN--BCHER-KVA.de", "xn--bcher-kva.de"),
        ("0X7F.1", "0x7f.1"),  # a numeric spelling stays a spelling
        ("[::1]", "::1"),
        ("::1", "::1"),
        ("[::FFFF:7F00:1]", "::ffff:7f00:1"),
        ("[2001:DB8:0:0::1]", "2001:db8::1"),
    ],
)
def test_hosts_have_one_normal_form(host: str, normal: str) -> None:
    """Lowercase, IDNA-encoded, one trailing dot off, IPv6 compressed and unbracketed."""
    assert normalise_host(host) == normal


@pytest.mark.parametrize(
    "host",
    [
        "",
        ".",
        "..",
        "example.com..",
        "a..b",
        ".example.com",
        "x" * 64 + ".com",
        ".".join(["a" * 63] * 4),
        "ex ample.com",
        "user@example.com",
        "example.com/x",
        "example.com]",
        "[fe80::1%eth0]",
        "[::1",
        "straße.de",
        "STRAẞE.de",
        "ςa.gr",
        "a\u200db.com",
        "a\u200cb.com",
        "\u13a0.com",  # Cherokee capital: the codec lowercases it past Unicode 3.2
        "\uab70.com",  # Cherokee small letter: UTS 46 maps it to the capital
        "a\U0002f868.com",
    ],
)
def test_hosts_that_cannot_be_encoded_or_diverge_are_errors(host: str) -> None:
    """Empty or long labels, stray characters, and names IDNA 2003 and UTS 46 read apart."""
    with pytest.raises(ValueError, match=r"^[^\n]+$"):
        normalise_host(host)


def test_the_divergence_the_refusal_prevents_is_real() -> None:
    """The oracle: the codec and yarl do name straße.de differently."""
    assert "straße.de".encode("idna") == b"strasse.de"
    assert yarl.URL.build(scheme="http", host="straße.de").raw_host == "xn--strae-oqa.de"


# Letters IDNA 2003 and UTS 46 treat alike, and the ones they do not.
INTERESTING = "aAzZ09-_éÉüÜıİſKﬀﬁⓐａＺабвБ日本ß\u1e9eςσΣ\u200d\u200c\u00ad\u13a0\uab70\u3002"  # noqa: RUF001
LABEL = st.one_of(
    st.text(st.sampled_from(INTERESTING), min_size=1, max_size=6),
    st.text(st.characters(codec="utf-8"), min_size=1, max_size=6),
)


@given(st.lists(LABEL, min_size=1, max_size=3))
def test_the_normal_form_is_the_host_yarl_connects_to(labels: list[str]) -> None:
    """When both accept a name, normalise_host and yarl encode it alike."""
    host = ".".join([*labels, "com"])
    try:
        ours = normalise_host(host)
        theirs = yarl.URL.build(scheme="http", host=host).raw_host
    except ValueError:  # either refuses: no connection is made to a second name
        return
    assert ours == theirs


@pytest.mark.parametrize(
    ("text", "pattern"),
    [
        ("example.com", HostPattern(name="example.com")),
        ("EXAMPLE.com.", HostPattern(name="example.com")),
        ("example.com:8443", HostPattern(name="example.com", port=8443)),
        ("*.example.com", HostPattern(name="example.com", wildcard=True)),
        ("*.example.com:443", HostPattern(name="example.com", wildcard=True, port=443)),
        ("*", HostPattern(wildcard=True)),
        ("*:443", HostPattern(wildcard=True, port=443)),
        ("127.0.0.1:9000", HostPattern("127.0.0.1", address=ip_address("127.0.0.1"), port=9000)),
        ("2130706433", HostPattern("2130706433", address=ip_address("127.0.0.1"))),
        ("[::1]:9000", HostPattern("::1", address=ip_address("::1"), port=9000)),
        ("[::1]", HostPattern("::1", address=ip_address("::1"))),
        ("bücher.de", HostPattern(name="xn--bcher-kva.de")),
    ],
)
def test_each_pattern_form_parses(text: str, pattern: HostPattern) -> None:
    """Names, ports, wildcards, any host, IPv4 and bracketed IPv6 literals."""
    assert HostPatterns.parse(text) == HostPatterns((pattern,))


def test_patterns_parse_from_a_comma_separated_list() -> None:
    """Every item becomes one pattern, in order."""
    patterns = HostPatterns.parse("example.com,*.example.org:8443,[::1]")
    assert [p.name for p in patterns.patterns] == ["example.com", "example.org", "::1"]


@pytest.mark.parametrize(
    ("text", "named"),
    [
        ("", "no host patterns"),
        (",", "','"),
        ("a.com,", "'a.com,'"),
        (",a.com", "',a.com'"),
        ("a.com,,b.com", "'a.com,,b.com'"),
        ("*.", "'*.'"),
        ("a*.b", "'a*.b'"),
        ("*a.b", "'*a.b'"),
        ("a.*.b", "'a.*.b'"),
        ("*.*.com", "'*.*.com'"),
        ("**", "'**'"),
        ("*.1.2.3.4", "'*.1.2.3.4'"),
        ("*.0.0.1", "'*.0.0.1'"),
        ("a.com:0", "'a.com:0'"),
        ("a.com:65536", "'a.com:65536'"),
        ("a.com:99999", "'a.com:99999'"),
        ("a.com:", "'a.com:'"),
        ("a.com:x", "'a.com:x'"),
        ("a.com:-1", "'a.com:-1'"),
        ("a.com:80:90", "'a.com:80:90'"),
        ("a.com: 80", "'a.com: 80'"),
        (" a.com", "' a.com'"),
        ("a.com ", "'a.com '"),
        ("a .com", "'a .com'"),
        ("a.com, b.com", "' b.com'"),
        ("a.com,\tb.com", "'\\tb.com'"),
        ("::1", "'::1'"),
        ("::1:9000", "'::1:9000'"),
        ("[::1", "'[::1'"),
        ("[::1]x", "'[::1]x'"),
        ("[::1]:", "'[::1]:'"),
        ("[fe80::1%eth0]", "'[fe80::1%eth0]'"),
        ("[127.0.0.1]", "'[127.0.0.1]'"),
        ("a..b", "'a..b'"),
        ("straße.de", "'straße.de'"),
        ("example.com/path", "'example.com/path'"),
        ("user@example.com", "'user@example.com'"),
    ],
)
def test_malformed_patterns_are_one_line_errors_naming_the_item(text: str, named: str) -> None:
    """Empty items, misplaced '*', ports, spaces, unbracketed IPv6, bad names."""
    with pytest.raises(ValueError, match=re.escape(named)) as caught:
        HostPatterns.parse(text)
    assert "\n" not in str(caught.value)


@pytest.mark.parametrize(
    ("patterns", "host", "port", "allowed"),
    [
        ("example.com", "example.com", 443, True),
        ("example.com", "example.com", 8080, True),
        ("example.com", "EXAMPLE.com.", 443, True),
        ("example.com", "www.example.com", 443, False),
        ("example.com", "evilexample.com", 443, False),
        ("example.com", "example.com.evil.net", 443, False),
        ("example.com:8443", "example.com", 8443, True),
        ("example.com:8443", "example.com", 443, False),
        ("*.example.com", "a.example.com", 443, True),
        ("*.example.com", "a.b.example.com", 443, True),
        ("*.example.com", "A.EXAMPLE.COM.", 443, True),
        ("*.example.com", "bücher.example.com", 443, True),
        ("*.example.com", "example.com", 443, False),
        ("*.example.com", "evilexample.com", 443, False),
        ("*.example.com", "a.example.com.evil.net", 443, False),
        ("*.example.com:443", "a.example.com", 80, False),
        ("*", "anything.example", 1, True),
        ("*", "127.0.0.1", 80, True),
        ("*", "[::1]", 80, True),
        ("*:443", "example.org", 443, True),
        ("*:443", "example.org", 80, False),
        ("bücher.de", "xn--bcher-kva.de", 443, True),
        ("example.com,example.org", "example.org", 443, True),
        ("example.com,example.org", "example.net", 443, False),
    ],
)
def test_name_patterns_match_by_normal_form(
    patterns: str, host: str, port: int, allowed: bool
) -> None:
    """Exact names, ports, subdomains at any depth (never the domain itself), any host."""
    assert HostPatterns.parse(patterns).allows(host, port) is allowed


@pytest.mark.parametrize(
    ("patterns", "host", "port", "allowed"),
    [
        ("127.0.0.1:9000", "127.0.0.1", 9000, True),
        ("127.0.0.1:9000", "2130706433", 9000, True),
        ("127.0.0.1:9000", "0x7f.1", 9000, True),
        ("127.0.0.1:9000", "127.1", 9000, True),
        ("127.0.0.1:9000", "0177.0.0.1", 9000, True),
        ("127.0.0.1:9000", "127.0.0.1.", 9000, True),
        ("127.0.0.1:9000", "127.0.0.1", 9001, False),
        ("127.0.0.1:9000", "127.0.0.2", 9000, False),
        ("127.0.0.1:9000", "localhost", 9000, False),
        ("127.0.0.1:9000", "[::ffff:127.0.0.1]", 9000, False),
        ("2130706433", "127.0.0.1", 80, True),
        ("[::1]:9000", "[::1]", 9000, True),
        ("[::1]:9000", "::1", 9000, True),
        ("[::1]:9000", "[0:0::1]", 9000, True),
        ("[::1]:9000", "[::2]", 9000, False),
        ("[::1]", "[::1]", 1, True),
        ("[::1]", "[fe80::1%eth0]", 1, False),
    ],
)
def test_ip_patterns_match_by_address(patterns: str, host: str, port: int, allowed: bool) -> None:
    """Any spelling of the pattern's address matches it; another address does not."""
    assert HostPatterns.parse(patterns).allows(host, port) is allowed


@pytest.mark.parametrize(
    ("patterns", "host"),
    [
        ("localhost", "127.0.0.1"),
        ("*.example.com", "127.0.0.1"),
        ("*.example.com", "2130706433"),
        ("*.in-addr.arpa", "0x7f.1"),
        ("*.example", "[::1]"),
    ],
)
def test_numeric_spellings_never_match_a_name_pattern(patterns: str, host: str) -> None:
    """An address is an address: only an IP pattern (or '*') can allow it."""
    assert not HostPatterns.parse(patterns).allows(host, 80)


@pytest.mark.parametrize("host", ["", "straße.de", "a..b", "[fe80::1%eth0]", "[::1", "a b"])
def test_a_host_that_cannot_be_normalised_is_never_allowed(host: str) -> None:
    """Not even by '*': what has no normal form has no safe reading."""
    assert not HostPatterns.parse("*").allows(host, 80)
