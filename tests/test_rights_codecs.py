"""The rights fields are read out of EXIF, IPTC and XMP bytes safely, and
written back as fresh, minimal blocks."""

from __future__ import annotations

import io
import struct
import time

import pytest
from hypothesis import given
from hypothesis import strategies as st
from PIL import Image, IptcImagePlugin

from service.render.rights_codecs import (
    MAX_CREATORS,
    MAX_TEXT_BYTES,
    MAX_XMP_BYTES,
    MetadataError,
    clean,
    exif_ascii,
    iptc_block,
    parse_exif,
    parse_iptc,
    parse_xmp,
    xmp_packet,
)

DC_XMP = """<?xpacket begin="\ufeff" id="W5M0MpCehiHzreSzNTczkc9d"?>
<x:xmpmeta xmlns:x="adobe:ns:meta/">
 <rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">
  <rdf:Description rdf:about="" xmlns:dc="http://purl.org/dc/elements/1.1/"
      xmlns:exif="http://ns.adobe.com/exif/1.0/" exif:GPSLatitude="48,51.5N">
   <dc:creator><rdf:Seq><rdf:li>Jane Doe</rdf:li><rdf:li>John Roe</rdf:li></rdf:Seq></dc:creator>
   <dc:rights><rdf:Alt>
     <rdf:li xml:lang="fr">(c) Jeanne</rdf:li>
     <rdf:li xml:lang="x-default">(c) 2026 Jane Doe</rdf:li>
   </rdf:Alt></dc:rights>
  </rdf:Description>
 </rdf:RDF>
</x:xmpmeta>
<?xpacket end="w"?>"""


def tiff(entries: list[tuple[int, int, bytes]], *, order: str = "<") -> bytes:
    """A TIFF block with one IFD of (tag, type, value) entries."""
    mark = b"II" if order == "<" else b"MM"
    header = mark + struct.pack(order + "HI", 42, 8)
    data_at = 8 + 2 + 12 * len(entries) + 4
    table, data = b"", b""
    for tag, kind, value in entries:
        if len(value) <= 4:
            table += struct.pack(order + "HHI", tag, kind, len(value)) + value.ljust(4, b"\0")
        else:
            table += struct.pack(order + "HHII", tag, kind, len(value), data_at + len(data))
            data += value
    return header + struct.pack(order + "H", len(entries)) + table + b"\0\0\0\0" + data


def iim(*datasets: tuple[int, int, bytes]) -> bytes:
    return b"".join(
        bytes([0x1C, record, number]) + len(value).to_bytes(2, "big") + value
        for record, number, value in datasets
    )


def photoshop(resources: list[tuple[int, bytes]]) -> bytes:
    blob = b"Photoshop 3.0\0"
    for resource, data in resources:
        blob += b"8BIM" + resource.to_bytes(2, "big") + b"\0\0" + len(data).to_bytes(4, "big")
        blob += data + b"\0" * (len(data) % 2)
    return blob


# EXIF


@pytest.mark.parametrize("order", ["<", ">"])
def test_exif_artist_and_copyright_are_read_in_either_byte_order(order: str) -> None:
    block = tiff(
        [(0x010F, 2, b"Camera\0"), (0x013B, 2, b"Jane Doe\0"), (0x8298, 2, b"(c) Jane\0")],
        order=order,
    )
    assert parse_exif(b"Exif\0\0" + block) == ("Jane Doe", "(c) Jane")
    assert parse_exif(block) == ("Jane Doe", "(c) Jane")  # loaders without the prefix


def test_exif_copyright_keeps_photographer_and_editor() -> None:
    block = tiff([(0x8298, 2, b"(c) Jane\0(c) Editor\0")])
    assert parse_exif(block) == ("", "(c) Jane; (c) Editor")
    assert parse_exif(tiff([(0x8298, 2, b" \0(c) Editor\0")])) == ("", "(c) Editor")


def test_exif_short_values_are_read_in_place() -> None:
    assert parse_exif(tiff([(0x013B, 2, b"Ann\0")])) == ("Ann", "")


def test_exif_values_past_the_end_are_dropped() -> None:
    block = tiff([(0x013B, 2, b"Jane Doe\0")])
    assert parse_exif(block[:-4]) == ("", "")


@pytest.mark.parametrize(
    "blob",
    [b"", b"Exif\0\0", b"XX*\0\x08\0\0\0", tiff([])[:9], b"II*\0\xff\xff\xff\x7f"],
    ids=["empty", "prefix only", "bad order", "truncated IFD", "IFD past the end"],
)
def test_broken_exif_is_refused(blob: bytes) -> None:
    with pytest.raises(MetadataError):
        parse_exif(blob)


@given(st.binary(max_size=200))
def test_any_bytes_are_exif_or_refused(blob: bytes) -> None:
    """Never an IndexError or a struct.error: a value, or MetadataError."""
    for candidate in (blob, b"II*\0\x08\0\0\0" + blob, b"MM\0*\0\0\0\x08" + blob):
        try:
            artist, copyright_text = parse_exif(candidate)
        except MetadataError:
            continue
        assert len(artist.encode()) <= MAX_TEXT_BYTES
        assert len(copyright_text.encode()) <= MAX_TEXT_BYTES


def test_exif_ascii_folds_accents_and_refuses_what_it_would_lose() -> None:
    assert exif_ascii("Jos\u00e9 M\u00fcller \u00a9 2026") == "Jose Muller (C) 2026"
    assert exif_ascii("\u5c71\u7530\u592a\u90ce") == ""
    assert exif_ascii("plain") == "plain"


# IPTC


def test_iptc_by_lines_and_copyright_notice_are_read() -> None:
    data = iim(
        (1, 90, b"\x1b%G"),
        (2, 0, b"\0\4"),
        (2, 80, "J\u00f6rg".encode()),
        (2, 80, b"Ann"),
        (2, 116, b"(c) Agency"),
        (2, 25, b"keyword"),
    )
    blob = photoshop([(0x03ED, b"\0" * 16), (0x0404, data)])
    assert parse_iptc(blob) == (("J\u00f6rg", "Ann"), "(c) Agency")
    assert parse_iptc(data) == (("J\u00f6rg", "Ann"), "(c) Agency")  # bare IIM (TIFF)


def test_iptc_in_latin1_is_decoded() -> None:
    assert parse_iptc(iim((2, 80, b"J\xf6rg"))) == (("J\u00f6rg",), "")


def test_iptc_creators_are_bounded() -> None:
    data = iim(*[(2, 80, f"name {n}".encode()) for n in range(20)])
    creators, _ = parse_iptc(data)
    assert len(creators) == MAX_CREATORS


@pytest.mark.parametrize(
    "blob",
    [
        photoshop([(0x0404, iim((2, 80, b"Jane Doe")))])[:-6],  # resource past the end
        iim((2, 80, b"Jane Doe"))[:-3],  # dataset past the end
        photoshop([(0x03ED, b"\0" * 16)]),  # no IPTC resource
        b"Photoshop 3.0\0XXXX\x04\x04\0\0\0\0\0\4abcd",  # bad signature
        bytes([0x1C, 2, 80, 0x80, 0x08]) + b"\xff" * 8,  # an 8-byte extended length
        iim((2, 80, b"x" * (4 * MAX_TEXT_BYTES + 1))),
        b"not iptc",
    ],
    ids=["resource", "dataset", "none", "signature", "extended", "too long", "other"],
)
def test_broken_iptc_is_refused(blob: bytes) -> None:
    with pytest.raises(MetadataError):
        parse_iptc(blob)


@given(st.binary(max_size=200))
def test_any_bytes_are_iptc_or_refused(blob: bytes) -> None:
    for candidate in (blob, b"\x1c\x02\x50" + blob, b"Photoshop 3.0\x008BIM\x04\x04" + blob):
        try:
            creators, notice = parse_iptc(candidate)
        except MetadataError:
            continue
        assert len(creators) <= MAX_CREATORS
        assert all(len(text.encode()) <= MAX_TEXT_BYTES for text in (*creators, notice))


def test_a_written_iptc_block_reads_back_with_pillow() -> None:
    """A second reader (Pillow's IIM parser, on a JPEG carrying the block)
    agrees with ours."""
    block = iptc_block(("Jane Doe", "J\u00f6rg"), "(c) 2026 Jane Doe")
    assert parse_iptc(block) == (("Jane Doe", "J\u00f6rg"), "(c) 2026 Jane Doe")
    buffer = io.BytesIO()
    Image.new("RGB", (8, 8)).save(buffer, "JPEG")
    jpeg = buffer.getvalue()
    app13 = b"\xff\xed" + (len(block) + 2).to_bytes(2, "big") + block
    image = Image.open(io.BytesIO(jpeg[:2] + app13 + jpeg[2:]))
    info = IptcImagePlugin.getiptcinfo(image)
    assert info is not None
    assert info[(2, 80)] == [b"Jane Doe", "J\u00f6rg".encode()]
    assert info[(2, 116)] == b"(c) 2026 Jane Doe"
    assert info[(1, 90)] == b"\x1b%G"


# XMP


def test_xmp_creators_and_the_default_rights_are_read() -> None:
    assert parse_xmp(DC_XMP.encode()) == (("Jane Doe", "John Roe"), "(c) 2026 Jane Doe")


def test_xmp_padding_is_ignored() -> None:
    padded = DC_XMP.encode().replace(b"<?xpacket end", b" " * 2000 + b"<?xpacket end")
    assert parse_xmp(padded + b"\0\0\0") == (("Jane Doe", "John Roe"), "(c) 2026 Jane Doe")


def test_xmp_of_placed_documents_is_not_the_images() -> None:
    """dc:creator inside a structure (xmpMM:Pantry holds the XMP of
    documents placed in this one) belongs to someone else."""
    nested = DC_XMP.replace(
        "<dc:creator>",
        '<xmpMM:Pantry xmlns:xmpMM="http://ns.adobe.com/xap/1.0/mm/"><rdf:Bag>'
        '<rdf:li rdf:parseType="Resource"><dc:creator><rdf:Seq><rdf:li>Other</rdf:li>'
        "</rdf:Seq></dc:creator></rdf:li></rdf:Bag></xmpMM:Pantry><dc:creator>",
    )
    assert parse_xmp(nested.encode())[0] == ("Jane Doe", "John Roe")


def test_xmp_rights_without_x_default_takes_the_first_language() -> None:
    packet = DC_XMP.replace('xml:lang="x-default"', 'xml:lang="en"')
    assert parse_xmp(packet.encode())[1] == "(c) Jeanne"


def test_xmp_without_dublin_core_has_none() -> None:
    packet = '<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#"/></x:xmpmeta>'
    assert parse_xmp(packet.encode()) == ((), "")


BOMB = """<?xml version="1.0"?>
<!DOCTYPE x [
 <!ENTITY a "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa">
 <!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;">
 <!ENTITY c "&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;">
 <!ENTITY d "&c;&c;&c;&c;&c;&c;&c;&c;&c;&c;&c;&c;&c;&c;&c;&c;&c;&c;&c;&c;">
 <!ENTITY e "&d;&d;&d;&d;&d;&d;&d;&d;&d;&d;&d;&d;&d;&d;&d;&d;&d;&d;&d;&d;">
 <!ENTITY f "&e;&e;&e;&e;&e;&e;&e;&e;&e;&e;&e;&e;&e;&e;&e;&e;&e;&e;&e;&e;">
]>
<rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">
 <rdf:Description xmlns:dc="http://purl.org/dc/elements/1.1/">
  <dc:rights><rdf:Alt><rdf:li xml:lang="x-default">&f;</rdf:li></rdf:Alt></dc:rights>
 </rdf:Description>
</rdf:RDF>"""

EXTERNAL = """<?xml version="1.0"?>
<!DOCTYPE x [<!ENTITY secret SYSTEM "file:///etc/hostname">]>
<rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">
 <rdf:Description xmlns:dc="http://purl.org/dc/elements/1.1/">
  <dc:rights><rdf:Alt><rdf:li xml:lang="x-default">&secret;</rdf:li></rdf:Alt></dc:rights>
 </rdf:Description>
</rdf:RDF>"""


@pytest.mark.parametrize(
    "packet",
    [
        BOMB.encode(),
        EXTERNAL.encode(),
        DC_XMP.encode()[:-200],  # truncated
        b"<x:xmpmeta><unclosed>",
        DC_XMP.encode().replace(b"<dc:creator>", b"<dc:creator>\xff\xfe"),  # not UTF-8
        b" " * (MAX_XMP_BYTES + 1),
    ],
    ids=["entity bomb", "external entity", "truncated", "invalid", "bad bytes", "oversized"],
)
def test_hostile_or_broken_xmp_is_refused_quickly(packet: bytes) -> None:
    started = time.monotonic()
    with pytest.raises(MetadataError):
        parse_xmp(packet)
    assert time.monotonic() - started < 1


def test_many_entities_in_one_value_stay_cheap() -> None:
    """Text is gathered up to a bound, then dropped: 200,000 character
    references in many values cost a linear parse."""
    value = "&#65;" * 50_000
    items = "".join(f"<rdf:li>{value}</rdf:li>" for _ in range(4))
    packet = DC_XMP.replace("<rdf:li>Jane Doe</rdf:li>", items)
    started = time.monotonic()
    creators, _ = parse_xmp(packet.encode())
    assert time.monotonic() - started < 2
    assert all(len(creator) == MAX_TEXT_BYTES for creator in creators)


def test_a_written_xmp_packet_reads_back_with_pillow() -> None:
    """Our packet, escaped, read by a second parser (Pillow's getxmp)."""
    packet = xmp_packet(("Jane <Doe> & Co", "J\u00f6rg"), '(c) "2026" Jane')
    assert parse_xmp(packet) == (("Jane <Doe> & Co", "J\u00f6rg"), '(c) "2026" Jane')
    buffer = io.BytesIO()
    Image.new("RGB", (8, 8)).save(buffer, "PNG", pnginfo=None)
    image = Image.open(io.BytesIO(buffer.getvalue()))
    image.info["xmp"] = packet
    description = image.getxmp()["xmpmeta"]["RDF"]["Description"]
    assert description["creator"]["Seq"]["li"] == ["Jane <Doe> & Co", "J\u00f6rg"]
    assert description["rights"]["Alt"]["li"]["text"] == '(c) "2026" Jane'


# Cleaning


def test_control_characters_are_removed_and_length_bounded() -> None:
    assert clean("  Jane\x00\x07 Doe\x1b[31m\u0085 ") == "Jane Doe[31m"
    long_text = "\u00e9" * MAX_TEXT_BYTES  # two bytes each
    cut = clean(long_text)
    assert len(cut.encode()) <= MAX_TEXT_BYTES
    assert cut == "\u00e9" * (MAX_TEXT_BYTES // 2)


@given(st.text(max_size=3000))
def test_cleaned_text_is_bounded_and_free_of_controls(text: str) -> None:
    cut = clean(text)
    assert len(cut.encode()) <= MAX_TEXT_BYTES
    assert not any(char < " " or "\x7f" <= char <= "\x9f" for char in cut)
