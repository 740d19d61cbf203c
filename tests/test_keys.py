"""Cache keys: which requests need the original's header to be keyed.

The HTTP tests (test_cache_http.py) show that parameters that do not apply
share an entry; these show the other half of the design: a plain request is
keyed from the file's identity alone, never by reading the image.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import parse_qsl

import pytest

from service.formats import OutputFormat
from service.keys import variant_key
from service.negotiate import choose_format
from service.settings import DEFAULT_QUALITY
from service.sources import Original
from service.spec import parse_spec


@dataclass(frozen=True)
class OwnOutput:
    """The two facts of a header that a key may ask for."""

    own_format: OutputFormat
    has_alpha: bool


ORIGINAL = Original(relative="a.png", path="/originals/a.png", size=1, mtime_ns=2, inode=3)


class Header:
    """Stands in for the header read: counts the reads, answers ``own``."""

    def __init__(self, own: OwnOutput | None) -> None:
        self.own = own
        self.reads = 0

    def __call__(self) -> OwnOutput | None:
        self.reads += 1
        return self.own


def key(query: str, header: Header, accept: str = "") -> str:
    spec = parse_spec(parse_qsl(query), max_output_size=4096)
    choice = choose_format(spec.format, spec.auto_format, accept)
    return variant_key(
        output_settings="v",
        original=ORIGINAL,
        spec=spec,
        choice=choice,
        quality=dict(DEFAULT_QUALITY),
        content=header,
    ).canonical


@pytest.mark.parametrize(
    "query",
    [
        "w=100",
        "w=100&format=jpeg",
        "w=100&format=jpeg&bg=ffffff",
        "w=100&format=webp&q=50",
        "w=100&format=png&q=50",
        "w=100&bg=000000",
        "w=100&h=100&fit=pad&bg=000000",
        "w=100&format=auto&q=50",
    ],
)
def test_plain_requests_are_keyed_without_reading_the_image(query: str) -> None:
    header = Header(OwnOutput(OutputFormat.PNG, has_alpha=True))
    key(query, header, accept="image/webp")
    assert header.reads == 0


@pytest.mark.parametrize(
    ("query", "own", "keyed"),
    [
        ("w=100&q=50", OwnOutput(OutputFormat.JPEG, has_alpha=False), "q=50"),
        ("w=100&q=50", OwnOutput(OutputFormat.PNG, has_alpha=False), "q=jpeg=80"),
        ("w=100&q=50", None, "q=50"),  # unreadable: keyed, the render will say why
        ("w=100&format=jpeg&bg=000000", OwnOutput(OutputFormat.PNG, has_alpha=True), "bg=000000"),
        ("w=100&format=jpeg&bg=000000", OwnOutput(OutputFormat.JPEG, has_alpha=False), "bg=-"),
        ("w=100&format=jpeg&bg=000000", None, "bg=000000"),
    ],
)
def test_the_header_decides_only_what_it_must(
    query: str, own: OwnOutput | None, keyed: str
) -> None:
    header = Header(own)
    assert keyed in key(query, header)
    assert header.reads == 1


def test_filters_are_keyed_only_when_asked_for() -> None:
    """trim, blur and sharpen add to the key only when given, so a plain
    request keeps the key it had before they existed; a sigma is keyed in
    output pixels, so dpr=2&blur=1 and blur=2 at twice the width share one."""
    header = Header(OwnOutput(OutputFormat.JPEG, has_alpha=False))
    plain = key("w=100", header)
    assert not any(line.startswith(("trim=", "blur=", "sharpen=")) for line in plain.split("\n"))
    assert key("w=100&trim=10", header) == plain + "\ntrim=10"
    assert key("w=100&trim=010", header) == key("w=100&trim=10", header)
    assert key("w=100&dpr=2&blur=1", header) == key("w=200&blur=2", header)
    assert key("w=100&sharpen=0.50", header).endswith("\nsharpen=0.5")
    assert header.reads == 0
