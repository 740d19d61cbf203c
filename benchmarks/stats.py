"""Statistics of repeated runs: medians, spread, ratios, percentiles."""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Summary:
    """Median of several runs and how far they spread."""

    median: float
    low: float
    high: float
    runs: int

    @property
    def spread(self) -> float:
        """(max - min) / median: 0.1 means the runs spanned 10 % of the median."""
        if self.median == 0:
            return 0.0
        return (self.high - self.low) / self.median

    def as_dict(self) -> dict[str, float | int]:
        return {
            "median": self.median,
            "min": self.low,
            "max": self.high,
            "runs": self.runs,
            "spread": round(self.spread, 4),
        }


def summarize(values: Sequence[float]) -> Summary:
    if not values:
        raise ValueError("no values to summarize")
    return Summary(statistics.median(values), min(values), max(values), len(values))


def ratio(numerator: float, denominator: float) -> float | None:
    """numerator / denominator, or None when it has no meaning."""
    if denominator == 0 or math.isnan(numerator) or math.isnan(denominator):
        return None
    return numerator / denominator


def paired_ratios(ours: Sequence[float], theirs: Sequence[float]) -> list[float]:
    """Run-by-run ratios of two competitors measured alternately in the same run."""
    return [r for a, b in zip(ours, theirs, strict=True) if (r := ratio(a, b)) is not None]


def percentile(values: Sequence[float], fraction: float) -> float:
    """Nearest-rank percentile (fraction in [0, 1]) of the values."""
    if not values:
        raise ValueError("no values")
    if not 0 <= fraction <= 1:
        raise ValueError("fraction must be within [0, 1]")
    ordered = sorted(values)
    rank = max(1, math.ceil(fraction * len(ordered)))
    return ordered[rank - 1]


def format_summary(summary: Summary, digits: int = 1) -> str:
    """'57.3 (52.0-60.1)': the median, then the range of the runs."""
    return f"{summary.median:.{digits}f} ({summary.low:.{digits}f}-{summary.high:.{digits}f})"


def format_ratio(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.2f}x"
