"""The lossy encoders' options, and which quantisation table a JPEG gets.

The wheel's libjpeg is mozjpeg (in libjpeg-turbo's mode), which carries
nine quantisation tables. Against SSIMULACRA2 on the corpus photos
(docs/quality.md, JPEG quantisation table), table 5 (Klein, Silverstein
and Carney's) scored as high as the JPEG standard's Annex K table at the
same q, or higher, below q90, in 3-7 % fewer bytes and the same encode
time (the table is all that changes). From q90 libvips keeps full chroma,
and there table 5 cost 8-13 % more bytes for half a point less, so Annex
K stays.

Annex K also stays where the render is the original JPEG's pixels on its
own 8x8 grid (not resized, cropped, trimmed or turned): most JPEGs were
made with Annex K's tables, and re-quantising the same blocks with the
same table loses almost nothing (a 512-px photo served at its own size
scored 93 at q80 with Annex K, 86 with table 5).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..formats import OutputFormat

if TYPE_CHECKING:
    from .context import RenderContext
    from .request import RenderPolicy

ANNEX_K_TABLE = 0
RESIZED_JPEG_TABLE = 5
FULL_CHROMA_FROM = 90  # libvips' jpegsave stops subsampling chroma at this Q


def jpeg_quant_table(quality: int, *, on_original_grid: bool) -> int:
    """mozjpeg's ``quant_table`` for a JPEG at ``quality``."""
    if on_original_grid or quality >= FULL_CHROMA_FROM:
        return ANNEX_K_TABLE
    return RESIZED_JPEG_TABLE


def jpeg_options(quality: int, *, original_grid: bool) -> dict[str, object]:
    """JPEG's save options but ``Q``: Huffman tables optimised per image
    (2 % fewer bytes for about 2 ms at 800 px) and the table above."""
    return {
        "optimize_coding": True,
        "quant_table": jpeg_quant_table(quality, on_original_grid=original_grid),
    }


def on_original_grid(context: RenderContext) -> bool:
    """Whether the render's pixels sit on a JPEG original's own blocks: the
    original JPEG, upright as stored, neither resized nor cut."""
    facts = context.facts
    return (
        facts.own_format is OutputFormat.JPEG
        and facts.orientation == 1
        and context.region is None
        and context.decoded is None  # trim cut it
        and not context.from_mezzanine
        and (context.image.width, context.image.height) == (facts.width, facts.height)
    )


def encode_options(
    output: OutputFormat,
    policy: RenderPolicy,
    quality: int,
    keep: str = "none",
    *,
    original_grid: bool = False,
) -> dict[str, object]:
    """The save step's options for a lossy ``output`` at ``quality``."""
    options: dict[str, object] = {"keep": keep, "Q": quality}
    if output is OutputFormat.JPEG:
        options.update(jpeg_options(quality, original_grid=original_grid))
    elif output is OutputFormat.AVIF:
        options["effort"] = policy.avif_effort
    return options
