"""Client hints (``--client-hints``): a browser's width and DPR for a URL
that names neither.

Opt-in, and only with a width ladder: every hinted width is snapped to a
step (``canonical``), since an unsnapped hint lets any client mint a variant
per pixel. A hint is a header any client can set, so a malformed one is
ignored, never a 400, and one out of range is clamped.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal

# Every image response of a deployment with hints asks for them and varies
# by them, used or not: a cache must not give one browser's width to another.
ACCEPT_CH = "Sec-CH-Width, Sec-CH-DPR, Width, DPR"
VARY = "Sec-CH-Width, Sec-CH-DPR, Width, DPR"

_WIDTH = re.compile(r"[0-9]{1,6}", re.ASCII)
_DPR = re.compile(r"[0-9]{1,2}(?:\.[0-9]{1,3})?", re.ASCII)
_DPR_RANGE = (Decimal(1), Decimal(4))  # as the dpr parameter allows


@dataclass(frozen=True, slots=True)
class ClientHints:
    """What the hints say: the image's width in device pixels (already
    multiplied by the DPR: never multiplied again), and the DPR."""

    width: int | None = None
    dpr: Decimal | None = None


NO_HINTS = ClientHints()


def read_hints(headers: Mapping[str, str]) -> ClientHints:
    """The hints of a request's headers (Sec-CH- first, then the legacy
    names); what cannot be read is left out."""
    width = _first(headers, "Sec-CH-Width", "Width")
    dpr = _first(headers, "Sec-CH-DPR", "DPR")
    return ClientHints(
        width=int(width) if width is not None and _WIDTH.fullmatch(width) and int(width) else None,
        dpr=_clamped_dpr(dpr) if dpr is not None and _DPR.fullmatch(dpr) else None,
    )


def _first(headers: Mapping[str, str], *names: str) -> str | None:
    for name in names:
        value = headers.get(name)
        if value is not None:
            return value.strip()
    return None


def _clamped_dpr(text: str) -> Decimal:
    low, high = _DPR_RANGE
    return min(max(Decimal(text), low), high).normalize()
