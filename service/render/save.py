"""Save: the encoder and its options per output format; metadata stripped
but for what the rights step set (``context.keep``)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pyvips

from ..formats import OutputFormat
from .encoding import encode_options, requantises_original
from .output import DescriptorWriter, OutputWriteError
from .request import quality_for

if TYPE_CHECKING:
    from .context import RenderContext

# PNG row filters for opaque photographs (png_save_options).
_PHOTO_PNG_FILTERS = "none|sub|avg"


def save(context: RenderContext) -> None:
    """Step: encode the image into the render's target descriptor (q=auto's
    search encoded it already: its bytes are written as they are)."""
    output, image = context.output, context.image
    writer = DescriptorWriter(context.target_fd)
    if context.encoded is not None:
        if writer.write(context.encoded) < 0 and writer.error is not None:
            raise OutputWriteError(writer.error) from writer.error
        return
    options: dict[str, object] = {"keep": context.keep}
    if output.uses_quality:
        if context.quality is None:
            quality = quality_for(output, context.policy, context.request)
            if not isinstance(quality, int):
                raise RuntimeError("q=auto reached the save step unchosen")
            context.quality = quality
        keeps_annex_k = output is OutputFormat.JPEG and requantises_original(
            context, context.quality
        )
        options = encode_options(output, context.policy, context.quality, context.keep,
                                 keeps_annex_k=keeps_annex_k)  # fmt: skip
    elif output is OutputFormat.PNG:
        # By what the original is, not the output: fit=pad adds an alpha band
        # to an opaque photo, which still compresses as a photo.
        facts = context.facts
        options.update(png_save_options(has_alpha=facts.has_alpha, drawn=facts.drawn))
    target = pyvips.TargetCustom()
    target.on_write(writer.write)
    # libvips reports progress while it computes pixels; past the deadline
    # we kill the pipeline. (An encoder busy with a frame, AVIF's, finishes
    # that frame first: the effort default keeps that bounded.)
    context.deadline.watch(image)
    try:
        image.write_to_target(target, output.suffix, **options)
    except pyvips.Error:
        if writer.error is not None:
            raise OutputWriteError(writer.error) from writer.error
        raise


def png_save_options(*, has_alpha: bool, drawn: bool) -> dict[str, object]:
    """The zlib level and row filters for a PNG, by what the original is.

    Measured with ``python -m benchmarks.lab.tuning --only png`` on 124 PNGs
    at 800 px (photos, wallpapers, icons, screenshots, charts, overlays),
    against libpng's adaptive choice among all five filters (``all``, which
    Pillow uses):

    - unfiltered, the 13 opaque drawn images were 13 % smaller than with
      ``all`` and the 93 with alpha 1 % smaller, at under half its encode
      CPU (on images with alpha the filters' heuristic misjudges flat
      transparent areas: one photo with transparent corners doubled);
    - the 18 opaque photographs need filters (unfiltered is 30 % bigger),
      but three are enough: libpng choosing among none, sub and average
      matched ``all`` (+0.25 %) at 0.82x its CPU.

    zlib stays at level 6, libvips' and Pillow's default.
    """
    if has_alpha or drawn:
        return {"compression": 6, "filter": "none"}
    return {"compression": 6, "filter": _PHOTO_PNG_FILTERS}
