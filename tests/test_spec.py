"""The parameter parser: a valid spec or a BadRequest, never anything else."""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from service.errors import BadRequest
from service.formats import OutputFormat
from service.spec import Crop, Fit, Flip, RequestSpec, parse_spec

LIMIT = 4096


def parse(query: dict[str, str]) -> RequestSpec:
    return parse_spec(query.items(), max_output_size=LIMIT)


def test_no_parameters_is_the_original_size_and_format() -> None:
    """Nothing asked: no box, the original's format, default quality."""
    assert parse({}) == RequestSpec()


@pytest.mark.parametrize(
    ("query", "width", "height"),
    [
        ({"scalex": "800"}, 800, None),
        ({"w": "800"}, 800, None),
        ({"scaley": "600"}, None, 600),
        ({"w": "799.5"}, 800, None),  # half rounds up
        ({"w": "799.49"}, 799, None),
        ({"w": "0.5"}, 1, None),
        ({"w": "400", "dpr": "2"}, 800, None),
        ({"w": "100", "h": "33.3", "dpr": "1.5"}, 150, 50),
        ({"w": "4096"}, 4096, None),
    ],
)
def test_sizes_are_rounded_half_up_after_dpr(
    query: dict[str, str], width: int | None, height: int | None
) -> None:
    spec = parse(query)
    assert (spec.width, spec.height) == (width, height)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("jpeg", OutputFormat.JPEG),
        ("JPG", OutputFormat.JPEG),
        ("WebP", OutputFormat.WEBP),
        ("avif", OutputFormat.AVIF),
        ("gif", OutputFormat.GIF),
        ("png", OutputFormat.PNG),
    ],
)
def test_format_names_are_case_insensitive(value: str, expected: OutputFormat) -> None:
    assert parse({"encoding": value}).format is expected
    assert parse({"format": value}).format is expected


def test_auto_format_is_flagged_for_negotiation() -> None:
    spec = parse({"format": "AUTO"})
    assert spec.auto_format
    assert spec.format is None


def test_quality_background_and_signature() -> None:
    spec = parse({"q": "55", "bg": "FF000080", "s": "abc"})
    assert spec.quality == 55
    assert spec.background == (255, 0, 0, 128)
    assert spec.signature == "abc"


def test_equivalent_requests_give_equal_specs() -> None:
    """Aliases and spellings that mean the same output compare equal."""
    assert parse({"w": "800"}) == parse({"scalex": "800.2"})
    assert parse({"format": "jpg"}) == parse({"encoding": "JPEG"})


def test_the_operations_parse_into_the_spec() -> None:
    spec = parse(
        {"crop": "10,20,300,400", "rotate": "270", "flip": "V", "w": "90", "h": "90"}
        | {"fit": "cover", "fp": "0.25,1"}
    )
    assert spec.crop == Crop(10, 20, 300, 400)
    assert spec.rotate == 270
    assert spec.flip is Flip.VERTICAL
    assert spec.fit is Fit.COVER
    assert spec.focal_point == (Decimal("0.25"), Decimal(1))


def test_equal_operations_give_equal_specs() -> None:
    """Spellings of one output are one spec (and so one cache key)."""
    assert parse({"flip": "vh"}) == parse({"flip": "HV"})
    cover = {"w": "10", "h": "10", "fit": "cover"}
    assert parse(cover | {"fp": "0.50,.5"}) == parse(cover | {"fp": "0.5,0.500"})
    assert parse({"rotate": "0"}) == parse({})


def test_a_focal_point_without_cover_is_dropped() -> None:
    """Like gravity, fp only places cover's window."""
    assert parse({"w": "10", "h": "10", "fp": "0.5,0.5"}).focal_point is None
    assert parse({"w": "10", "fit": "cover", "fp": "0.5,0.5"}).focal_point is None  # no box


NAMES = ["scalex", "w", "scaley", "h", "encoding", "format", "q", "quality", "dpr", "bg", "s"]
NAMES += ["fit", "gravity", "crop", "rotate", "flip", "fp"]
NAMES += ["trim", "blur", "sharpen"]  # the filters' numbers, against the same values
VALUES = st.one_of(
    st.text(max_size=30),
    st.from_regex(r"[0-9]{1,6}(\.[0-9]{1,4})?", fullmatch=True),
    st.sampled_from(["NaN", "inf", "-1", "1e309", "auto", "webp", "jpg", "ffffff", "0", "4"]),
    st.sampled_from(["cover", "north", "90", "h", "hv", "0,0,5,5", "1,2,3", "0.5,0.5", "1.5,0"]),
    st.lists(st.from_regex(r"-?[0-9.]{1,7}", fullmatch=True), max_size=5).map(",".join),
)


@given(st.lists(st.tuples(st.one_of(st.sampled_from(NAMES), st.text(max_size=8)), VALUES)))
def test_any_query_gives_a_spec_or_a_bad_request(pairs: list[tuple[str, str]]) -> None:
    """Hypothesis: no input escapes as another exception, and specs are in range."""
    try:
        spec = parse_spec(pairs, max_output_size=LIMIT)
    except BadRequest as error:
        message = error.message
        status = error.status
    else:
        for side in (spec.width, spec.height):
            assert side is None or 1 <= side <= LIMIT
        assert spec.quality in (None, "auto") or 1 <= int(spec.quality) <= 100
        assert spec.rotate in (0, 90, 180, 270)
        assert spec.crop is None or min(spec.crop.width, spec.crop.height) >= 1
        assert spec.focal_point is None or all(0 <= part <= 1 for part in spec.focal_point)
        assert spec.trim is None or 1 <= spec.trim <= 100
        assert spec.blur is None or 0.3 <= spec.blur <= 200  # 50, times dpr 4
        return
    assert status == 400
    assert message
    assert "\n" not in message


@given(st.text(max_size=20))
def test_numbers_accept_only_plain_ascii_decimals(text: str) -> None:
    """Whatever float() would also take (signs, exponents, '_', non-ASCII
    digits, inf, nan), the parser takes only [0-9]+(.[0-9]+)?."""
    plain = text.isascii() and text.replace(".", "", 1).isdigit() and not text.startswith(".")
    plain = plain and not text.endswith(".")
    try:
        spec = parse_spec([("w", text)], max_output_size=10**9)
    except BadRequest:
        accepted = False
    else:
        accepted = True
        assert spec.width is not None
    if accepted:
        assert plain


def test_trim_is_a_whole_threshold_and_part_of_the_spec_only_when_given() -> None:
    """trim=T parses to its threshold, with leading zeros the same value."""
    assert parse({"trim": "10"}).trim == 10
    assert parse({"trim": "007"}) == parse({"trim": "7"})
    assert parse({}).trim is None


def test_filter_sigmas_are_in_output_pixels() -> None:
    """blur and sharpen sigmas are multiplied by dpr, like the sizes."""
    spec = parse({"w": "100", "dpr": "2", "blur": "1.5", "sharpen": "0.5"})
    assert (spec.blur, spec.sharpen) == (Decimal(3), Decimal(1))
    retina = parse({"w": "100", "dpr": "2", "blur": "1"})
    assert retina.blur == parse({"w": "200", "blur": "2"}).blur
