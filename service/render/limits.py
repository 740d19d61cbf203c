"""Refusals from the header, before any pixel is decoded.

Pure arithmetic on the header's facts: the side and pixel limits, the JPEG
scan limit and the whole-image decode limit. Each is a ``SourceTooLarge``
(422) with a one-line reason. The whole-image decode is the decoder's own
(``memory``) and, for a render that keeps the decoded original in memory
(``trim``), that image too: both count against ``--max-decode-bytes`` and
the decode budget.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..errors import SourceTooLarge
from .auto_quality import memory_bytes

if TYPE_CHECKING:
    from .context import RenderContext
    from .header import HeaderFacts
    from .request import RenderPolicy, RenderRequest

# The longest side we decode. libvips' line buffers grow with the width, not
# the pixel count: a 67 MP 16-bit PNG peaked at 90 MB as 8192², 330 MB at
# 65535 x 1024 and 4.1 GB at 1048640 x 64 (found by fuzzing). 32,768 keeps a
# render under ~260 MB and still takes phone panoramas (16128 x 4032).
MAX_SOURCE_SIDE = 32_768

# The most scans a progressive JPEG may have. libjpeg decodes every scan
# before the first pixel comes out, out of the render deadline's reach, and
# a crafted file is all scans of nothing (EOB runs): 2,647 of them in 959 KB
# held a render slot for 73 s at 100 MP. Encoders write 10 (libjpeg's
# default script) or fewer; libjpeg-turbo's own fuzzers stop at 500.
MAX_JPEG_SCANS = 256


def check_limits(context: RenderContext) -> None:
    """Step: refuse an original over any limit, for the frames it renders."""
    frames = context.frames
    whole = whole_decode_bytes(context.facts, context.request, frames, context.policy)
    check(context.facts, context.policy, frames=frames, decode_bytes=whole)


def whole_decode_bytes(
    facts: HeaderFacts,
    request: RenderRequest | None,
    frames: int,
    policy: RenderPolicy | None = None,
) -> int:
    """What a render of ``facts`` holds for the whole image at once: what
    its decoder holds; with ``trim``, the decoded frames, which the trim
    step keeps in memory; with q=auto, what its search holds (the output
    in memory and its scores: ``auto_quality.memory_bytes``)."""
    if request is None:
        return facts.decode_bytes
    need = facts.decode_bytes
    if request.trim is not None:
        need += facts.pixel_bytes * frames
    if policy is not None and frames == 1:
        need += memory_bytes(facts, request, policy)
    return need


def check(
    facts: HeaderFacts, policy: RenderPolicy, *, frames: int, decode_bytes: int | None = None
) -> None:
    """Every header limit; SourceTooLarge for the first one ``facts`` is over
    (``decode_bytes``: the render's whole-image decode, when it is more than
    the decoder's own)."""
    if max(facts.width, facts.height) > MAX_SOURCE_SIDE:
        raise SourceTooLarge(
            f"the original is {facts.width}x{facts.height}, over the limit of "
            f"{MAX_SOURCE_SIDE} px per side"
        )
    pixels = facts.width * facts.height * frames
    if pixels > policy.max_source_pixels:
        raise SourceTooLarge(
            f"the original has {pixels} pixels to process, over the limit of "
            f"{policy.max_source_pixels}"
        )
    if facts.jpeg_scans is not None and facts.jpeg_scans > MAX_JPEG_SCANS:
        raise SourceTooLarge(f"the original is a JPEG in over {MAX_JPEG_SCANS} scans, the limit")
    limit = policy.max_decode_bytes
    need = facts.decode_bytes if decode_bytes is None else decode_bytes
    if limit is not None and need > limit:
        raise SourceTooLarge(
            f"the original needs {need / 1e6:.0f} MB of memory to decode, "
            f"over the limit of {limit / 1e6:.0f} MB"
        )


def decode_reservation(
    facts: HeaderFacts, policy: RenderPolicy, request: RenderRequest | None = None
) -> int:
    """What the decode budget reserves for a render of ``facts``: its
    whole-image decode memory, or 0 when the render will be refused from the
    header (it must not wait for, nor hold, room it will never use).
    Without the ``request``, one frame and the decoder's own memory."""
    frames = 1
    if request is not None:
        # header imports this module for its scan limit: imported here.
        from .header import frames_to_render, output_format  # noqa: PLC0415

        frames = frames_to_render(facts, output_format(request, facts), policy.max_frames)
    need = whole_decode_bytes(facts, request, frames, policy)
    try:
        check(facts, policy, frames=frames, decode_bytes=need)
    except SourceTooLarge:
        return 0
    return need
