"""Output geometry (service/render/geometry.py): the box arithmetic of the
fit modes, as properties over every size rather than a few examples."""

from __future__ import annotations

from fractions import Fraction

import pytest
from hypothesis import given
from hypothesis import strategies as st

from service.render.geometry import centred_offset, cover_prescale, crop_anchor, scaled_box
from service.spec import Gravity

# Sides from one pixel to past the longest original we decode (32,768).
sides = st.integers(min_value=1, max_value=40_000)
sizes = st.tuples(sides, sides)


@given(box=sizes, original=sizes)
def test_scaled_box_never_exceeds_the_original_nor_the_box(
    box: tuple[int, int], original: tuple[int, int]
) -> None:
    width, height = scaled_box(*box, original)
    assert 1 <= width <= min(box[0], original[0])
    assert 1 <= height <= min(box[1], original[1])


@given(box=sizes, original=sizes)
def test_scaled_box_keeps_the_box_aspect_within_rounding(
    box: tuple[int, int], original: tuple[int, int]
) -> None:
    """Some one scale s of the asked box gives the result to within a pixel
    per side: the two intervals of s that each side allows overlap."""
    width, height = scaled_box(*box, original)
    lowest = max(Fraction(width - 1, box[0]), Fraction(height - 1, box[1]))
    highest = min(Fraction(width + 1, box[0]), Fraction(height + 1, box[1]))
    assert lowest < highest


@given(box=sizes, original=sizes)
def test_scaled_box_shrinks_only_until_it_fits(
    box: tuple[int, int], original: tuple[int, int]
) -> None:
    """The box itself when it fits; else as large as fits: one side is the
    original's."""
    result = scaled_box(*box, original)
    if box[0] <= original[0] and box[1] <= original[1]:
        assert result == box
    else:
        assert result[0] == original[0] or result[1] == original[1]


def test_scaled_box_examples() -> None:
    assert scaled_box(300, 300, (1800, 1200)) == (300, 300)
    assert scaled_box(4000, 400, (1800, 1200)) == (1800, 180)
    assert scaled_box(400, 4000, (1800, 1200)) == (120, 1200)
    assert scaled_box(3000, 1001, (1800, 1200)) == (1800, 601)  # 600.6: rounded, not cut
    assert scaled_box(4000, 1, (1800, 1200)) == (1800, 1)  # never below one pixel


@st.composite
def box_within(draw: st.DrawFn) -> tuple[tuple[int, int], tuple[int, int]]:
    """An original and a box inside it, as cover gets them from scaled_box."""
    original = draw(sizes)
    box = (
        draw(st.integers(min_value=1, max_value=original[0])),
        draw(st.integers(min_value=1, max_value=original[1])),
    )
    return box, original


@given(case=box_within())
def test_cover_prescale_covers_the_box_within_the_original(
    case: tuple[tuple[int, int], tuple[int, int]],
) -> None:
    """Fitting the original inside the prescale (contain) scales it by no
    less than covering the box needs, so each frame still covers the box;
    and the prescale never asks for more than the original has, nor more
    than a pixel beyond what covering needs."""
    box, original = case
    width, height = cover_prescale(box, original)
    assert width <= original[0]
    assert height <= original[1]
    assert width >= box[0]
    assert height >= box[1]
    cover = max(Fraction(box[0], original[0]), Fraction(box[1], original[1]))
    contain = min(Fraction(width, original[0]), Fraction(height, original[1]))
    assert contain >= cover
    assert width <= original[0] * cover + 1
    assert height <= original[1] * cover + 1


@given(inner=sizes, outer=sizes)
def test_centred_offset_centres(inner: tuple[int, int], outer: tuple[int, int]) -> None:
    """As many pixels before as after, the odd one after (right, bottom)."""
    inner = (min(inner[0], outer[0]), min(inner[1], outer[1]))  # pad embeds the smaller
    left, top = centred_offset(inner, outer)
    for before, size, whole in ((left, inner[0], outer[0]), (top, inner[1], outer[1])):
        after = whole - size - before
        assert 0 <= before <= after <= before + 1


SMART = [Gravity.ATTENTION, Gravity.ENTROPY, Gravity.CENTRE]


@given(box=sizes, original=sizes, gravity=st.sampled_from(SMART))
def test_crop_anchor_passes_smart_and_centre_gravity_through(
    box: tuple[int, int], original: tuple[int, int], gravity: Gravity
) -> None:
    assert crop_anchor(gravity, box, original) == gravity.value


@given(box=sizes, original=sizes, gravity=st.sampled_from(list(Gravity)))
def test_crop_anchor_keeps_the_named_edge_of_the_axis_that_overflows(
    box: tuple[int, int], original: tuple[int, int], gravity: Gravity
) -> None:
    """Scaled to cover the box, the original overflows it on one axis (or
    neither): libvips' ``low`` keeps that axis' start (left, top), ``high``
    its end; a compass point across that axis centres it."""
    if gravity in SMART:
        return
    cover = max(Fraction(box[0], original[0]), Fraction(box[1], original[1]))
    across = original[0] * cover > box[0]  # the width overflows: cropped left and right
    keeps = (
        {Gravity.WEST: "low", Gravity.EAST: "high"}
        if across
        else {Gravity.NORTH: "low", Gravity.SOUTH: "high"}
    )
    assert crop_anchor(gravity, box, original) == keeps.get(gravity, "centre")


@pytest.mark.parametrize(
    ("gravity", "wide", "tall"),
    [
        (Gravity.NORTH, "centre", "low"),
        (Gravity.SOUTH, "centre", "high"),
        (Gravity.WEST, "low", "centre"),
        (Gravity.EAST, "high", "centre"),
        (Gravity.CENTRE, "centre", "centre"),
    ],
)
def test_crop_anchor_compass_examples(gravity: Gravity, wide: str, tall: str) -> None:
    """A wide original in a square box is cropped at its sides, a tall one
    at its top and bottom; a box of the original's own shape crops nothing,
    and counts as tall."""
    assert crop_anchor(gravity, (100, 100), (400, 100)) == wide
    assert crop_anchor(gravity, (100, 100), (100, 400)) == tall
    assert crop_anchor(gravity, (200, 100), (400, 200)) == tall
