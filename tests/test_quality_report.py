"""The quality harness' answers and tables, from rows made up here."""

from __future__ import annotations

import math
from typing import Any

import pytest

from benchmarks.quality import analysis, report


def _row(  # noqa: PLR0917 - one positional per column of the rows below
    image: str,
    encoder: str,
    family: str,
    q: int | None,
    size: int,
    score: float,
    ms: float = 10.0,
    *,
    probe: bool = False,
) -> dict[str, Any]:
    return {"image": image, "kind": "photo", "width": 800, "height": 500, "encoder": encoder,
            "format": "jpeg", "family": family, "q": q, "bytes": size, "encode_ms": ms,
            "probe": probe, "ssimulacra2": score, "ssim": 0.9}  # fmt: skip


def _rows() -> list[dict[str, Any]]:
    rows = []
    for image in ("a.jpg", "b.jpg"):
        rows += [
            _row(image, "ours", "default", 80, 1000, 80.0),
            _row(image, "sweep", "default", 70, 800, 76.0),
            _row(image, "sweep", "default", 80, 1000, 80.0),
            _row(image, "sweep", "default", 90, 1500, 86.0),
            _row(image, "sweep", "trellis", 80, 900, 80.5, ms=12.0),
            _row(image, "sweep", "trellis", 90, 1300, 86.5, ms=12.0),
            _row(image, "sweep", "slow", 80, 700, 81.0, ms=50.0),
            _row(image, "sharp", "default", 80, 1200, 83.0),
            _row(image, "sweep", "default", 70, 200, 75.0, probe=True),
            _row(image, "sweep", "default", 80, 250, 79.5, probe=True),
            _row(image, "sweep", "default", 90, 400, 85.0, probe=True),
        ]
    return rows


def test_best_is_the_smallest_at_todays_score_within_the_time_limit() -> None:
    """trellis q80 wins: at least today's score, 1.2x the time; the smaller 'slow' is 5x."""
    found = analysis.best(_rows(), "photo", "jpeg")
    assert found is not None
    assert found.best is not None
    assert (found.best.family, found.best.q) == ("trellis", 80)
    assert found.best.bytes / found.today.bytes == pytest.approx(0.9)


def test_against_sharp_interpolates_our_bytes_at_its_score() -> None:
    """At sharp's 83.0, between our 80.0 (1000 B) and 86.0 (1500 B): halfway in log bytes."""
    found = analysis.against(_rows(), "photo", "jpeg", "default", "default")
    assert found.ratios["a.jpg"] == pytest.approx(math.sqrt(1000 * 1500) / 1200)
    assert found.total == pytest.approx(math.sqrt(1000 * 1500) / 1200)


def test_bytes_at_a_score_outside_the_curve_is_none() -> None:
    """No extrapolation: a score beyond the sweep has no bytes."""
    assert analysis.bytes_at([(70.0, 100), (80.0, 200)], 90.0) is None


def test_the_probe_reports_its_error_and_the_q_it_would_pick() -> None:
    """Probe 0.5-1 below full size: a negative error; it picks q90 where full size picks q80."""
    found = analysis.probe(_rows(), "jpeg")
    assert found is not None
    assert found.mean_error == pytest.approx(-2.5 / 3)
    assert found.q_agreement == (0, 2, 2)


def test_the_markdown_has_the_answers_the_sweeps_and_every_image() -> None:
    """The table writer: answers first, then sweeps, then each image's defaults."""
    results = {"started": "2026-12-02 17:00:00 UTC", "machine": {"cpus": 2}, "repeat": 3,
               "service_defaults": {"quality": {"jpeg": 80}, "avif_effort": 0},
               "ours_identical_to_service": {"a.jpg": {"jpeg": True}},
               "sharp": {"versions": {"sharp": "0.34.5"}}, "rows": _rows()}  # fmt: skip
    text = report.markdown(results)
    assert text.index("## Answers") < text.index("## Sweeps") < text.index("## Each image")
    assert "| photos, jpeg | q80 | trellis q80" in text
    assert "| b.jpg | jpeg | sharp | 80 | 1,200 | 10.0 | 83.0 | 0.9000 |" in text
    assert "on 1 of 1 opaque images" in text
