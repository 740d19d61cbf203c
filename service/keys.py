"""Cache keys: one per distinct output, from everything that shapes it."""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Protocol

from .formats import OutputFormat
from .negotiate import FormatChoice
from .sources import Original
from .spec import WHITE, Fit, Flip, RequestSpec


class OriginalContent(Protocol):
    """What a key may need to know of an original's content, from its header
    (``render.HeaderFacts`` has it): the format it renders to when none is
    asked for, and whether it has alpha (which decides whether ``bg``
    flattens it into a JPEG)."""

    @property
    def own_format(self) -> OutputFormat: ...

    @property
    def has_alpha(self) -> bool: ...


@dataclass(frozen=True, slots=True)
class VariantKey:
    """The normalised description of one output, and its digest."""

    canonical: str

    @property
    def digest(self) -> str:
        return hashlib.sha256(self.canonical.encode()).hexdigest()

    @property
    def etag(self) -> str:
        return f'"{self.digest[:32]}"'


def info_key(*, output_settings: str, original: Original, info_version: int) -> VariantKey:
    """Key /info's document of ``original``: one per original (it takes no
    parameters), apart from every render's key by its first field."""
    return VariantKey("\n".join((f"info v{info_version}", output_settings, original.identity)))


def variant_key(
    *,
    output_settings: str,
    original: Original,
    spec: RequestSpec,
    choice: FormatChoice,
    quality: Mapping[OutputFormat, int],
    content: Callable[[], OriginalContent | None],
) -> VariantKey:
    """Key a render from the normalised spec and the format choice (the
    original's own format is fixed by its identity, so "original" suffices).

    Parameters that do not change the output are left out, so equivalent
    requests share one entry: quality only counts for lossy formats (all of
    the per-format defaults count when the format is not known yet), the
    background only for padding and where it flattens alpha into a JPEG.
    ``content`` tells what the original renders to and whether it has
    alpha, from its header; it is called only for the two rarer requests
    that need it (a ``q`` without a format, a coloured ``bg`` for a JPEG), so
    a plain request never reads more than the file's identity.
    """
    output_format = choice.format
    defaults = ",".join(f"{fmt.value}={quality[fmt]}" for fmt in OutputFormat)
    if spec.quality is not None and _quality_applies(output_format, content):
        quality_part = str(spec.quality)
    elif output_format is None or choice.negotiated:
        quality_part = defaults
    elif output_format.uses_quality:
        quality_part = str(quality[output_format])
    else:
        quality_part = "-"
    if spec.fit is Fit.PAD or _flattens_onto(spec.background, output_format, content):
        background = "%02x%02x%02x%02x" % spec.background  # noqa: UP031
    else:
        background = "-"
    fields = (
        output_settings,
        original.identity,
        f"w={spec.width}",
        f"h={spec.height}",
        f"fit={spec.fit.value}",
        f"gravity={spec.gravity.value}",
        f"f={choice.token}",
        f"q={quality_part}",
        f"bg={background}",
        *_operations(spec),
    )
    return VariantKey("\n".join(fields))


def _operations(spec: RequestSpec) -> tuple[str, ...]:
    """The operations' fields, each only when asked for: a plain request's
    key is the one it had before they existed, so no cache is lost."""
    fields = []
    if spec.crop is not None:
        crop = spec.crop
        fields.append(f"crop={crop.left},{crop.top},{crop.width},{crop.height}")
    if spec.rotate:
        fields.append(f"rotate={spec.rotate}")
    if spec.flip is not Flip.NONE:
        fields.append(f"flip={spec.flip.value}")
    if spec.focal_point is not None:
        fields.append(f"fp={spec.focal_point[0]},{spec.focal_point[1]}")
    if spec.trim is not None:
        fields.append(f"trim={spec.trim}")
    if spec.blur is not None:
        fields.append(f"blur={spec.blur}")
    if spec.sharpen is not None:
        fields.append(f"sharpen={spec.sharpen}")
    if spec.overlay is not None:
        fields.append(f"overlay={spec.overlay.name}@{spec.overlay.fingerprint}")
    return tuple(fields)


def _quality_applies(
    output_format: OutputFormat | None, content: Callable[[], OriginalContent | None]
) -> bool:
    if output_format is None:  # the original's own format
        own = content()
        return own is None or own.own_format.uses_quality  # unknown: keep it
    return output_format.uses_quality


def _flattens_onto(
    background: tuple[int, int, int, int],
    output_format: OutputFormat | None,
    content: Callable[[], OriginalContent | None],
) -> bool:
    """Whether a ``bg`` outside padding changes the output: only a JPEG of an
    original with alpha is flattened, and onto white unless told otherwise.
    With no format asked for it never is: an original with alpha keeps a
    format that has alpha (PNG when its own cannot be written)."""
    if output_format is None or output_format.has_alpha or background[:3] == WHITE[:3]:
        return False
    own = content()
    return own is None or own.has_alpha  # unknown: keep it
