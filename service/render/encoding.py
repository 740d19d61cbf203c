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

from collections.abc import Sequence
from typing import TYPE_CHECKING

from ..formats import OutputFormat
from ..spec import Flip

if TYPE_CHECKING:
    from .context import RenderContext
    from .request import RenderPolicy

ANNEX_K_TABLE = 0
RESAMPLED_JPEG_TABLE = 5
FULL_CHROMA_FROM = 90  # libvips' jpegsave stops subsampling chroma at this Q
# The qs around an Annex K original's own where Annex K scored higher.
KEEPS_ANNEX_K_BELOW = 5
KEEPS_ANNEX_K_ABOVE = 2

# The JPEG standard's (ITU T.81) Annex K luminance table, in natural order.
_ANNEX_K_LUMA = (
    16, 11, 10, 16, 24, 40, 51, 61,
    12, 12, 14, 19, 26, 58, 60, 55,
    14, 13, 16, 24, 40, 57, 69, 56,
    14, 17, 22, 29, 51, 87, 80, 62,
    18, 22, 37, 56, 68, 109, 103, 77,
    24, 35, 55, 64, 81, 104, 113, 92,
    49, 64, 78, 87, 103, 121, 120, 101,
    72, 92, 95, 98, 112, 100, 103, 99,
)  # fmt: skip
# The natural index of each coefficient in the zig-zag order a DQT holds.
_ZIGZAG = (
    0, 1, 8, 16, 9, 2, 3, 10, 17, 24, 32, 25, 18, 11, 4, 5,
    12, 19, 26, 33, 40, 48, 41, 34, 27, 20, 13, 6, 7, 14, 21, 28,
    35, 42, 49, 56, 57, 50, 43, 36, 29, 22, 15, 23, 30, 37, 44, 51,
    58, 59, 52, 45, 38, 31, 39, 46, 53, 60, 61, 54, 47, 55, 62, 63,
)  # fmt: skip


def annex_k_luma(quality: int) -> tuple[int, ...]:
    """The luma table libjpeg writes for Annex K at ``quality`` (its
    ``jpeg_set_quality`` scaling, baseline), in a DQT's zig-zag order."""
    scale = 5000 // quality if quality < 50 else 200 - 2 * quality
    return tuple(min(255, max(1, (_ANNEX_K_LUMA[i] * scale + 50) // 100)) for i in _ZIGZAG)


_ANNEX_K_QUALITY = {annex_k_luma(q): q for q in range(100, 0, -1)}  # equal tables: the lower q


def annex_k_quality(luma: Sequence[int] | None) -> int | None:
    """The q of an original JPEG whose luma table is Annex K's at that q;
    None for any other table."""
    return None if luma is None else _ANNEX_K_QUALITY.get(tuple(luma))


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
    facts, request = context.facts, context.request
    return (
        near_own_quality(facts.jpeg_annex_k_quality, quality)
        and facts.orientation == 1
        and not facts.needs_colour_management
        and not context.from_mezzanine
        and (context.image.width, context.image.height) == (facts.width, facts.height)
        and request.crop is None
        and request.trim is None
        and request.rotate == 0
        and request.flip is Flip.NONE
        and request.blur is None
        and request.sharpen is None
        and request.overlay is None
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
