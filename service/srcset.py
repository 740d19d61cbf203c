"""``/srcset``: the candidates of a responsive image, one per ladder step.

Pure: from the image parameters, the original's header facts and the
ladder, the URL and size of each candidate, as ``/picture`` will serve
them (each is keyed and rendered as its canonical request: asking for it is
what the srcset says). A candidate is never wider than the original allows
for the request's shape, whose widest is always the last one.
"""

from __future__ import annotations

import html
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal

from .canonical import Canonical
from .ladder import Ladder
from .spec import Fit, RequestSpec

# src, for browsers that take no srcset: the first candidate this wide
# (a desktop column at 1x), or the widest when the original is narrower.
SRC_WIDTH = 960
DEFAULT_SIZES = "100vw"


@dataclass(frozen=True, slots=True)
class Candidate:
    url: str
    width: int
    height: int


@dataclass(frozen=True, slots=True)
class Srcset:
    candidates: tuple[Candidate, ...]
    sizes: str
    alt: str
    placeholder: str | None = None  # a data URI shown until the image loads

    @property
    def src(self) -> Candidate:
        wide = [candidate for candidate in self.candidates if candidate.width >= SRC_WIDTH]
        return wide[0] if wide else self.candidates[-1]

    @property
    def attribute(self) -> str:
        """The ``srcset`` attribute's value."""
        return ", ".join(f"{candidate.url} {candidate.width}w" for candidate in self.candidates)

    def html(self) -> str:
        """A ready ``<img>``, every attribute escaped; lazy, async decoding,
        and sized, so the layout does not move when it loads."""
        src = self.src
        attributes = [
            ("src", src.url),
            ("srcset", self.attribute),
            ("sizes", self.sizes),
            ("width", str(src.width)),
            ("height", str(src.height)),
            ("alt", self.alt),
            ("loading", "lazy"),
            ("decoding", "async"),
        ]
        if self.placeholder is not None:
            # Shown behind the image until it is decoded.
            style = f"background-size:cover;background-image:url({self.placeholder})"
            attributes.append(("style", style))
        shown = " ".join(f'{name}="{html.escape(value, quote=True)}"' for name, value in attributes)
        return f"<img {shown}>"

    def to_json(self) -> dict[str, object]:
        src = self.src
        return {
            "src": src.url,
            "srcset": self.attribute,
            "candidates": [
                {"url": candidate.url, "width": candidate.width, "height": candidate.height}
                for candidate in self.candidates
            ],
            "sizes": self.sizes,
            "width": src.width,
            "height": src.height,
            "placeholder": self.placeholder,
            "html": self.html(),
        }


def candidates(
    parameters: Sequence[tuple[str, str]],
    base: RequestSpec,
    ladder: Ladder,
    resolve: Callable[[Sequence[tuple[str, str]]], Canonical],
    name: Callable[[Sequence[tuple[str, str]], Canonical], str],
) -> tuple[Candidate, ...]:
    """One candidate per step of ``ladder`` up to the widest the original
    allows. ``parameters`` are the image's (without a size of their own
    for contain; a box's ``w`` and ``h`` give its aspect), ``base`` their
    spec; ``resolve`` makes the canonical request of a step's parameters,
    ``name`` its URL."""
    sized = [(key, value) for key, value in parameters if key not in _SIZE_NAMES]
    # A preset scales its own height with a ladder w.
    preset = any(key == "preset" for key, _ in parameters)
    aspect = None if preset else _box_aspect(base)
    found: list[Candidate] = []
    for step in ladder.steps:
        size = [("w", str(step))]
        if aspect is not None:
            size.append(("h", str(max(1, _rounded(step * aspect)))))
        wanted = resolve(size + sized)
        if wanted.output_size is None:
            raise ValueError("the size of this output is only known from its pixels (trim)")
        width, height = wanted.output_size
        if found and width <= found[-1].width:
            break  # past the widest: that was the last
        found.append(Candidate(name(size + sized, wanted), width, height))
        if width < step:
            break  # the widest the original allows
    return tuple(found)


_SIZE_NAMES = frozenset({"w", "scalex", "h", "scaley", "dpr"})


def _box_aspect(base: RequestSpec) -> Decimal | None:
    """A box's height per unit of width, as the request's w and h give it
    (in CSS pixels: dpr scales both)."""
    if base.fit is Fit.CONTAIN or base.width is None or base.height is None:
        return None
    return Decimal(base.height) / Decimal(base.width)


def _rounded(value: Decimal) -> int:
    return int(value.quantize(Decimal(1), rounding=ROUND_HALF_UP))
