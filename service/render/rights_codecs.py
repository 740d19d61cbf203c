"""The rights fields' bytes: read out of EXIF, IPTC and XMP, written anew.

Pure Python over bytes, no libvips (``rights`` reads the blobs from the
header and attaches what this builds). Every blob comes from an untrusted
file, so each reader checks every offset and length against the bytes it
has, reads at most ``MAX_CREATORS`` creators of at most ``MAX_TEXT_BYTES``
each, and raises only ``MetadataError`` (the caller drops that block's
fields; the render goes on).

- **EXIF**: IFD0's Artist (0x013B) and Copyright (0x8298), walked from the
  TIFF header by hand. libvips' ``exif-ifd0-*`` strings are libexif's
  renderings ("Jane (Jane, ASCII, 5 components, 5 bytes)", the copyright's
  photographer and editor joined its own way), not the values.
- **IPTC**: the IIM datasets 2:80 (By-line, repeatable) and 2:116
  (Copyright Notice), from Photoshop's image resource 0x0404 (JPEG's APP13,
  ``Photoshop 3.0``) or bare IIM (TIFF).
- **XMP**: ``dc:creator`` (an ``rdf:Seq``) and ``dc:rights`` (an
  ``rdf:Alt``: ``x-default`` first) of a top-level ``rdf:Description``; the
  same names inside structures (``xmpMM:Pantry`` holds the XMP of placed
  documents) are someone else's.

XMP is XML from an untrusted file. It is parsed with defusedxml's SAX
reader with DTDs forbidden: an XMP packet never has one, so a billion-laughs
entity bomb or an external entity is refused at its ``<!DOCTYPE`` before any
entity is declared, let alone expanded. defusedxml is the maintained library
for exactly this (the Python documentation points to it for untrusted XML,
and Pillow's own ``getxmp`` uses it); its SAX form streams, so a large
packet never becomes a tree in memory, and packets over ``MAX_XMP_BYTES``
are not read at all.
"""

from __future__ import annotations

import io
import unicodedata
from typing import Literal
from xml.sax import SAXException, handler, xmlreader
from xml.sax.saxutils import escape

from defusedxml import DefusedXmlException
from defusedxml.expatreader import DefusedExpatParser

MAX_TEXT_BYTES = 1024  # per value, UTF-8
MAX_CREATORS = 4  # per block
MAX_XMP_BYTES = 1 << 20  # larger packets (Photoshop's ancestor lists) are not read
MAX_IFD_ENTRIES = 1024

_EXIF_ARTIST = 0x013B
_EXIF_COPYRIGHT = 0x8298
# BYTE, ASCII, UNDEFINED and EXIF 3.0's UTF-8: one byte per component.
_EXIF_TEXT_TYPES = frozenset({1, 2, 7, 129})

_PHOTOSHOP = b"Photoshop 3.0\x00"
_IPTC_RESOURCE = 0x0404
_RESOURCE_SIGNATURES = (b"8BIM", b"MeSa", b"PHUT", b"AgHg", b"DCSR")
_IIM_TAG = 0x1C
_BY_LINE = (2, 80)
_COPYRIGHT_NOTICE = (2, 116)
_RECORD_VERSION = (2, 0)
_CODED_CHARACTER_SET = (1, 90)
_UTF8_DESIGNATION = b"\x1b%G"  # ISO 2022's escape sequence for UTF-8

_DC = "http://purl.org/dc/elements/1.1/"
_RDF = "http://www.w3.org/1999/02/22-rdf-syntax-ns#"
_XML_LANG = ("http://www.w3.org/XML/1998/namespace", "lang")


class MetadataError(ValueError):
    """A metadata block that cannot be read; its fields are dropped."""


def clean(text: str) -> str:
    """``text`` fit to write anywhere: control characters (and the code
    points XML cannot carry) removed, trimmed, at most ``MAX_TEXT_BYTES``
    of UTF-8 (cut on a character boundary)."""
    kept = "".join(
        char
        for char in text
        if unicodedata.category(char) not in ("Cc", "Cs") and char not in "\ufffe\uffff"
    ).strip()
    cut = kept.encode("utf-8")[:MAX_TEXT_BYTES].decode("utf-8", errors="ignore")
    return cut.strip()


def _decode(raw: bytes) -> str:
    """UTF-8 when the bytes are UTF-8, else Latin-1: old IPTC and EXIF
    writers used their platform's 8-bit set, which cannot be known."""
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return raw.decode("latin-1")


def _creators(values: list[str]) -> tuple[str, ...]:
    cleaned = (clean(value) for value in values)
    return tuple(value for value in cleaned if value)[:MAX_CREATORS]


# EXIF -----------------------------------------------------------------------


def parse_exif(blob: bytes) -> tuple[str, str]:
    """IFD0's Artist and Copyright ("" where absent). A Copyright with
    both a photographer's and an editor's part (NUL-separated) keeps both,
    joined with "; "."""
    tiff = blob[6:] if blob.startswith(b"Exif\x00\x00") else blob
    order: Literal["little", "big"]
    if tiff[:4] == b"II*\x00":
        order = "little"
    elif tiff[:4] == b"MM\x00*":
        order = "big"
    else:
        raise MetadataError("no TIFF header")

    def number(offset: int, size: int) -> int:
        if offset < 0 or offset + size > len(tiff):
            raise MetadataError("EXIF offset out of bounds")
        return int.from_bytes(tiff[offset : offset + size], order)

    ifd = number(4, 4)
    count = number(ifd, 2)
    if count > MAX_IFD_ENTRIES:
        raise MetadataError("EXIF IFD0 too long")
    found: dict[int, bytes] = {}
    for index in range(count):
        entry = ifd + 2 + 12 * index
        tag, kind, length = number(entry, 2), number(entry + 2, 2), number(entry + 4, 4)
        if tag not in (_EXIF_ARTIST, _EXIF_COPYRIGHT) or kind not in _EXIF_TEXT_TYPES:
            continue
        start = entry + 8 if length <= 4 else number(entry + 8, 4)
        if start + length > len(tiff):
            continue  # a value past the end: this one is dropped
        found[tag] = tiff[start : start + min(length, 4 * MAX_TEXT_BYTES)]
    artist = clean(_decode(found.get(_EXIF_ARTIST, b"").split(b"\x00")[0]))
    parts = (clean(_decode(part)) for part in found.get(_EXIF_COPYRIGHT, b"").split(b"\x00"))
    return artist, clean("; ".join(part for part in parts if part))


def exif_ascii(text: str) -> str:
    """``text`` as EXIF's ASCII can carry it: accents dropped, the
    copyright and registered signs spelt out; "" when something else
    would be lost (libvips writes these fields as ASCII and would turn each
    such character into "?"). XMP carries the full text."""
    spelt = text.replace("\u00a9", "(C)").replace("\u00ae", "(R)")
    folded = "".join(
        char for char in unicodedata.normalize("NFKD", spelt) if not unicodedata.combining(char)
    )
    return folded if folded.isascii() else ""


# IPTC -----------------------------------------------------------------------


def parse_iptc(blob: bytes) -> tuple[tuple[str, ...], str]:
    """The By-lines and the Copyright Notice of an IPTC block: Photoshop's
    image resources (the IIM in resource 0x0404) or bare IIM."""
    if blob.startswith(_PHOTOSHOP):
        iim = _photoshop_resource(blob, len(_PHOTOSHOP), _IPTC_RESOURCE)
    elif blob[:1] == bytes([_IIM_TAG]):
        iim = blob
    else:
        raise MetadataError("not an IPTC block")
    by_lines: list[str] = []
    copyright_notice = ""
    for dataset, value in _iim_datasets(iim):
        if dataset == _BY_LINE and len(by_lines) < MAX_CREATORS:
            by_lines.append(_decode(value))
        elif dataset == _COPYRIGHT_NOTICE and not copyright_notice:
            copyright_notice = clean(_decode(value))
    return _creators(by_lines), copyright_notice


def _photoshop_resource(blob: bytes, position: int, wanted: int) -> bytes:
    """The data of image resource ``wanted``: each resource is a
    signature, a 2-byte id, a Pascal name padded to even length, a 4-byte
    size and the data padded to even length."""
    while position + 12 <= len(blob):
        if blob[position : position + 4] not in _RESOURCE_SIGNATURES:
            raise MetadataError("bad image resource signature")
        resource = int.from_bytes(blob[position + 4 : position + 6], "big")
        name_length = blob[position + 6]
        position += 6 + (name_length + 2) // 2 * 2  # the length byte and the name, even
        if position + 4 > len(blob):
            break
        size = int.from_bytes(blob[position : position + 4], "big")
        position += 4
        if position + size > len(blob):
            raise MetadataError("image resource past the end")
        if resource == wanted:
            return blob[position : position + size]
        position += size + size % 2
    raise MetadataError("no IPTC resource")


def _iim_datasets(iim: bytes) -> list[tuple[tuple[int, int], bytes]]:
    """(record, dataset) and value of each IIM dataset, up to the first
    byte that does not start one (padding, or the end). A value longer
    than ``4 * MAX_TEXT_BYTES`` is no rights text: the block is refused."""
    datasets = []
    position = 0
    while position + 5 <= len(iim) and iim[position] == _IIM_TAG:
        record, number = iim[position + 1], iim[position + 2]
        length = int.from_bytes(iim[position + 3 : position + 5], "big")
        position += 5
        if length & 0x8000:  # the extended form: the length's own length follows
            count = length & 0x7FFF
            if count > 4 or position + count > len(iim):
                raise MetadataError("bad IIM extended length")
            length = int.from_bytes(iim[position : position + count], "big")
            position += count
        if position + length > len(iim):
            raise MetadataError("IIM dataset past the end")
        if (record, number) in (_BY_LINE, _COPYRIGHT_NOTICE) and length > 4 * MAX_TEXT_BYTES:
            raise MetadataError("IIM rights value too long")
        datasets.append(((record, number), iim[position : position + length]))
        position += length
    return datasets


def iptc_block(creators: tuple[str, ...], copyright_notice: str) -> bytes:
    """A fresh APP13 payload: Photoshop's header, one resource 0x0404 with
    the IIM: UTF-8 declared (1:90), record version 4 (2:00), the By-lines
    and the Copyright Notice."""
    datasets = [(_CODED_CHARACTER_SET, _UTF8_DESIGNATION), (_RECORD_VERSION, b"\x00\x04")]
    datasets += [(_BY_LINE, creator.encode("utf-8")) for creator in creators]
    if copyright_notice:
        datasets.append((_COPYRIGHT_NOTICE, copyright_notice.encode("utf-8")))
    iim = b"".join(
        bytes([_IIM_TAG, record, number]) + len(value).to_bytes(2, "big") + value
        for (record, number), value in datasets
    )
    resource = b"8BIM" + _IPTC_RESOURCE.to_bytes(2, "big") + b"\x00\x00"  # empty name, even
    resource += len(iim).to_bytes(4, "big") + iim + b"\x00" * (len(iim) % 2)
    return _PHOTOSHOP + resource


# XMP ------------------------------------------------------------------------


class _DublinCore(handler.ContentHandler):
    """Collects the text of each ``rdf:li`` of a top-level ``dc:creator``
    and ``dc:rights`` (the first of each), or the property's own text
    where a writer left out the array."""

    def __init__(self) -> None:
        super().__init__()
        self.stack: list[tuple[str | None, str]] = []
        self.items: dict[str, list[tuple[str, str]]] = {"creator": [], "rights": []}
        self.bare: dict[str, str] = {}  # a property's own text, without rdf:li
        self.property: str | None = None  # "creator" or "rights", while inside one
        self.depth = 0  # the stack's depth inside that property
        self.text: list[str] = []  # what is being read: an rdf:li, or the bare text
        self.size = 0  # its characters so far
        self.lang = ""

    def startElementNS(  # noqa: N802 - xml.sax's name
        self, name: tuple[str | None, str], qname: str | None, attrs: xmlreader.AttributesNSImpl
    ) -> None:
        self.stack.append(name)
        uri, local = name
        if self.property is None:
            top_level = self.stack[-3:-1] == [(_RDF, "RDF"), (_RDF, "Description")]
            if uri == _DC and local in self.items and local not in self.bare and top_level:
                self.property, self.depth, self.text, self.size = local, len(self.stack), [], 0
        elif name == (_RDF, "li") and len(self.stack) == self.depth + 2:  # property/array/li
            self.text, self.size = [], 0
            self.lang = str(attrs.get(_XML_LANG, ""))

    def endElementNS(self, name: tuple[str | None, str], qname: str | None) -> None:  # noqa: N802
        depth = len(self.stack)
        self.stack.pop()
        if self.property is None:
            return
        items = self.items[self.property]
        if depth == self.depth + 2 and name == (_RDF, "li"):
            if len(items) < MAX_CREATORS:
                items.append((self.lang, "".join(self.text)))
            self.text, self.size = [], 0
        elif depth == self.depth:
            self.bare[self.property] = "" if items else "".join(self.text)
            self.property = None

    def characters(self, content: str) -> None:
        depth = len(self.stack)
        inside = depth == self.depth or (depth == self.depth + 2 and self.stack[-1] == (_RDF, "li"))
        if self.property is not None and inside and self.size < 4 * MAX_TEXT_BYTES:
            self.text.append(content)
            self.size += len(content)


def parse_xmp(blob: bytes) -> tuple[tuple[str, ...], str]:
    """``dc:creator``'s entries and ``dc:rights`` (its ``x-default``, else
    its first language) of an XMP packet."""
    if len(blob) > MAX_XMP_BYTES:
        raise MetadataError("XMP packet too large")
    # Writers pad packets with NULs and spaces, which expat refuses after the root.
    packet = blob.rstrip(b"\x00 \t\r\n")
    reader = _DublinCore()
    parser = DefusedExpatParser(namespaceHandling=1, forbid_dtd=True)
    parser.setContentHandler(reader)
    source = xmlreader.InputSource()
    source.setByteStream(io.BytesIO(packet))
    try:
        parser.parse(source)
    except (SAXException, DefusedXmlException, ValueError) as error:
        raise MetadataError(f"XMP refused: {error}") from error
    creators = _creators(
        [text for _, text in reader.items["creator"]] or [reader.bare.get("creator", "")]
    )
    alternatives = reader.items["rights"] or [("", reader.bare.get("rights", ""))]
    chosen = [text for lang, text in alternatives if lang == "x-default"] or [
        text for _, text in alternatives
    ]
    return creators, clean(chosen[0]) if chosen else ""


def xmp_packet(creators: tuple[str, ...], rights: str) -> bytes:
    """A fresh, minimal XMP packet with ``dc:creator`` and ``dc:rights``."""
    properties = ""
    if creators:
        items = "".join(f"<rdf:li>{escape(creator)}</rdf:li>" for creator in creators)
        properties += f"<dc:creator><rdf:Seq>{items}</rdf:Seq></dc:creator>"
    if rights:
        properties += (
            '<dc:rights><rdf:Alt><rdf:li xml:lang="x-default">'
            f"{escape(rights)}</rdf:li></rdf:Alt></dc:rights>"
        )
    return (
        '<?xpacket begin="\ufeff" id="W5M0MpCehiHzreSzNTczkc9d"?>'
        '<x:xmpmeta xmlns:x="adobe:ns:meta/">'
        f'<rdf:RDF xmlns:rdf="{_RDF}">'
        f'<rdf:Description rdf:about="" xmlns:dc="{_DC}">{properties}</rdf:Description>'
        "</rdf:RDF></x:xmpmeta>"
        '<?xpacket end="r"?>'
    ).encode()
