"""Header limits (service/render/limits.py): each refuses, with its own
reason, exactly past its edge; and the decode budget reserves nothing for
what they refuse."""

from __future__ import annotations

from dataclasses import replace

import pytest

from service.errors import SourceTooLarge
from service.formats import OutputFormat
from service.render import HeaderFacts, RenderPolicy
from service.render.limits import MAX_JPEG_SCANS, MAX_SOURCE_SIDE, check, decode_reservation

PIXELS = 10_000_000
DECODE = 50_000_000

POLICY = RenderPolicy(
    quality={},
    max_output_size=4096,
    max_source_pixels=PIXELS,
    avif_effort=0,
    max_decode_bytes=DECODE,
)

# Well inside every limit: a 2,000 x 1,000 progressive JPEG in 10 scans.
FACTS = HeaderFacts(
    loader="jpegload_source",
    width=2000,
    height=1000,
    pages=1,
    has_alpha=False,
    orientation=1,
    own_format=OutputFormat.JPEG,
    needs_colour_management=False,
    drawn=False,
    decode_bytes=DECODE // 2,
    pixel_bytes=2000 * 1000 * 3,
    jpeg_scans=10,
)


def refusal(facts: HeaderFacts, policy: RenderPolicy = POLICY, frames: int = 1) -> str:
    with pytest.raises(SourceTooLarge) as refused:
        check(facts, policy, frames=frames)
    assert refused.value.status == 422
    return refused.value.message


def test_well_inside_every_limit_passes() -> None:
    check(FACTS, POLICY, frames=1)
    assert decode_reservation(FACTS, POLICY) == FACTS.decode_bytes


@pytest.mark.parametrize(
    ("at_edge", "over"),
    [
        ((MAX_SOURCE_SIDE, 1), (MAX_SOURCE_SIDE + 1, 1)),
        ((1, MAX_SOURCE_SIDE), (1, MAX_SOURCE_SIDE + 1)),
    ],
    ids=["width", "height"],
)
def test_the_side_limit(at_edge: tuple[int, int], over: tuple[int, int]) -> None:
    """Either side, up to MAX_SOURCE_SIDE; the pixel limit is lifted here
    so that only the side is judged."""
    roomy = replace(POLICY, max_source_pixels=MAX_SOURCE_SIDE * 2)
    check(replace(FACTS, width=at_edge[0], height=at_edge[1]), roomy, frames=1)
    message = refusal(replace(FACTS, width=over[0], height=over[1]), roomy)
    assert message == (
        f"the original is {over[0]}x{over[1]}, over the limit of {MAX_SOURCE_SIDE} px per side"
    )


def test_the_pixel_limit_counts_every_frame_rendered() -> None:
    at_edge = replace(FACTS, width=PIXELS // 1000, height=1000)  # exactly PIXELS
    check(at_edge, POLICY, frames=1)
    over = replace(at_edge, height=1001)
    assert refusal(over) == (
        f"the original has {over.width * 1001} pixels to process, over the limit of {PIXELS}"
    )
    frame = replace(FACTS, width=PIXELS // 1000, height=100)  # a tenth of the limit
    check(frame, POLICY, frames=10)
    assert "11000000 pixels to process" in refusal(frame, frames=11)


def test_the_scan_limit() -> None:
    check(replace(FACTS, jpeg_scans=MAX_JPEG_SCANS), POLICY, frames=1)
    check(replace(FACTS, jpeg_scans=None), POLICY, frames=1)  # not counted: not judged
    assert refusal(replace(FACTS, jpeg_scans=MAX_JPEG_SCANS + 1)) == (
        f"the original is a JPEG in over {MAX_JPEG_SCANS} scans, the limit"
    )


def test_the_decode_limit() -> None:
    check(replace(FACTS, decode_bytes=DECODE), POLICY, frames=1)
    assert refusal(replace(FACTS, decode_bytes=DECODE + 1)) == (
        "the original needs 50 MB of memory to decode, over the limit of 50 MB"
    )
    unlimited = replace(POLICY, max_decode_bytes=None)
    check(replace(FACTS, decode_bytes=10**12), unlimited, frames=1)


def test_the_first_limit_passed_is_the_reason() -> None:
    """Over every limit at once: the side is named, as it is checked first."""
    everything = replace(
        FACTS,
        width=MAX_SOURCE_SIDE + 1,
        height=MAX_SOURCE_SIDE + 1,
        jpeg_scans=MAX_JPEG_SCANS + 1,
        decode_bytes=DECODE + 1,
    )
    assert "px per side" in refusal(everything)


@pytest.mark.parametrize(
    "facts",
    [
        replace(FACTS, width=MAX_SOURCE_SIDE + 1),
        replace(FACTS, width=PIXELS // 1000, height=1001),
        replace(FACTS, jpeg_scans=MAX_JPEG_SCANS + 1),
        replace(FACTS, decode_bytes=DECODE + 1),
    ],
    ids=["side", "pixels", "scans", "decode"],
)
def test_what_a_limit_refuses_reserves_nothing(facts: HeaderFacts) -> None:
    """It is refused in milliseconds: it must neither wait for room in the
    decode budget nor hold any."""
    refusal(facts)
    assert decode_reservation(facts, POLICY) == 0


def test_the_reservation_is_for_one_frame() -> None:
    """The reservation sees the header, not the request, so it judges one
    frame: an animation over the pixel limit only by its frames (which a
    still output would not render) reserves its decode, and the render,
    knowing the frames, is what refuses it."""
    animation = replace(FACTS, width=PIXELS // 1000, height=1000, pages=5)
    refusal(animation, frames=5)
    assert decode_reservation(animation, POLICY) == animation.decode_bytes
