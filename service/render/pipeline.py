"""The render: one original in, one encoded image written to a descriptor.

A render is the ordered ``STEPS`` over one ``RenderContext``. Each step is
one function of one module, does one thing, and is a no-op when it has
nothing to do (pad without fit=pad, flatten for a format with alpha), so a
new operation is one new module and one line here.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import pyvips

from ..errors import RenderTimeout, UnprocessableImage
from ..formats import OutputFormat
from .auto_quality import choose_quality
from .blur import blur
from .colour import to_srgb
from .context import RenderContext
from .crop import crop
from .failures import Deadline, describe, failure_of, release_images
from .flatten import flatten
from .header import HeaderFacts, choose_output
from .limits import check_limits
from .mezzanine import MezzanineUnusable, load
from .orient import orient
from .output import OutputWriteError
from .overlay import overlay
from .pad import pad
from .request import RenderPolicy, RenderRequest
from .resize import resize
from .rights import write_rights
from .save import save
from .sharpen import sharpen
from .trim import trim

Step = Callable[[RenderContext], None]

STEPS: tuple[Step, ...] = (
    choose_output,  # header: the output format and the frames kept
    check_limits,  # limits: side, pixels, scans, decode memory
    crop,  # crop: the region of the original to read (no pixels yet)
    trim,  # trim: decode whole, cut the uniform border away
    resize,  # resize: shrink-on-load to the fit mode's box, turned back for orient
    orient,  # orient: rotate, then flip, on the resized image
    to_srgb,  # colour: 8-bit sRGB or grey
    blur,  # blur: a Gaussian of the output pixels
    sharpen,  # sharpen: an unsharp mask of their lightness
    pad,  # pad: fit=pad's box
    overlay,  # overlay: a named watermark on the final canvas
    flatten,  # flatten: alpha onto bg for formats without it
    write_rights,  # rights: the creator and copyright fields, written anew
    choose_quality,  # auto_quality: q=auto's search, encoding as save would
    save,  # save: encode into the target
)


@dataclass(frozen=True, slots=True)
class RenderResult:
    format: OutputFormat
    width: int
    height: int  # per frame
    frames: int
    from_mezzanine: bool = False  # the resize read the original's mezzanine
    quality: int | None = None  # the q encoded at (lossy formats)


def render(
    policy: RenderPolicy,
    request: RenderRequest,
    facts: HeaderFacts,
    source_fd: int,
    target_fd: int,
    *,
    mezzanine: str | None = None,
) -> RenderResult:
    """Render the original open at ``source_fd`` (whose header said
    ``facts``) into ``target_fd``.

    Raises ``UnprocessableImage`` for anything about the original that stops
    the render: an undecodable, truncated, refused or over-limit original;
    ``RenderTimeout`` past the policy's deadline; ``OutputWriteError`` when
    the target's disk fails; ``MezzanineUnusable`` when ``mezzanine`` (the
    path of the original's mezzanine, render/mezzanine.py) was read and
    libvips failed (render again without it). Some decoders fail only in
    the middle of the pixels (HEVC in HEIF, old JPEG-in-TIFF), which is
    why the caller renders into a file and only then answers.
    """
    with Deadline(policy.timeout_seconds) as deadline:
        try:
            # The context (and the images it holds, each holding the original
            # open) lives only in _run's frame, which release_images frees.
            return _run(
                RenderContext(policy, request, facts, source_fd, target_fd, deadline), mezzanine
            )
        except MezzanineUnusable as failure:
            release_images(failure)
            if deadline.killed or deadline.passed():
                raise RenderTimeout(
                    f"the render took longer than {policy.timeout_seconds:g} s"
                ) from failure
            raise
        except (pyvips.Error, UnicodeDecodeError) as error:
            raise failure_of(error, deadline, policy.timeout_seconds) from error
        except (UnprocessableImage, OutputWriteError, RenderTimeout) as failure:
            # Refused from the header (over a limit), the target's disk
            # failed, or a step saw the deadline pass between libvips calls
            # (q=auto's search): the caller answers or retries, uncached.
            release_images(failure)
            raise


def _run(context: RenderContext, mezzanine: str | None) -> RenderResult:
    if mezzanine is not None and context.request.trim is None:
        # trim compares the original's own border pixels: never from it.
        context.mezzanine = load(mezzanine, context.facts)
        if context.mezzanine is None:
            raise MezzanineUnusable("the mezzanine is not one of this original")
    try:
        for step in STEPS:
            step(context)
    except pyvips.Error as error:
        if context.from_mezzanine:
            raise MezzanineUnusable(describe(error)) from error
        raise
    image = context.image
    return RenderResult(
        format=context.output,
        width=image.width,
        height=image.height // context.frames,
        frames=context.frames,
        from_mezzanine=context.from_mezzanine,
        quality=context.quality,
    )
