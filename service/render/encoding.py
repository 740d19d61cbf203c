"""The lossy encoders' options, and which quantisation table a JPEG gets.

The wheel's libjpeg is mozjpeg (in libjpeg-turbo's mode), which carries
nine quantisation tables. Against SSIMULACRA2 on the corpus photos
(docs/quality.md, JPEG quantisation table), table 5 (Klein, Silverstein
and Carney's) scored as high as the JPEG standard's Annex K table at the
same q, or higher, below q90, in 3-7 % fewer bytes and the same encode
time (the table is all that changes). From q90 libvips keeps full chroma,
and there table 5 cost 5-13 % more bytes for less, so Annex K stays.

Annex K also stays where the output re-quantises an original JPEG's own
blocks with nearly its own table: the original made with Annex K at q0
(libjpeg's scaling, which most encoders use), its pixels unchanged (not
resized, cut, turned, flipped, filtered or converted), and the output at
q0 - 5 to q0 + 2. There Annex K scored 0.5-7 points higher on average,
the most at q0 itself (a re-encode that loses almost nothing); from q0 + 5
and at q0 - 10 and below, table 5 scored as high or higher, or the two
differed image by image. q=auto's encodes leave this out (auto_quality.py).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..formats import OutputFormat

if TYPE_CHECKING:
    from .context import RenderContext
    from .request import RenderPolicy

ANNEX_K_TABLE = 0
RESAMPLED_JPEG_TABLE = 5
FULL_CHROMA_FROM = 90  # libvips' jpegsave and heifsave stop subsampling chroma at this Q
# The qs around an Annex K original's own where Annex K scored higher.
KEEPS_ANNEX_K_BELOW = 5
KEEPS_ANNEX_K_ABOVE = 2


def jpeg_quant_table(quality: int, *, keeps_annex_k: bool) -> int:
    """mozjpeg's ``quant_table`` for a JPEG at ``quality``."""
    if keeps_annex_k or quality >= FULL_CHROMA_FROM:
        return ANNEX_K_TABLE
    return RESAMPLED_JPEG_TABLE


def jpeg_options(quality: int, *, keeps_annex_k: bool) -> dict[str, object]:
    """JPEG's save options but ``Q``: Huffman tables optimised per image
    (2 % fewer bytes for about 2 ms at 800 px) and the table above."""
    return {
        "optimize_coding": True,
        "quant_table": jpeg_quant_table(quality, keeps_annex_k=keeps_annex_k),
    }


def near_own_quality(own: int | None, quality: int) -> bool:
    """Whether ``quality`` is near enough an Annex K original's ``own`` q
    for Annex K to re-quantise its blocks better than table 5."""
    return own is not None and own - KEEPS_ANNEX_K_BELOW <= quality <= own + KEEPS_ANNEX_K_ABOVE


def requantises_original(context: RenderContext, quality: int) -> bool:
    """Whether a JPEG at ``quality`` re-quantises an Annex K original's own
    blocks at nearly its own q: the original's pixels as they are."""
    facts = context.facts
    return (
        near_own_quality(facts.jpeg_annex_k_quality, quality)
        and facts.orientation == 1
        and not facts.needs_colour_management
        and not context.from_mezzanine
        and not context.request.edits_pixels
        and (context.image.width, context.image.height) == (facts.width, facts.height)
    )


def encode_options(
    output: OutputFormat,
    policy: RenderPolicy,
    quality: int,
    keep: str = "none",
    *,
    keeps_annex_k: bool = False,
) -> dict[str, object]:
    """The save step's options for a lossy ``output`` at ``quality``."""
    options: dict[str, object] = {"keep": keep, "Q": quality}
    if output is OutputFormat.JPEG:
        options.update(jpeg_options(quality, keeps_annex_k=keeps_annex_k))
    elif output is OutputFormat.AVIF:
        options["effort"] = policy.avif_effort
    return options
