"""Output geometry (service/render/geometry.py): the box arithmetic of the
fit modes, as properties over every size rather than a few examples."""

from __future__ import annotations

from fractions import Fraction

import pytest
import pyvips
from hypothesis import given
from hypothesis import strategies as st

from service.render.geometry import (
    FAST_DEPTH,
    LIBVIPS_DEPTH,
    SERVICE_DEPTH,
    Rect,
    ShrinkDepth,
    centred_offset,
    clamp_rect,
    contain_size,
    cover_prescale,
    cover_size,
    crop_anchor,
    jpeg_shrink,
    scaled_box,
    stored_rect,
    turned,
    unturned_gravity,
    window_offset,
)
from service.spec import Flip, Gravity

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


@st.composite
def rects(draw: st.DrawFn, limit: int = 40_000) -> Rect:
    coordinate = st.integers(min_value=0, max_value=limit)
    side = st.integers(min_value=1, max_value=limit)
    return Rect(draw(coordinate), draw(coordinate), draw(side), draw(side))


@given(rect=rects(), size=sizes)
def test_clamp_rect_keeps_what_lies_inside_the_image(rect: Rect, size: tuple[int, int]) -> None:
    """The clamped rectangle is the overlap of the two, None when they do
    not overlap (a rectangle that only touches an edge has no pixel inside)."""
    clamped = clamp_rect(rect, size)
    overlaps = rect.left < size[0] and rect.top < size[1]
    assert (clamped is not None) == overlaps
    if clamped is not None:
        assert (clamped.left, clamped.top) == (rect.left, rect.top)
        assert clamped.left + clamped.width == min(rect.left + rect.width, size[0])
        assert clamped.top + clamped.height == min(rect.top + rect.height, size[1])


def test_clamp_rect_examples() -> None:
    assert clamp_rect(Rect(1700, 1100, 500, 500), (1800, 1200)) == Rect(1700, 1100, 100, 100)
    assert clamp_rect(Rect(0, 0, 1800, 1200), (1800, 1200)) == Rect(0, 0, 1800, 1200)
    assert clamp_rect(Rect(1800, 0, 10, 10), (1800, 1200)) is None
    assert clamp_rect(Rect(0, 5000, 10, 10), (1800, 1200)) is None


def _numbered(width: int, height: int) -> pyvips.Image:
    """An image whose every pixel is different: x in band 0, y in band 1."""
    return pyvips.Image.xyz(width, height).cast("ushort")


@pytest.mark.parametrize("orientation", range(1, 9))
@given(data=st.data())
def test_stored_rect_is_where_libvips_autorotate_takes_the_upright_rect(
    orientation: int, data: st.DataObject
) -> None:
    """Cutting the stored rectangle and turning it upright (libvips'
    autorot, as thumbnail does) gives exactly the upright rectangle's pixels."""
    stored = (data.draw(st.integers(1, 9)), data.draw(st.integers(1, 9)))
    image = _numbered(*stored).copy()
    image.set_type(pyvips.GValue.gint_type, "orientation", orientation)
    upright = image.autorot()
    left = data.draw(st.integers(0, upright.width - 1))
    top = data.draw(st.integers(0, upright.height - 1))
    rect = Rect(
        left,
        top,
        data.draw(st.integers(1, upright.width - left)),
        data.draw(st.integers(1, upright.height - top)),
    )
    inner = stored_rect(rect, orientation, stored)
    cut = image.crop(inner.left, inner.top, inner.width, inner.height).autorot()
    expected = upright.crop(rect.left, rect.top, rect.width, rect.height)
    assert cut.write_to_memory() == expected.write_to_memory()


@given(picture=sizes, box=sizes)
def test_contain_size_fits_the_box_and_keeps_the_aspect(
    picture: tuple[int, int], box: tuple[int, int]
) -> None:
    """Inside the box and the picture, one side meeting the box (or the
    picture itself when it fits), the other within rounding of the aspect."""
    width, height = contain_size(picture, box)
    assert 1 <= width <= min(box[0], picture[0])
    assert 1 <= height <= min(box[1], picture[1])
    if picture[0] <= box[0] and picture[1] <= box[1]:
        assert (width, height) == picture
        return
    assert width == box[0] or height == box[1]
    scale = min(Fraction(box[0], picture[0]), Fraction(box[1], picture[1]))
    assert abs(width - picture[0] * scale) <= Fraction(1, 2) or width == 1
    assert abs(height - picture[1] * scale) <= Fraction(1, 2) or height == 1


@given(case=box_within())
def test_cover_size_just_covers_the_box(
    case: tuple[tuple[int, int], tuple[int, int]],
) -> None:
    """At least the box, exactly it on one side, the aspect kept to rounding."""
    box, picture = case
    width, height = cover_size(box, picture)
    assert width >= box[0]
    assert height >= box[1]
    assert width == box[0] or height == box[1]
    scale = max(Fraction(box[0], picture[0]), Fraction(box[1], picture[1]))
    assert abs(width - picture[0] * scale) <= Fraction(1, 2)
    assert abs(height - picture[1] * scale) <= Fraction(1, 2)


fractions = st.floats(min_value=0, max_value=1)
# A mark's place on a 3x3 image for each compass point.
COMPASS = {
    Gravity.NORTH: (1, 0),
    Gravity.SOUTH: (1, 2),
    Gravity.WEST: (0, 1),
    Gravity.EAST: (2, 1),
}


@given(case=box_within(), point=st.tuples(fractions, fractions))
def test_window_offset_centres_the_focal_point_unless_an_edge_stops_it(
    case: tuple[tuple[int, int], tuple[int, int]], point: tuple[float, float]
) -> None:
    """The window stays inside; on each axis the point is at its centre (to
    half a pixel), or the window touches the edge nearer the point."""
    box, covered = case
    offset = window_offset(Gravity.CENTRE, point, covered, box)
    for axis in (0, 1):
        start, spare = offset[axis], covered[axis] - box[axis]
        assert 0 <= start <= spare
        off_centre = point[axis] * covered[axis] - (start + box[axis] / 2)
        if 0 < start < spare:
            assert abs(off_centre) <= 0.5
        elif start == 0 < spare:
            assert off_centre <= 0.5  # the point is left of (above) the centre
        elif start == spare > 0:
            assert off_centre >= -0.5


@given(case=box_within(), gravity=st.sampled_from([*COMPASS, Gravity.CENTRE]))
def test_window_offset_without_a_focal_point_is_thumbnails_crop(
    case: tuple[tuple[int, int], tuple[int, int]], gravity: Gravity
) -> None:
    """The window libvips' thumbnail cuts for the same gravity (its crop
    anchor: low keeps the start of both axes, high their end)."""
    box, picture = case
    covered = cover_size(box, picture)
    spare = (covered[0] - box[0], covered[1] - box[1])
    anchor = crop_anchor(gravity, box, picture)
    expected = {"low": (0, 0), "high": spare}.get(anchor, (spare[0] // 2, spare[1] // 2))
    assert window_offset(gravity, None, covered, box) == expected


def test_window_offset_examples_with_a_focal_point() -> None:
    assert window_offset(Gravity.CENTRE, (0.5, 0.5), (300, 100), (100, 100)) == (100, 0)
    assert window_offset(Gravity.CENTRE, (0.25, 0.5), (400, 100), (100, 100)) == (50, 0)
    assert window_offset(Gravity.CENTRE, (0.05, 0.5), (400, 100), (100, 100)) == (0, 0)
    assert window_offset(Gravity.CENTRE, (1.0, 1.0), (400, 300), (100, 100)) == (300, 200)


@given(
    region=sizes,
    target=sizes,
    depth=st.sampled_from([LIBVIPS_DEPTH, SERVICE_DEPTH, FAST_DEPTH]),
)
def test_jpeg_shrink_leaves_the_depths_gap(
    region: tuple[int, int], target: tuple[int, int], depth: ShrinkDepth
) -> None:
    """The largest of libjpeg's factors after which both sides still have at
    least the depth's gap times the target's pixels (1 when none does)."""
    factor = jpeg_shrink(region, target, depth)
    assert factor in (1, 2, 4, 8)
    reduction = min(Fraction(region[0], target[0]), Fraction(region[1], target[1]))

    def gap(shrink: int) -> Fraction:
        return Fraction(depth.halving if shrink == 2 else depth.deeper)

    if factor > 1:
        assert reduction >= gap(factor) * factor
    if factor < 8:
        deeper = 2 * factor
        assert reduction < gap(deeper) * deeper


def test_jpeg_shrink_depths_by_example() -> None:
    """libvips' thumbnail halves from 4x, the service from 3x; both quarter
    from 8x. The fast depth goes down to the output size."""
    picture = (4000, 3000)
    cases = {1500: (1, 1, 2), 1300: (1, 2, 2), 1000: (2, 2, 4), 600: (2, 2, 4), 450: (4, 4, 8)}
    for width, expected in cases.items():
        target = (width, width * 3 // 4)
        depths = (LIBVIPS_DEPTH, SERVICE_DEPTH, FAST_DEPTH)
        assert tuple(jpeg_shrink(picture, target, depth) for depth in depths) == expected, width
    assert jpeg_shrink(picture, (1500, 1125)) == 1  # libvips' depth unless told


def test_turned_swaps_for_a_quarter_turn() -> None:
    assert turned((300, 200), 0) == (300, 200)
    assert turned((300, 200), 90) == (200, 300)
    assert turned((300, 200), 180) == (300, 200)
    assert turned((300, 200), 270) == (200, 300)


@pytest.mark.parametrize("gravity", list(COMPASS))
@pytest.mark.parametrize("rotate", [0, 90, 180, 270])
@pytest.mark.parametrize("flip", list(Flip))
def test_unturned_gravity_names_the_edge_that_turns_into_the_asked_one(
    gravity: Gravity, rotate: int, flip: Flip
) -> None:
    """A mark on the middle of the unturned edge of a 3x3 image lands, once
    libvips rotates and flips the image, on the middle of the asked edge."""
    before = unturned_gravity(gravity, rotate, flip)
    image = pyvips.Image.black(3, 3).draw_rect([255], *COMPASS[before], 1, 1)
    if rotate:
        image = image.rot(f"d{rotate}")
    if flip in (Flip.VERTICAL, Flip.BOTH):
        image = image.flipver()
    if flip in (Flip.HORIZONTAL, Flip.BOTH):
        image = image.fliphor()
    assert image(*COMPASS[gravity])[0] == 255


@pytest.mark.parametrize("gravity", [Gravity.CENTRE, Gravity.ATTENTION, Gravity.ENTROPY])
def test_unturned_gravity_leaves_centre_and_smart_gravity(gravity: Gravity) -> None:
    assert unturned_gravity(gravity, 90, Flip.BOTH) is gravity
