"""The canonical request: one form per output, and the width ladder.

Pure arithmetic over header facts; test_ladder_http.py shows over HTTP that
the outputs are the sizes predicted here.
"""

from __future__ import annotations

from urllib.parse import parse_qsl

import pytest

from service.canonical import Canonical, OutputFacts, canonical
from service.formats import OutputFormat
from service.ladder import Ladder, parse_widths
from service.negotiate import choose_format
from service.spec import Fit, parse_spec

LADDER = Ladder((320, 640, 960, 1280, 1920, 2560))
# 1800 x 1200: the example original, between two steps.
PHOTO = OutputFacts(1800, 1200, OutputFormat.JPEG, has_alpha=False, animated=False)


def canonical_of(
    query: str, facts: OutputFacts = PHOTO, ladder: Ladder | None = LADDER
) -> Canonical:
    spec = parse_spec(parse_qsl(query), max_output_size=4096, ladder=ladder is not None)
    choice = choose_format(spec.format, spec.auto_format, "")
    return canonical(spec, choice, facts, max_output_size=4096, ladder=ladder)


@pytest.mark.parametrize(
    ("width", "snapped"),
    [
        (1, 320),
        (320, 320),  # at a step
        (321, 640),  # just past it: up
        (959, 960),
        (1280, 1280),
        (1281, 1800),  # the next step is past the original: its own width
        (1800, 1800),
        (4000, 1800),
    ],
)
def test_a_width_rounds_up_to_a_step_never_past_the_original(width: int, snapped: int) -> None:
    assert canonical_of(f"w={width}").output_width == snapped


def test_past_the_last_step_the_last_step() -> None:
    wide = OutputFacts(4000, 1000, OutputFormat.JPEG, has_alpha=False, animated=False)
    assert canonical_of("w=3000", wide).output_width == 2560
    assert canonical_of("w=4000", wide).output_width == 2560


def test_widths_that_give_the_original_are_the_request_without_a_size() -> None:
    plain = canonical_of("")
    for query in ("w=1281", "w=1800", "w=4000", "h=1200", "w=4000&h=4000"):
        assert canonical_of(query).spec == plain.spec
    assert plain.output_width == 1800


def test_a_height_alone_snaps_by_the_width_it_would_produce() -> None:
    # h=100 gives 150 px of width: the first step, and the height follows.
    snapped = canonical_of("h=100")
    assert snapped.spec == canonical_of("w=320").spec
    assert snapped.output_width == 320


def test_dpr_is_applied_before_snapping() -> None:
    assert canonical_of("w=400&dpr=2").spec == canonical_of("w=960").spec


def test_a_cover_box_snaps_with_its_aspect_kept() -> None:
    box = canonical_of("w=500&h=250&fit=cover")
    assert (box.output_width, box.output_height) == (640, 320)
    assert box.spec.fit is Fit.COVER
    # The widest 2:1 box an 1800 x 1200 picture holds is its top step.
    top = canonical_of("w=1900&h=950&fit=cover")
    assert (top.output_width, top.output_height) == (1800, 900)
    tall = canonical_of("w=1000&h=1200&fit=cover")  # 1000 x 1200 is as wide as 5:6 goes
    assert (tall.output_width, tall.output_height) == (1000, 1200)


def test_every_width_is_a_step_or_the_widest_the_original_allows() -> None:
    for width in range(1, 2600, 7):
        produced = canonical_of(f"w={width}").output_width
        assert produced in (*LADDER.steps, 1800)
        cover = canonical_of(f"w={width}&h={max(1, width // 3)}&fit=cover")
        assert cover.output_width in (*LADDER.steps, 1800)


def test_without_a_ladder_one_form_per_output() -> None:
    assert canonical_of("w=2000", ladder=None).spec == canonical_of("", ladder=None).spec
    assert canonical_of("w=900&h=4000", ladder=None).spec == canonical_of("w=900", ladder=None).spec
    # The height binds: kept as the height, as resize makes that side exact.
    by_height = canonical_of("w=4000&h=600", ladder=None)
    assert (by_height.spec.width, by_height.spec.height) == (None, 600)
    box = canonical_of("w=4000&h=2000&fit=cover", ladder=None)
    assert (box.spec.width, box.spec.height) == (1800, 900)


def test_a_crop_and_a_rotation_size_the_picture() -> None:
    # A 600 x 400 crop turned a quarter: a 400-px-wide picture.
    turned = canonical_of("crop=0,0,600,400&rotate=90&w=1000")
    assert turned.output_width == 400
    assert turned.spec.width is None
    assert canonical_of("crop=0,0,600,400&rotate=90&w=300").output_width == 320


def test_trim_snaps_the_width_asked_for() -> None:
    trimmed = canonical_of("trim=10&w=700")
    assert trimmed.spec.width == 960
    assert trimmed.output_width is None  # only its pixels tell


def test_a_ladder_w_replaces_a_presets_width_and_scales_its_height() -> None:
    presets = {"card": (("w", "400"), ("h", "300"), ("fit", "cover"))}
    spec = parse_spec(
        [("preset", "card"), ("w", "960")],
        max_output_size=4096,
        presets=presets,
        presets_only=True,
        ladder=True,
    )
    assert (spec.width, spec.height, spec.fit) == (960, 720, Fit.COVER)


@pytest.mark.parametrize("text", ["", "a", "320,,640", "-1", "0", "1e3", "३२०"])
def test_a_bad_widths_list_is_refused(text: str) -> None:
    with pytest.raises(ValueError, match="width"):
        parse_widths(text)


def test_widths_are_sorted_and_distinct() -> None:
    assert parse_widths("640, 320,640") == (320, 640)
