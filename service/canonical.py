"""The canonical request: what a render of one original will produce.

The result key is built from this, and the render runs from it, so two
requests that produce the same output are one key and one render by
construction: ``w=2000`` and ``w=4000`` on an 1800-px original are both the
original's own size; ``?w=77`` and ``?w=77&format=jpeg`` on a JPEG are both
a JPEG. It needs the original's header (its upright size, own format and
alpha: ``OutputFacts``), which the header memo keeps per identity, so it
costs no decode. What only pixels can tell, ``trim``'s box, is left as its
parameter.

The width ladder (``--widths``) is applied here too: the width a request
would produce is rounded up to a step, never past the widest the original
allows for the request's shape, and the height follows.
"""

from __future__ import annotations

import json
from dataclasses import astuple, dataclass, replace
from typing import Protocol

from .formats import OutputFormat
from .ladder import Ladder
from .negotiate import FormatChoice
from .render.geometry import Rect, clamp_rect, contain_size, scaled_box
from .spec import WHITE, Crop, Fit, RequestSpec

# resize's "unconstrained" side: any size this large never binds.
_UNBOUNDED = 10_000_000


class OriginalFacts(Protocol):
    """What the canonical request needs of an original's header
    (``render.HeaderFacts`` and ``OutputFacts`` have it)."""

    @property
    def width(self) -> int: ...  # upright

    @property
    def height(self) -> int: ...  # upright, per frame

    @property
    def own_format(self) -> OutputFormat: ...

    @property
    def has_alpha(self) -> bool: ...

    @property
    def animated(self) -> bool: ...


@dataclass(frozen=True, slots=True)
class OutputFacts:
    """``OriginalFacts`` as plain data, kept for remote originals beside
    their bodies so that a key never needs the body (``to_json``)."""

    width: int
    height: int
    own_format: OutputFormat
    has_alpha: bool
    animated: bool

    @classmethod
    def of(cls, facts: OriginalFacts) -> OutputFacts:
        return cls(facts.width, facts.height, facts.own_format, facts.has_alpha, facts.animated)

    def to_json(self) -> bytes:
        return json.dumps(
            {
                "width": self.width,
                "height": self.height,
                "own_format": self.own_format.value,
                "has_alpha": self.has_alpha,
                "animated": self.animated,
            }
        ).encode()

    @classmethod
    def from_json(cls, data: bytes) -> OutputFacts | None:
        """The facts, or None for a torn or foreign file (read again)."""
        try:
            fields = json.loads(data)
            return cls(
                width=int(fields["width"]),
                height=int(fields["height"]),
                own_format=OutputFormat(fields["own_format"]),
                has_alpha=bool(fields["has_alpha"]),
                animated=bool(fields["animated"]),
            )
        except (ValueError, KeyError, TypeError):
            return None


@dataclass(frozen=True, slots=True)
class Canonical:
    """A request as its output: the spec to key and render (its format
    resolved: never None), and the output's size (per frame; None when
    only the pixels tell: ``trim``, or a crop outside the picture)."""

    spec: RequestSpec
    format: OutputFormat
    output_size: tuple[int, int] | None

    @property
    def output_width(self) -> int | None:
        return None if self.output_size is None else self.output_size[0]

    @property
    def output_height(self) -> int | None:
        return None if self.output_size is None else self.output_size[1]

    @property
    def boxed(self) -> bool:
        """Whether its shape is a box of both sides (cover, fill, pad): a
        URL names it by its width and height, else by its width alone."""
        spec = self.spec
        return spec.fit is not Fit.CONTAIN and spec.width is not None and spec.height is not None


def canonical(
    spec: RequestSpec,
    choice: FormatChoice,
    facts: OriginalFacts,
    *,
    max_output_size: int,
    ladder: Ladder | None,
) -> Canonical:
    """The spec that produces what ``spec`` would, in one form per output."""
    output = resolved_format(choice, facts)
    flattens = not output.has_alpha and facts.has_alpha
    pads = spec.fit is Fit.PAD and spec.width is not None and spec.height is not None
    spec = replace(
        spec,
        format=output,
        auto_format=False,
        # q only shapes a lossy format; bg only a pad or alpha flattened.
        quality=spec.quality if output.uses_quality else None,
        background=spec.background if pads or flattens else WHITE,
        signature=None,
    )
    picture: tuple[int, int] = (facts.width, facts.height)
    if spec.crop is not None:
        rect = clamp_rect(Rect(*astuple(spec.crop)), picture)
        if rect is None:
            # Wholly outside: the render refuses it (422) as asked.
            return Canonical(spec, output, None)
        whole = rect == Rect(0, 0, *picture)
        spec = replace(spec, crop=None if whole else Crop(*astuple(rect)))
        picture = rect.size
    if spec.rotate % 180:
        picture = (picture[1], picture[0])
    if spec.trim is not None:
        return _trimmed(spec, output, ladder)
    if spec.fit is Fit.CONTAIN or spec.width is None or spec.height is None:
        return _contained(spec, output, picture, max_output_size, ladder)
    return _boxed(spec, output, picture, max_output_size, ladder)


def resolved_format(choice: FormatChoice, facts: OriginalFacts) -> OutputFormat:
    """The format the render writes (as ``render.header.output_format``):
    the one asked for, format=auto's AVIF giving way to its animated
    fallback for an animation, else the original's own."""
    if choice.negotiated and choice.format is OutputFormat.AVIF and facts.animated:
        return choice.animated_fallback or facts.own_format
    return choice.format or facts.own_format


def _contained(
    spec: RequestSpec,
    output: OutputFormat,
    picture: tuple[int, int],
    max_output_size: int,
    ladder: Ladder | None,
) -> Canonical:
    """contain (and one side of any box): named by the side that binds,
    which is the side resize makes exact; by no side when nothing is
    shrunk more than when no size is asked for (the output limit's box)."""
    limit = (max_output_size, max_output_size)
    whole = contain_size(picture, limit)
    if spec.width is None and spec.height is None:
        return Canonical(spec, output, whole)
    box = (spec.width or _UNBOUNDED, spec.height or _UNBOUNDED)
    produced = contain_size(picture, box)
    if ladder is not None:
        # The width it would produce, rounded up to a step: by the width.
        width = ladder.snap(produced[0], whole[0])
        as_whole = width >= whole[0]
        sides: tuple[int | None, int | None] = (width, None)
    else:
        as_whole = produced == whole
        sides = (produced[0], None) if _width_binds(picture, box) else (None, produced[1])
    if as_whole:
        if whole == picture:
            sides = (None, None)
        elif _width_binds(picture, limit):
            sides = (whole[0], None)
        else:
            sides = (None, whole[1])
        produced = whole
    elif ladder is not None:
        produced = contain_size(picture, (width, _UNBOUNDED))
    return Canonical(replace(spec, width=sides[0], height=sides[1]), output, produced)


def _boxed(
    spec: RequestSpec,
    output: OutputFormat,
    picture: tuple[int, int],
    max_output_size: int,
    ladder: Ladder | None,
) -> Canonical:
    """cover, fill, pad: the box as resize fits it inside the picture (we
    never upscale); on a ladder, widened to a step with its aspect kept."""
    assert spec.width is not None
    assert spec.height is not None
    width, height = spec.width, spec.height
    box = scaled_box(width, height, picture)
    if ladder is not None:
        # The widest box of this shape that the picture and the output limit
        # allow is the top step.
        scale = min(picture[0] / width, picture[1] / height, max_output_size / max(width, height))
        widest = (max(1, round(width * scale)), max(1, round(height * scale)))
        snapped = ladder.snap(box[0], widest[0])
        if snapped >= widest[0]:
            box = widest
        else:
            box = scaled_box(snapped, max(1, round(height * snapped / width)), picture)
    return Canonical(replace(spec, width=box[0], height=box[1]), output, box)


def _trimmed(spec: RequestSpec, output: OutputFormat, ladder: Ladder | None) -> Canonical:
    """trim's picture is only known from its pixels: the request's own
    sizes, its width snapped up on a ladder (the render never upscales, so
    the output is a step or the trimmed picture's width); a height alone
    cannot be snapped without the picture."""
    if ladder is None or spec.width is None:
        return Canonical(spec, output, None)
    snapped = ladder.snap(spec.width, _UNBOUNDED)
    if spec.fit is Fit.CONTAIN or spec.height is None:
        return Canonical(replace(spec, width=snapped, height=None), output, None)
    height = max(1, round(spec.height * snapped / spec.width))
    return Canonical(replace(spec, width=snapped, height=height), output, None)


def _width_binds(picture: tuple[int, int], box: tuple[int, int]) -> bool:
    """Whether contain's scale is set by the box's width (ties: the width,
    as ``render.geometry.contain_size`` decides)."""
    return box[0] / picture[0] <= box[1] / picture[1]
