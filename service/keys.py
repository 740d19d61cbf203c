"""Cache keys: one per distinct output, from everything that shapes it."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from .formats import OutputFormat
from .negotiate import FormatChoice
from .sources import Original
from .spec import Fit, RequestSpec


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


def variant_key(
    *,
    pipeline_version: str,
    original: Original,
    spec: RequestSpec,
    choice: FormatChoice,
    quality: dict[OutputFormat, int],
) -> VariantKey:
    """Key a render from the normalised spec and the format choice (the
    original's own format is fixed by its identity, so "original" suffices).

    Parameters that do not change the output are left out, so equivalent
    requests share one entry: quality only counts for lossy formats (all of
    the per-format defaults count when the format is not known yet), the
    background only for padding and for formats that flatten alpha.
    """
    output_format = choice.format
    if spec.quality is not None and (output_format is None or output_format.uses_quality):
        quality_part = str(spec.quality)
    elif output_format is None or choice.negotiated:
        quality_part = ",".join(f"{fmt.value}={quality[fmt]}" for fmt in OutputFormat)
    elif output_format.uses_quality:
        quality_part = str(quality[output_format])
    else:
        quality_part = "-"
    uses_background = spec.fit is Fit.PAD or output_format is None or not output_format.has_alpha
    background = "%02x%02x%02x%02x" % spec.background if uses_background else "-"  # noqa: UP031
    fields = (
        pipeline_version,
        original.identity,
        f"w={spec.width}",
        f"h={spec.height}",
        f"fit={spec.fit.value}",
        f"gravity={spec.gravity.value}",
        f"f={choice.token}",
        f"q={quality_part}",
        f"bg={background}",
    )
    return VariantKey("\n".join(fields))
