"""format=auto: the Accept header matrix."""

from __future__ import annotations

import pytest

from service.formats import OutputFormat
from service.negotiate import negotiate_format


@pytest.mark.parametrize(
    ("accept", "chosen"),
    [
        ("image/avif,image/webp,image/apng,image/*,*/*;q=0.8", OutputFormat.AVIF),  # Chrome
        ("image/webp,*/*", OutputFormat.WEBP),
        ("image/avif;q=0,image/webp", OutputFormat.WEBP),  # explicitly refused AVIF
        ("image/avif;q=0.0", None),
        ("IMAGE/AVIF", OutputFormat.AVIF),
        ("image/*,*/*", None),  # wildcards count for neither
        ("*/*", None),
        ("", None),
        ("image/png,image/jpeg", None),
        ("image/webp;q=abc", None),
        # Weights float() reads but HTTP's qvalue grammar does not: refused.
        ("image/avif;q=nan,image/webp", OutputFormat.WEBP),
        ("image/avif;q=inf", None),
        ("image/avif;q=1e-3", None),
        ("image/avif;q=-1", None),
        ("image/avif;q=1.5", None),
        ("image/avif;q=0.001", OutputFormat.AVIF),
        ("image/avif;q=1.000", OutputFormat.AVIF),
        ("image/avif; Q=0.5", OutputFormat.AVIF),
        (";;,,", None),
    ],
)
def test_negotiation(accept: str, chosen: OutputFormat | None) -> None:
    assert negotiate_format(accept) is chosen
