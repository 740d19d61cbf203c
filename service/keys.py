"""Cache keys: one per distinct output, from everything that shapes it."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass

from .canonical import Canonical
from .formats import AUTO_QUALITY, OutputFormat, Quality
from .sources import Original
from .spec import Flip, RequestSpec


@dataclass(frozen=True, slots=True)
class VariantKey:
    """The normalised description of one output, and its digest."""

    canonical: str
    # Weak: the bytes of this output may differ, imperceptibly, between
    # renders (--mezzanine); the key, and so the cache entry, do not.
    weak: bool = False

    @property
    def digest(self) -> str:
        return hashlib.sha256(self.canonical.encode()).hexdigest()

    @property
    def etag(self) -> str:
        strong = f'"{self.digest[:32]}"'
        return "W/" + strong if self.weak else strong


def info_key(*, output_settings: str, original: Original, info_version: int) -> VariantKey:
    """Key /info's document of ``original``: one per original (it takes no
    parameters), apart from every render's key by its first field."""
    return VariantKey("\n".join((f"info v{info_version}", output_settings, original.identity)))


def variant_key(
    *,
    output_settings: str,
    original: Original,
    canonical: Canonical,
    quality: Mapping[OutputFormat, Quality],
    weak: bool = False,
    auto_quality_target: float | None = None,
) -> VariantKey:
    """Key a render from its canonical request (``canonical``: the sizes it
    produces, its format resolved, q and bg only where they shape it), so
    requests for one output share one entry. A q=auto variant (asked for,
    or the format's default) is keyed by its target, ``q=auto@80``: the
    q it is encoded at follows from the pixels and the target alone."""
    spec, output = canonical.spec, canonical.format
    if output.uses_quality:
        chosen = quality[output] if spec.quality is None else spec.quality
        quality_part = str(chosen)
        if chosen == AUTO_QUALITY:
            if auto_quality_target is None:
                raise ValueError("a q=auto variant needs its target to be keyed")
            quality_part = f"{AUTO_QUALITY}@{auto_quality_target:g}"
    else:
        quality_part = "-"
    fields = (
        output_settings,
        original.identity,
        f"w={spec.width}",
        f"h={spec.height}",
        f"fit={spec.fit.value}",
        f"gravity={spec.gravity.value}",
        f"f={output.value}",
        f"q={quality_part}",
        "bg=%02x%02x%02x%02x" % spec.background,  # noqa: UP031
        *_operations(spec),
    )
    return VariantKey("\n".join(fields), weak=weak)


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
