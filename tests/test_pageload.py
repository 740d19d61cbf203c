"""Scenario 9 of the benchmarks (benchmarks.pageload) end to end, tiny: the
real service on loopback, started as the suite starts it, twice.

The rest of the suite's plumbing is tested offline in test_benchmarks.py.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from benchmarks import competitors, pageload

SAMPLES = Path(competitors.ROOT) / "service" / "samples"
# 1411 and 640 px wide.
NAMES = ("retina.jpg", "rocket.jpg")


def test_a_tiny_page_load_counts_the_real_services_renders_entries_and_bytes(
    tmp_path: Path,
) -> None:
    """Every request answered; the counts come from /metrics and du. With
    --widths (where the service has it) the ladder's distinct outputs are
    retina's 320, 640, 960, 1280 and 1411 (1920 and 2560 capped at its
    width) and rocket's 320 and 640: 7 renders and entries, the page loads
    after the burst all hits. Without it, the service refuses the option
    at start, and the ladder variant is recorded as skipped."""
    workload = pageload.Workload.build(NAMES, 3)

    def start(name: str, options: Sequence[str]) -> competitors.Server:
        return competitors.start_service(
            str(SAMPLES), str(tmp_path), workers=1, name=name,
            extra_args=[*options, "--drain-seconds", "0"],
        )  # fmt: skip

    results = pageload.run(
        workload, runs=1, start=start, workdir=str(tmp_path), ladder=True, log=lambda _: None
    )
    plain = results["runs"]["plain"][0]
    assert plain["burst"]["statuses"] == {"200": 12}
    assert plain["page"]["statuses"] == {"200": 6}
    assert 7 <= plain["renders_burst"] <= plain["renders"] <= 18
    assert plain["cache_entries"] == plain["renders"]
    assert plain["du_bytes"] >= plain["cache_bytes"] > 0
    assert not (tmp_path / "pageload-0-plain-cache").exists()  # removed after its run
    if pageload.ladder_supported():
        ladder = results["runs"]["ladder"][0]
        assert ladder["page"]["statuses"] == {"200": 6}
        assert ladder["renders"] == ladder["renders_burst"] == ladder["cache_entries"] == 7
    else:
        assert "unrecognized arguments: --widths" in results["skipped"]["ladder"]
        assert "ladder" not in results["runs"]
