"""The suite's A/B of two commits (``benchmarks.run --compare-with``): the
earlier checkout runs as ``before`` in the same rounds, and the report gives
each commit's ratio to the baseline and after/before."""

from __future__ import annotations

from typing import Any

from benchmarks import report


def runs(*rps: float) -> list[dict[str, Any]]:
    return [
        {
            "rps": value,
            "latency_ms": {"p50": 10.0, "p90": 20.0, "p99": 30.0},
            "peak_rss_mib": 100.0,
            "peak_pss_mib": 90.0,
            "requests": 100,
            "statuses": {"200": 100},
            "client_cpu_percent": 5.0,
        }
        for value in rps
    ]


def test_before_gets_its_own_ratios_to_the_baseline() -> None:
    case = report.case_summary(
        {"service": runs(30, 33, 36), "before": runs(28, 30, 32), "baseline": runs(20, 20, 20)}
    )
    assert case["ratios"]["baseline"]["rps"] == 33 / 20
    assert case["before_ratios"]["baseline"]["rps"] == 30 / 20


def test_the_ab_table_lists_each_case_with_after_over_before() -> None:
    uncached = report.case_summary({"service": runs(33), "before": runs(30), "baseline": runs(20)})
    hits = report.case_summary({"service": runs(1000), "before": runs(1100), "baseline": runs(500)})
    lines = report.ab_lines({"uncached": {"4": uncached}, "cache_hits": hits})
    table = "\n".join(lines)
    assert "| uncached mix, c=4 | 1.65x | 1.50x | 1.10x |" in table
    assert "| cache hits, c=16 | 2.00x | 2.20x | 0.91x |" in table


def test_without_a_before_there_is_no_ab_table() -> None:
    case = report.case_summary({"service": runs(33), "baseline": runs(20)})
    assert "before_ratios" not in case
    assert report.ab_lines({"uncached": {"4": case}}) == []
