"""The width ladder (``--widths``): the output widths a deployment serves.

A viewport-driven page asks for every width from 300 to 2,560 px; no cache
absorbs that, and an unsigned deployment lets anyone fill it. With a ladder
every output width is one of its steps or the original's own width: a
requested width is rounded up to the next step (past the last step, the
last step), and never beyond what the original has, which is always the top
step. Pure arithmetic: ``canonical`` applies it once the original's size is
known.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass

# The ladder /srcset uses when --widths is not set: phones at 1x-2x, laptops,
# 1080p and 1440p screens (Next.js's deviceSizes are close to it).
EXAMPLE_WIDTHS = (320, 640, 960, 1280, 1920, 2560)


@dataclass(frozen=True, slots=True)
class Ladder:
    """Ascending, distinct widths in pixels."""

    steps: tuple[int, ...]

    def __post_init__(self) -> None:
        if not self.steps or list(self.steps) != sorted(set(self.steps)) or self.steps[0] < 1:
            raise ValueError("a ladder is one or more ascending, distinct widths")

    def snap(self, width: int, top: int) -> int:
        """``width`` rounded up to the next step (above the last step: the
        last step), but never beyond ``top``, the widest the original allows."""
        at = bisect.bisect_left(self.steps, width)
        step = self.steps[at] if at < len(self.steps) else self.steps[-1]
        return max(1, min(step, top))

    def widths_up_to(self, top: int) -> tuple[int, ...]:
        """Every width an original ``top`` px wide is served at: the steps
        below it, then ``top`` itself (so a srcset never lists a width the
        original does not have, and always lists the original's own)."""
        below = tuple(step for step in self.steps if step < top)
        return (*below, top)


def parse_widths(text: str) -> tuple[int, ...]:
    """``320,640,960``: the widths, ascending, or ValueError with a reason."""
    parts = [part.strip() for part in text.split(",")]
    if not all(part.isascii() and part.isdigit() and len(part) <= 6 for part in parts):
        raise ValueError(f"expected comma-separated widths in pixels, got {text!r}")
    widths = sorted({int(part) for part in parts})
    if widths[0] < 1:
        raise ValueError("each width must be at least 1 pixel")
    if len(widths) > 64:
        raise ValueError("at most 64 widths")
    return tuple(widths)
