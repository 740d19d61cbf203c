"""Cache keys: one per distinct output.

The key is built from the canonical request (service/canonical.py), so
parameters that do not change the output share an entry, and so do sizes
that produce the same one; test_canonical.py shows the sizes, these the
rest, and test_cache_http.py the same over HTTP.
"""

from __future__ import annotations

from urllib.parse import parse_qsl

import pytest

from service.canonical import OutputFacts, canonical
from service.formats import OutputFormat
from service.keys import variant_key
from service.negotiate import choose_format
from service.settings import DEFAULT_QUALITY
from service.sources import Original
from service.spec import parse_spec

ORIGINAL = Original(relative="a.png", path="/originals/a.png", size=1, mtime_ns=2, inode=3)
JPEG = OutputFacts(1800, 1200, OutputFormat.JPEG, has_alpha=False, animated=False)
PNG_WITH_ALPHA = OutputFacts(1800, 1200, OutputFormat.PNG, has_alpha=True, animated=False)
ANIMATED_GIF = OutputFacts(400, 300, OutputFormat.GIF, has_alpha=True, animated=True)


def key(query: str, facts: OutputFacts = JPEG, accept: str = "") -> str:
    spec = parse_spec(parse_qsl(query), max_output_size=4096)
    choice = choose_format(spec.format, spec.auto_format, accept)
    wanted = canonical(spec, choice, facts, max_output_size=4096, ladder=None)
    return variant_key(
        output_settings="v", original=ORIGINAL, canonical=wanted, quality=dict(DEFAULT_QUALITY)
    ).canonical


@pytest.mark.parametrize(
    ("first", "second", "facts"),
    [
        ("w=77", "w=77&format=jpeg", JPEG),  # the original's own format, named
        ("w=77&format=jpeg", "w=77&format=jpeg&q=80", JPEG),  # the default q, named
        ("w=77&format=png", "w=77&format=png&q=30", JPEG),  # q: lossless output
        ("w=77&format=webp", "w=77&format=auto", JPEG),  # negotiated to the same
        ("w=77&format=jpeg", "w=77&format=jpeg&bg=000000", JPEG),  # no alpha to flatten
        ("w=77&format=png&bg=000000", "w=77&format=png", PNG_WITH_ALPHA),  # alpha kept
        ("w=2000", "w=4000", JPEG),  # both the original's own size
        ("w=99&h=66&gravity=north", "w=99&h=66", JPEG),  # gravity without cover
        ("crop=0,0,1800,1200", "", JPEG),  # a crop of the whole picture
        ("crop=100,100,5000,5000", "crop=100,100,1700,1100", JPEG),  # clamped
    ],
)
def test_requests_for_one_output_share_a_key(first: str, second: str, facts: OutputFacts) -> None:
    assert key(first, facts, accept="image/webp") == key(second, facts, accept="image/webp")


@pytest.mark.parametrize(
    ("first", "second", "facts"),
    [
        ("w=77&format=jpeg&bg=000000", "w=77&format=jpeg", PNG_WITH_ALPHA),  # flattened
        ("w=77&q=50", "w=77", JPEG),
        ("w=77&format=png", "w=77", JPEG),
        ("w=1799", "w=1800", JPEG),
        ("h=100", "w=150", JPEG),  # the height binds: named by it, rounded its way
        ("w=100&h=100&fit=pad&bg=000000", "w=100&h=100&fit=pad", JPEG),
    ],
)
def test_requests_for_different_outputs_do_not(first: str, second: str, facts: OutputFacts) -> None:
    assert key(first, facts) != key(second, facts)


def test_format_auto_keys_the_format_the_render_writes() -> None:
    """AVIF gives way to the animated fallback for an animation: the key
    names what is written, so it is shared with asking for it by name."""
    accept = "image/avif,image/webp"
    assert key("w=100&format=auto", ANIMATED_GIF, accept) == key(
        "w=100&format=webp", ANIMATED_GIF, accept
    )
    assert "\nf=avif\n" in key("w=100&format=auto", JPEG, accept)


def test_filters_are_keyed_only_when_asked_for() -> None:
    """trim, blur and sharpen add to the key only when given; a sigma is
    keyed in output pixels, so dpr=2&blur=1 and blur=2 at twice the width
    share one."""
    plain = key("w=100")
    assert not any(line.startswith(("trim=", "blur=", "sharpen=")) for line in plain.split("\n"))
    assert key("w=100&trim=10") == plain + "\ntrim=10"
    assert key("w=100&trim=010") == key("w=100&trim=10")
    assert key("w=100&dpr=2&blur=1") == key("w=200&blur=2")
    assert key("w=100&sharpen=0.50").endswith("\nsharpen=0.5")
