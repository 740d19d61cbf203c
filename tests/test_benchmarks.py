"""The benchmark suite's own logic: URL lists, statistics, wrk output, reports.

Offline and quick: nothing here starts a server, runs wrk or times anything.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from benchmarks import (
    competitors,
    corpus,
    debian,
    libcost,
    node,
    origin,
    pageload,
    proctree,
    report,
    urls,
    wrk,
)
from benchmarks import run as bench_run
from benchmarks.lab import cores, instructions, origin_fetch
from benchmarks.libcost import output_format
from benchmarks.run import library_environment, rotated
from benchmarks.stats import (
    format_ratio,
    format_summary,
    paired_ratios,
    percentile,
    ratio,
    summarize,
)
from service import loadtest
from service.process.allocator import TUNABLES, is_glibc

# -- URL lists ------------------------------------------------------------------


def test_pool_never_repeats_a_variant_across_takes() -> None:
    pool = urls.VariantPool(["a.jpg", "b.png", "c.jpg"], widths=range(600, 610))
    first = pool.take(25)
    second = pool.take(25)  # crosses into the height salt after 30
    everything = first + second
    assert len(set(everything)) == len(everything) == 50
    assert pool.used == 50


def test_pool_walks_images_round_robin_then_widths() -> None:
    pool = urls.VariantPool(["a.jpg", "b.png"], widths=[600, 601])
    taken = pool.take(5)
    assert [(v.name, v.width, v.height) for v in taken] == [
        ("a.jpg", 600, None),
        ("b.png", 600, None),
        ("a.jpg", 601, None),
        ("b.png", 601, None),
        ("a.jpg", 600, 4095),  # widths used up: a height that never constrains
    ]


def test_spread_orders_every_value_once_and_each_stretch_covers_the_range() -> None:
    widths = urls.spread(range(600, 1100))
    assert sorted(widths) == list(range(600, 1100))
    # 40 consecutive widths (a short run's share of one image) average near
    # the middle; in ascending order the first 40 would average 619.5.
    for start in range(0, 460, 20):
        stretch = widths[start : start + 40]
        assert abs(sum(stretch) / 40 - 849.5) < 20
        assert max(stretch) - min(stretch) > 400


def test_default_pool_spreads_its_widths() -> None:
    assert urls.spread(range(600, 1100)) == urls.DEFAULT_WIDTHS
    assert [v.width for v in urls.VariantPool(["a.jpg"]).take(3)] == urls.DEFAULT_WIDTHS[:3]


def test_in_process_loop_renders_the_pools_variants_from_its_offset() -> None:
    asked: list[tuple[str, int, str]] = []

    def render(path: str, width: int, fmt: str) -> bytes:
        asked.append((path, width, fmt))
        if len(asked) == 5:
            raise StopIteration
        return b""

    with pytest.raises(StopIteration):
        libcost.loop(render, ["a.jpg", "b.png"], fmt="original", seconds=60.0, offset=1)
    pool = urls.VariantPool(["a.jpg", "b.png"])
    assert asked == [(v.name, v.width, "original") for v in map(pool.variant, range(1, 6))]


def test_a_stretch_loop_renders_exactly_the_answered_variants_from_its_lane() -> None:
    asked: list[tuple[str, int]] = []

    def render(path: str, width: int, fmt: str) -> bytes:
        asked.append((path, width))
        return b""

    paths = ["a.jpg", "b.png", "c.jpg"]
    lanes = [
        libcost.stretch_loop(render, paths, fmt="original", start=40, count=5, lane=lane)
        for lane in (0, 2)
    ]
    assert [lane["renders"] for lane in lanes] == [5, 5]
    pool = urls.VariantPool(paths)
    stretch = [(v.name, v.width) for v in map(pool.variant, range(40, 45))]
    assert asked[:5] == stretch
    assert asked[5:] == stretch[2:] + stretch[:2]  # the same work from the third on


def test_pool_passes_the_format_and_rejects_empty_input() -> None:
    assert {v.format for v in urls.VariantPool(["a.jpg"]).take(3, "webp")} == {"webp"}
    with pytest.raises(ValueError, match="needs images"):
        urls.VariantPool([])


def test_the_same_variant_in_each_competitors_syntax() -> None:
    variant = urls.Variant("dir/a b.jpg", 800, 4095, "webp")
    assert urls.url_path("service", variant) == "/picture/dir/a%20b.jpg?w=800&h=4095&format=webp"
    assert (
        urls.url_path("baseline", variant)
        == "/picture/dir/a%20b.jpg?scalex=800&scaley=4095&encoding=webp"
    )
    assert (
        urls.url_path("thumbor", variant)
        == "/unsafe/fit-in/800x4095/filters:format(webp)/dir/a%20b.jpg"
    )
    plain = urls.Variant("a.jpg", 640)
    assert urls.url_path("service", plain) == "/picture/a.jpg?w=640"
    assert urls.url_path("baseline", plain) == "/picture/a.jpg?scalex=640"
    assert urls.url_path("thumbor", plain) == "/unsafe/fit-in/640x0/a.jpg"
    with pytest.raises(ValueError, match="unknown competitor"):
        urls.url_path("nginx", plain)


def test_fixed_variants_are_one_per_image() -> None:
    variants = urls.fixed_variants(["a.jpg", "b.png"], 400)
    assert [(v.name, v.width) for v in variants] == [("a.jpg", 400), ("b.png", 400)]


def test_paths_files_round_trip_and_accept_full_urls(tmp_path: Path) -> None:
    """What the suite writes, image-factory loadtest reads back."""
    target = tmp_path / "list.paths"
    assert urls.write_paths(str(target), ["/picture/a.jpg?w=1", "/picture/b.png?w=2"]) == 2
    assert loadtest.read_paths(str(target)) == ["/picture/a.jpg?w=1", "/picture/b.png?w=2"]
    mixed = tmp_path / "mixed.txt"
    mixed.write_text(
        "# my URLs\n\nhttp://img.example:8080/picture/x.jpg?w=3\npicture/y.jpg\nhttp://h\n"
    )
    assert loadtest.read_paths(str(mixed)) == ["/picture/x.jpg?w=3", "/picture/y.jpg", "/"]
    with pytest.raises(ValueError, match="not a request path"):
        urls.write_paths(str(target), ["relative"])
    (tmp_path / "empty").write_text("# nothing\n")
    with pytest.raises(loadtest.UsageError, match="no request paths"):
        loadtest.read_paths(str(tmp_path / "empty"))


def test_corpus_covers_what_the_issue_asks() -> None:
    kinds = " ".join(entry.kind for entry in corpus.CORPUS)
    for needed in ("baseline", "progressive", "PNG photo", "with alpha", "46 MP"):
        assert needed in kinds
    names = [entry.name for entry in corpus.CORPUS]
    assert len(names) == len(set(names))
    assert corpus.FOUR_MP in corpus.mix_names()
    assert set(corpus.LARGEST) <= set(names)
    assert "kleiber-46mp.png" not in corpus.mix_names()
    assert all(e.source.split(":")[0] in ("deb", "wheel") for e in corpus.CORPUS)


def test_output_format_follows_the_request_or_the_original() -> None:
    assert output_format("x/a.JPG", "original") == "jpeg"
    assert output_format("a.png", "original") == "png"
    assert output_format("a.png", "jpg") == "jpeg"
    assert output_format("a.jpeg", "avif") == "avif"


# -- statistics -------------------------------------------------------------------


def test_summary_median_range_and_spread() -> None:
    summary = summarize([10.0, 12.0, 11.0, 30.0])
    assert summary.median == 11.5
    assert (summary.low, summary.high, summary.runs) == (10.0, 30.0, 4)
    assert summary.spread == pytest.approx(20 / 11.5)
    assert summary.as_dict()["spread"] == pytest.approx(1.7391, abs=1e-4)
    assert format_summary(summarize([1.0, 2.0, 3.0])) == "2.0 (1.0-3.0)"
    with pytest.raises(ValueError, match="no values"):
        summarize([])


def test_ratios_and_their_formatting() -> None:
    assert ratio(30.0, 10.0) == 3.0
    assert ratio(1.0, 0.0) is None
    assert ratio(float("nan"), 1.0) is None
    assert paired_ratios([20.0, 30.0], [10.0, 0.0]) == [2.0]
    with pytest.raises(ValueError, match="argument"):
        paired_ratios([1.0], [1.0, 2.0])
    assert format_ratio(2.345) == "2.35x"
    assert format_ratio(None) == "n/a"


def test_nearest_rank_percentiles() -> None:
    values = [float(v) for v in range(1, 101)]
    assert percentile(values, 0.5) == 50
    assert percentile(values, 0.99) == 99
    assert percentile(values, 1.0) == 100
    assert percentile(values, 0.0) == 1
    assert percentile([7.0], 0.9) == 7
    with pytest.raises(ValueError, match="fraction"):
        percentile(values, 1.5)


# -- wrk --------------------------------------------------------------------------

WRK_TEXT = """\
Running 1s test @ http://127.0.0.1:18183/picture/none.jpg
  1 threads and 2 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency   674.52us  232.69us   3.61ms   84.55%
    Req/Sec     2.99k   289.85     3.38k    70.00%
  Latency Distribution
     50%  608.00us
     75%  759.00us
     90%    0.93ms
     99%    1.41s
  2974 requests in 1.00s, 740.60KB read
  Socket errors: connect 0, read 3, write 0, timeout 7
  Non-2xx or 3xx responses: 2974
Requests/sec:   2973.37
Transfer/sec:    740.44KB
"""

WRK_JSON = (
    'WRK_JSON {"requests": 2163, "duration_us": 1100090, "bytes": 9110245, '
    '"errors": {"connect": 0, "read": 0, "write": 0, "status": 1408, "timeout": 0}, '
    '"latency_us": {"min": 305, "mean": 1022.6, "max": 4929, "stdev": 477.1, '
    '"p50": 907, "p90": 1616, "p99": 2505}, "statuses": {"404": 1408, "200": 755}, '
    '"cache": {"hit": 755, "miss": 0}, "wraps": 2162, "issued": 2164}'
)


def test_parse_wrk_report_text() -> None:
    result = wrk.parse_text(WRK_TEXT)
    assert result.requests == 2974
    assert result.seconds == pytest.approx(1.0)
    assert result.rps == pytest.approx(2973.37)
    assert result.latency_ms["mean"] == pytest.approx(0.67452)
    assert result.latency_ms["max"] == pytest.approx(3.61)
    assert result.latency_ms["p50"] == pytest.approx(0.608)
    assert result.latency_ms["p90"] == pytest.approx(0.93)
    assert result.latency_ms["p99"] == pytest.approx(1410.0)
    assert result.errors == {"connect": 0, "read": 3, "write": 0, "timeout": 7, "status": 2974}
    with pytest.raises(ValueError, match="not a wrk report"):
        wrk.parse_text("Running 1s test\n")


def test_parse_wrk_script_json_line() -> None:
    result = wrk.parse_json_line("Running 1s test @ x\n" + WRK_JSON + "\n")
    assert result.requests == 2163
    assert result.seconds == pytest.approx(1.10009)
    assert result.rps == pytest.approx(2163 / 1.10009)
    assert result.latency_ms["p50"] == pytest.approx(0.907)
    assert result.latency_ms["p99"] == pytest.approx(2.505)
    assert result.statuses == {"404": 1408, "200": 755}
    assert result.non_2xx == 1408
    assert (result.cache_hits, result.cache_misses, result.wraps) == (755, 0, 2162)
    result.client_cpu_seconds = 0.55
    assert result.client_cpu_percent == pytest.approx(50, rel=0.01)
    assert result.as_dict()["rps"] == pytest.approx(1966.21, abs=0.01)
    with pytest.raises(ValueError, match="no WRK_JSON"):
        wrk.parse_json_line("Requests/sec: 1\n")


@pytest.mark.parametrize(
    ("text", "ms"),
    [("812.00us", 0.812), ("1.43ms", 1.43), ("2.01s", 2010.0), ("1.00m", 60000.0)],
)
def test_wrk_durations(text: str, ms: float) -> None:
    assert wrk.parse_duration_ms(text) == pytest.approx(ms)


def test_wrk_command_and_script() -> None:
    argv = wrk.command(
        "http://127.0.0.1:1", "s.lua", "p.txt", concurrency=16, seconds=4.6, threads=2
    )
    assert argv[:4] == ["wrk", "-t2", "-c16", "-d5s"]
    assert argv[-5:] == ["s.lua", "http://127.0.0.1:1", "--", "p.txt", "2"]
    assert "--latency" in argv
    assert wrk.threads_for(1, cores=2) == 1
    assert wrk.threads_for(16, cores=2) == 2
    # The script's JSON keys are the ones parse_json_line reads.
    for key in ("WRK_JSON", "duration_us", "latency_us", "statuses", "wraps", "X-Cache"):
        assert key in wrk.LUA_SCRIPT


# -- process trees ----------------------------------------------------------------


def test_parse_proc_stat_with_a_tricky_command_name() -> None:
    fields = ["S", "42"] + ["0"] * 9 + ["150", "50"] + ["0"] * 30
    line = "1234 (we ird) name)) " + " ".join(fields)
    parent, cpu = proctree.parse_stat(line)
    assert parent == 42
    assert cpu == pytest.approx(200 / proctree._TICKS)


def test_tree_of_this_process_includes_itself() -> None:
    import os  # noqa: PLC0415

    assert proctree.tree(os.getpid())[0] == os.getpid()


# -- reports ----------------------------------------------------------------------


def _run(rps: float, rss: float, p50: float = 100.0, p99: float = 180.0) -> dict[str, Any]:
    return {
        "rps": rps,
        "requests": int(rps * 4),
        "latency_ms": {"p50": p50, "p90": p50 * 1.5, "p99": p99},
        "peak_rss_mib": rss,
        "peak_pss_mib": rss * 0.9,
        "statuses": {"200": int(rps * 4)},
        "client_cpu_percent": 1.0,
        "server_cpu_ms_per_request": 60.0,
    }


def _results() -> dict[str, Any]:
    return {
        "started": "2026-01-01T00:00:00",
        "plan": {"runs": 3, "seconds": 4},
        "machine": {"cpus": 2, "cpu_model": "test"},
        "libcost": {
            "mix_speedup": 1.5,
            "mix_ms_total": {"vips": 100.0, "pillow": 150.0},
            "inprocess_rps": {"vips": 20.0, "service": 25.0, "pillow": 16.0},
            "inprocess_runs": {},
            "per_image": {
                "kleiber-46mp.png": {
                    "vips": {"ms_median": 500.0, "peak_rss_mib": 80.0, "idle_rss_mib": 30.0},
                    "service": {"ms_median": 510.0, "peak_rss_mib": 50.0, "idle_rss_mib": 30.0},
                    "pillow": {"ms_median": 900.0, "peak_rss_mib": 230.0, "idle_rss_mib": 20.0},
                    "speedup": 1.8,
                }
            },
        },
        "uncached": {
            "4": {
                "service": [_run(19, 300), _run(20, 310), _run(21, 320)],
                "baseline": [_run(10, 250), _run(11, 260), _run(9, 240)],
                "thumbor": [_run(8, 400), _run(9, 410), _run(10, 390)],
            },
            "16": {
                "service": [_run(20, 350)] * 3,
                "baseline": [_run(10, 300)] * 3,
            },
        },
        "latency_4mp": {"service": [_run(30, 100, 100, 150), _run(30, 100, 100, 250)] * 2},
        "cache_hits": {
            "service": [_run(1500, 200)] * 3,
            "baseline": [_run(1000, 150)] * 3,
        },
    }


def test_case_summary_takes_medians_and_ratios_of_medians() -> None:
    summary = report.summarize_all(_results())
    case = summary["uncached"]["4"]
    assert case["service"]["rps"]["median"] == 20
    assert case["baseline"]["rps"]["median"] == 10
    assert case["ratios"]["baseline"]["rps"] == pytest.approx(2.0)
    assert case["ratios"]["baseline"]["rps_paired_min"] == pytest.approx(20 / 11)
    assert case["ratios"]["baseline"]["rps_paired_max"] == pytest.approx(21 / 9)
    assert case["ratios"]["thumbor"]["rps"] == pytest.approx(20 / 9)
    assert case["ratios"]["baseline"]["peak_rss"] == pytest.approx(310 / 250)
    assert case["service"]["requests"] == 4 * (19 + 20 + 21)


def test_targets_are_judged_from_the_same_run() -> None:
    found = {t["target"]: t for t in report.summarize_all(_results())["targets"]}
    # The raw ratio comes from the in-process loops (same widths as the load):
    # 20 / 16; the 800-px per-image table's 1.5 is reported beside it.
    share = found["uncached c=4 mix: service/baseline vs raw pyvips/Pillow ratio (same widths)"]
    assert share["value"] == pytest.approx(2.0 / 1.25)
    assert share["met"] is True
    at_800 = found["uncached c=4 mix: service/baseline vs raw ratio at 800 px (per-image table)"]
    assert at_800["value"] == pytest.approx(2.0 / 1.5)
    assert found["uncached c=4 mix: service vs in-process pyvips throughput"]["value"] == 1.0
    own_path = found["uncached c=4 mix: service vs its render path in process throughput"]
    assert own_path["value"] == pytest.approx(20 / 25)
    assert own_path["met"] is False
    assert found["moonshot: uncached c=4 mix vs baseline"]["met"] is True
    assert found["uncached c=4 mix vs thumbor"]["met"] is True
    assert found["4 MP JPEG alone c=4: service p99 / p50"]["value"] == pytest.approx(2.0)
    assert found["cache hits c=16 vs baseline"]["value"] == pytest.approx(1.5)
    memory = found["peak RSS of the tree, c=16 over the mix, vs baseline"]
    assert memory["value"] == pytest.approx(350 / 300)
    assert memory["met"] is False
    own = found["46 MP PNG per-render peak RSS above idle, pyvips / Pillow"]
    assert own["value"] == pytest.approx(50 / 210)
    assert own["met"] is True
    service = found["46 MP PNG per-render peak RSS, service path / Pillow (whole process)"]
    assert service["value"] == pytest.approx(50 / 230)
    assert service["met"] is True
    whole = found["46 MP PNG per-render peak RSS, pyvips / Pillow (whole process)"]
    assert whole["met"] is False


def test_markdown_tables_carry_every_case_and_ratio() -> None:
    text = report.markdown(_results())
    assert "| uncached mix, c=4 | 20.0 (19.0-21.0) | 10.0 (9.0-11.0) | 9.0 (8.0-10.0) " in text
    assert "| 2.00x | 2.22x |" in text
    assert (
        "| cache hits, c=16 | 1500 (1500-1500) | 1000 (1000-1000) | - | - | 1.50x | n/a | n/a |"
        in text
    )
    assert "**Targets of issue 4**" in text
    assert "| kleiber-46mp.png | 500 | 510 | 900 | 1.80x | 80 | 50 | 230 |" in text
    # a results file round-trips through JSON and renders the same
    assert report.markdown(json.loads(json.dumps(_results()))) == text


def test_pool_runs_through_many_height_salts() -> None:
    pool = urls.VariantPool(["a.jpg", "b.jpg"], widths=range(600, 1100))
    variants = pool.take(20_000)
    assert len(set(variants)) == 20_000
    assert min(v.height or 4096 for v in variants) == 4096 - 19


def test_cpu_efficiency_is_the_inverse_ratio_of_cpu_per_request() -> None:
    results = _results()
    for run in results["uncached"]["4"]["baseline"]:
        run["server_cpu_ms_per_request"] = 120.0
    summary = report.summarize_all(results)
    assert summary["uncached"]["4"]["ratios"]["baseline"]["cpu_efficiency"] == pytest.approx(2.0)
    found = {t["target"]: t for t in summary["targets"]}
    robust = found["uncached c=4 mix: baseline/service CPU per request vs raw ratio (noise-robust)"]
    assert robust["value"] == pytest.approx(2.0 / 1.25)
    assert "| uncached mix, c=4 | 60.0 (60.0-60.0) | 120.0 (120.0-120.0) |" in report.markdown(
        results
    )


def test_cpu_targets_use_the_in_process_loops_cpu_per_render() -> None:
    """With CPU measured in the loops, the noise-robust targets compare CPU to CPU."""
    results = _results()
    results["libcost"]["inprocess_cpu_ms_per_render"] = {
        "vips": 100.0,
        "service": 54.0,
        "pillow": 150.0,
    }
    for run in results["uncached"]["4"]["baseline"]:
        run["server_cpu_ms_per_request"] = 120.0
    found = {t["target"]: t for t in report.summarize_all(results)["targets"]}
    robust = found["uncached c=4 mix: baseline/service CPU per request vs raw ratio (noise-robust)"]
    assert robust["value"] == pytest.approx((120 / 60) / (150 / 100))
    own = found["uncached c=4 mix: service's render path CPU in process / over HTTP (noise-robust)"]
    assert own["value"] == pytest.approx(54 / 60)
    assert own["met"] is True
    assert "service path 25.0 (54.0 ms CPU each)" in report.markdown(results)


def test_across_runs_puts_each_runs_value_beside_the_median() -> None:
    first, second, third = _results(), _results(), _results()
    second["started"], third["started"] = "run-2", "run-3"
    for run in second["uncached"]["4"]["service"]:
        run["rps"] = 30.0  # c=4 vs baseline: 2.0, 3.0, 2.0 -> median 2.0
    del third["cache_hits"]
    table = report.across_runs([first, second, third])
    assert "| target or ratio | 2026-01-01T00:00:00 | run-2 | run-3 | median |" in table
    assert "| moonshot: uncached c=4 mix vs baseline | 2.00 | 3.00 | 2.00 | 2.00 |" in table
    assert "| cache hits c=16, req/s vs baseline | 1.50 | 1.50 | - | 1.50 |" in table


def test_the_service_path_is_measured_with_the_services_allocator_settings(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for name in ("GLIBC_TUNABLES", "MALLOC_ARENA_MAX", "MALLOC_MMAP_THRESHOLD_", "LD_PRELOAD"):
        monkeypatch.delenv(name, raising=False)

    assert "GLIBC_TUNABLES" not in library_environment("vips")
    assert "GLIBC_TUNABLES" not in library_environment("pillow")
    expected = TUNABLES if is_glibc() else None
    assert library_environment("service").get("GLIBC_TUNABLES") == expected


def test_repetitions_rotate_who_runs_first() -> None:
    assert [rotated(["a", "b", "c"], r) for r in range(4)] == [
        ["a", "b", "c"],
        ["b", "c", "a"],
        ["c", "a", "b"],
        ["a", "b", "c"],
    ]


def _paired_results() -> dict[str, Any]:
    """Loop i ran right after repetition i of the c=4 load; the machine
    drifted between repetitions, differently for each side."""
    results = _results()
    load = results["uncached"]["4"]
    for runs, values in ((load["service"], (20, 12, 18)), (load["baseline"], (10, 8, 11))):
        for run_, rps in zip(runs, values, strict=True):
            run_["rps"] = rps
    loops = {
        "vips": (25, 15, 20),
        "service": (25, 12, 20),
        "pillow": (20, 10, 15),
    }
    cpu = {"vips": 100.0, "service": 54.0, "pillow": 150.0}
    results["libcost"]["inprocess_runs"] = {
        library: [{"rps": rps, "cpu_ms_per_render": cpu[library]} for rps in values]
        for library, values in loops.items()
    }
    # Server CPU per request, by repetition: the baseline's drifts.
    for run_, ms in zip(load["baseline"], (120.0, 90.0, 150.0), strict=True):
        run_["server_cpu_ms_per_request"] = ms
    results["libcost"]["inprocess_paired_with"] = "uncached c=4"
    return results


def test_targets_against_paired_loops_are_medians_of_run_by_run_ratios() -> None:
    results = _paired_results()
    shares = report.paired_shares(results)
    # (20/10)/(25/20) = 1.6, (12/8)/(15/10) = 1.0, (18/11)/(20/15) = 1.227
    assert shares["raw"] == pytest.approx((18 / 11) / (20 / 15))
    # The ratio of medians, (18/10)/(20/15) = 1.35, is what pairing avoids.
    assert shares["raw"] != pytest.approx((18 / 10) / (20 / 15))
    assert shares["vips"] == pytest.approx(0.8)  # 20/25, 12/15, 18/20
    assert shares["own"] == pytest.approx(0.9)  # 20/25, 12/12, 18/20
    # (120/60)/1.5 = 1.33, (90/60)/1.5 = 1.0, (150/60)/1.5 = 1.67: baseline over service
    assert shares["raw_cpu"] == pytest.approx((120 / 60) / (150 / 100))
    assert shares["own_cpu"] == pytest.approx(54 / 60)
    found = {t["target"]: t for t in report.summarize_all(results)["targets"]}
    name = "uncached c=4 mix: service/baseline vs raw pyvips/Pillow ratio (same widths)"
    assert found[name]["value"] == pytest.approx(shares["raw"])
    assert "medians of those run-by-run ratios" in report.markdown(results)


def test_unpaired_loops_keep_the_ratio_of_medians() -> None:
    results = _paired_results()
    results["libcost"]["inprocess_paired_with"] = None
    results["libcost"]["inprocess_rps"] = {"vips": 20.0, "service": 20.0, "pillow": 15.0}
    assert report.paired_shares(results) == {}
    found = {t["target"]: t for t in report.summarize_all(results)["targets"]}
    name = "uncached c=4 mix: service/baseline vs raw pyvips/Pillow ratio (same widths)"
    # medians: service 18, baseline 10; loops 20 and 15
    assert found[name]["value"] == pytest.approx((18 / 10) / (20 / 15))
    assert found["uncached c=4 mix: service vs in-process pyvips throughput"]["value"] == 0.9


def test_the_loops_pair_with_the_c4_series_only_when_it_runs() -> None:
    assert bench_run.pairs_loops(bench_run.FULL, None)
    assert bench_run.pairs_loops(bench_run.QUICK, {"uncached"})
    assert not bench_run.pairs_loops(bench_run.FULL, {"libcost"})
    assert not bench_run.pairs_loops(replace(bench_run.FULL, concurrencies=(1, 16)), None)
    assert f"uncached c={bench_run.PAIRED_CONCURRENCY}" == report.LOOPS_PAIRED_WITH


def _replace_loops(
    monkeypatch: pytest.MonkeyPatch, on_loop: Callable[[str, tuple[int, int] | None], None]
) -> None:
    """In-process loops that call ``on_loop(library, stretch)`` and measure
    5 renders/s at 100 ms each; no venv is set up."""

    def loop(
        self: bench_run.Bench,
        python: str,
        library: str,
        mix: list[str],
        *,
        stretch: tuple[int, int] | None,
    ) -> dict[str, float]:
        on_loop(library, stretch)
        return {"rps": 5.0, "cpu_ms_per_render": 100.0}

    monkeypatch.setattr(bench_run.Bench, "inprocess_throughput", loop)
    monkeypatch.setattr(competitors, "ensure_venv", lambda name: "python")


def test_the_loops_follow_the_c4_repetitions_they_are_paired_with(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    events: list[tuple[str, str]] = []

    def load(
        self: bench_run.Bench, server: SimpleNamespace, paths: list[str], **options: object
    ) -> dict[str, Any]:
        events.append((str(options["label"]), server.name))
        # The service answers 40 requests a run, the baseline 20.
        return {**_run(10 if server.name == "service" else 5, 100), "wraps": False}

    stretches: list[tuple[str, tuple[int, int] | None]] = []

    def record(library: str, stretch: tuple[int, int] | None) -> None:
        events.append(("loop", library))
        stretches.append((library, stretch))

    monkeypatch.setattr(bench_run.Bench, "load", load)
    _replace_loops(monkeypatch, record)
    # At most 30 of the answered variants: the service's 40 are cut, the baseline's 20 not.
    plan = replace(bench_run.QUICK, runs=3, loop_runs=2, concurrencies=(1, 4), loop_variants=30)
    bench = bench_run.Bench(plan, str(tmp_path), str(tmp_path), pair_loops=True)
    bench.servers = [SimpleNamespace(name="service"), SimpleNamespace(name="baseline")]  # type: ignore[list-item]
    bench.uncached()
    c4 = [event for event in events if not event[0].startswith("uncached-c1")]
    assert c4 == [
        ("uncached-c4-0", "service"), ("uncached-c4-0", "baseline"),
        ("loop", "vips"), ("loop", "service"), ("loop", "pillow"),
        ("uncached-c4-1", "baseline"), ("uncached-c4-1", "service"),
        ("loop", "service"), ("loop", "pillow"), ("loop", "vips"),
        ("uncached-c4-2", "service"), ("uncached-c4-2", "baseline"),
    ]  # fmt: skip
    assert all(label.startswith("uncached-c1") for label, _ in events[:6])
    libcost_results = bench.results["libcost"]
    assert isinstance(libcost_results, dict)
    assert libcost_results["inprocess_paired_with"] == "uncached c=4"
    assert {len(runs) for runs in libcost_results["inprocess_runs"].values()} == {2}
    # Each loop renders what its server answered in the repetition before
    # it: pyvips and the service's path the service's, Pillow the
    # baseline's; each after the c=1 series' three runs of the same budget.
    first, second = (
        3 * bench_run.variants_per_run(plan.seconds),
        4 * bench_run.variants_per_run(plan.seconds),
    )
    assert stretches == [
        ("vips", (first, 30)), ("service", (first, 30)), ("pillow", (first, 20)),
        ("service", (second, 30)), ("pillow", (second, 20)), ("vips", (second, 30)),
    ]  # fmt: skip


def test_a_failing_loop_keeps_the_load_series_and_the_loops_that_ran(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    def load(
        self: bench_run.Bench, server: SimpleNamespace, paths: list[str], **options: object
    ) -> dict[str, Any]:
        return {**_run(10, 100), "wraps": False}

    calls: list[str] = []

    def die_at_the_second(library: str, stretch: tuple[int, int] | None) -> None:
        calls.append(library)
        if len(calls) == 2:
            raise RuntimeError("the loop's process died")

    monkeypatch.setattr(bench_run.Bench, "load", load)
    _replace_loops(monkeypatch, die_at_the_second)
    plan = replace(bench_run.QUICK, runs=3, loop_runs=3, concurrencies=(1, 4, 16))
    bench = bench_run.Bench(plan, str(tmp_path), str(tmp_path), pair_loops=True)
    bench.servers = [SimpleNamespace(name="service"), SimpleNamespace(name="baseline")]  # type: ignore[list-item]
    bench.uncached()
    assert calls == ["vips", "service"]  # no loops after the failure
    table = bench.results["uncached"]
    assert isinstance(table, dict)
    assert {len(runs) for case in table.values() for runs in case.values()} == {3}
    assert sorted(table) == ["1", "16", "4"]
    assert "died" in bench.failures["loops"]
    libcost_results = bench.results["libcost"]
    assert isinstance(libcost_results, dict)
    assert libcost_results["inprocess_runs"] == {"vips": [{"rps": 5.0, "cpu_ms_per_render": 100.0}]}


@pytest.mark.parametrize(
    ("argv", "latest"),
    [
        ([], "latest"),
        (["--quick"], "latest-quick"),
        (["--only", "uncached"], None),
        (["--concurrencies", "4"], None),
        (["--runs", "5"], None),
        (["--no-thumbor"], None),
        (["--no-ipx"], None),
        (["--service-env", "GLIBC_TUNABLES="], None),
        (["--service-workers", str(bench_run.CORES + 1)], None),
        (["--quick", "--only", "hits"], None),
        (["--corpus", "/elsewhere"], None),
    ],
)
def test_only_a_whole_run_replaces_the_results_the_readmes_quote(
    argv: list[str], latest: str | None
) -> None:
    assert bench_run.latest_name(bench_run.build_parser().parse_args(argv)) == latest


def test_the_report_says_which_cases_a_quick_run_measures_once() -> None:
    def header(plan: bench_run.Plan) -> str:
        fields = {name: getattr(plan, name) for name in plan.__dataclass_fields__}
        return report.markdown({"plan": fields}).splitlines()[0]

    assert "(1 of the largest images, 1 render per image in process)" in header(bench_run.QUICK)
    assert "runs of each case, " in header(bench_run.FULL)


def test_psnr_of_the_shrink_quality_comparison() -> None:
    """Identical images are inf dB apart; an error of 1 in every sample of
    8-bit images is 20 log10(255) = 48.13 dB; thumbor's steps (draft to the
    output size) are no better than Pillow's thumbnail on a real photo."""
    import pyvips  # noqa: PLC0415

    from benchmarks.lab.shrink_quality import measure, psnr  # noqa: PLC0415
    from benchmarks.libcost import service_renderer  # noqa: PLC0415

    grey = pyvips.Image.black(64, 48, bands=3) + 100
    assert psnr(grey.cast("uchar"), grey.cast("uchar")) == float("inf")
    assert psnr(grey.cast("uchar"), (grey + 1).cast("uchar")) == pytest.approx(48.13, abs=0.01)
    photo = str(Path(__file__).parent.parent / "service" / "samples" / "retina.jpg")
    reduction, _, baseline, thumbor = measure(service_renderer(), photo, 120)
    assert reduction > 4
    assert thumbor <= baseline


# -- instruction counts -------------------------------------------------------------


def test_callgrind_totals_prefer_the_closing_line() -> None:
    header = "version: 1\ncreator: callgrind-3.19.0\nevents: Ir\n"
    assert (
        instructions.callgrind_totals(
            header + "summary: 25796131\nfn=main\n5 3\ntotals: 25801180\n"
        )
        == 25801180
    )
    assert instructions.callgrind_totals(header + "summary: 42\nfn=main\n5 3\n") == 42
    with pytest.raises(ValueError, match="not a callgrind output"):
        instructions.callgrind_totals(header + "fn=main\n5 3\n")


def test_the_measured_stretch_is_the_newest_numbered_dump(tmp_path: Path) -> None:
    for name in ("callgrind.41", "callgrind.41.1", "callgrind.41.10", "callgrind.41.2",
                 "callgrind.410.3", "callgrind.41.log"):  # fmt: skip
        (tmp_path / name).write_text("summary: 1\n")
    assert instructions.latest_dump(str(tmp_path), 41) == (10, str(tmp_path / "callgrind.41.10"))
    assert instructions.latest_dump(str(tmp_path), 7) is None


def test_a_dump_that_writes_nothing_new_is_a_failure(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """callgrind_control exits 0 when it reached no process: only a new
    numbered file says that a dump happened."""
    written: list[int] = []

    def control(argv: list[str], **options: object) -> SimpleNamespace:
        pid = int(argv[-1])
        if pid != 13:  # 13 is not under valgrind: nothing is written
            number = len([w for w in written if w == pid]) + 1
            (tmp_path / f"callgrind.{pid}.{number}").write_text(f"totals: {pid * 100 + number}\n")
            written.append(pid)
        return SimpleNamespace(
            stdout=f"Error: Callgrind task with PID {pid} not detected.\n", stderr=""
        )

    monkeypatch.setattr("benchmarks.lab.instructions.subprocess.run", control)
    callgrind = instructions.Callgrind(str(tmp_path))
    assert callgrind.dump([11, 12]) == 1101 + 1201
    assert callgrind.dump([11, 12]) == 1102 + 1202  # the new dumps, not the first ones
    with pytest.raises(RuntimeError, match="could not dump process 13: Error: Callgrind task"):
        callgrind.dump([11, 13])


def test_background_work_is_subtracted_at_its_idle_rate() -> None:
    # 5,000 instructions in 100 s, of which the timers ran 20 a second.
    assert instructions.net_of_background(5_000, 100.0, idle=400, idle_seconds=20.0) == 3_000
    assert instructions.net_of_background(100, 100.0, idle=400, idle_seconds=20.0) == 0


def test_instruction_ratios_follow_the_targets_direction() -> None:
    counts = {
        side: instructions.Count(side, per_render * 4, renders=4, processes=1, seconds=1.0,
                                 background_per_second=0.0)
        for side, per_render in {
            "vips": 100, "service-path": 105, "service": 110, "pillow": 170, "baseline": 187,
        }.items()
    }  # fmt: skip
    got = instructions.ratios(counts)
    assert got == {
        "service_vs_vips": round(100 / 110, 3),
        "service_vs_own_path": round(105 / 110, 3),
        "own_path_vs_vips": round(100 / 105, 3),
        "raw_pillow_over_vips": 1.7,
        "baseline_over_service": 1.7,
        "share_of_raw": 1.0,
    }
    only_http = {k: counts[k] for k in ("service", "baseline")}
    assert instructions.ratios(only_http) == {"baseline_over_service": 1.7}


def test_instruction_table_lists_sides_and_goals() -> None:
    results = {
        "started": "2026-12-01T19:00:00",
        "variants": 2,
        "commit": "abc1234",
        "counts": {
            "vips": {"instructions": 4e8, "renders": 2, "processes": 1, "background_per_second": 0},
            "service": {
                "instructions": 4.4e8, "renders": 2, "processes": 3, "background_per_second": 2.5e5,
            },
        },
        "ratios": {"service_vs_vips": 0.909},
        "failures": {"baseline": "RuntimeError('boom')"},
    }  # fmt: skip
    table = instructions.markdown(results)
    assert "| vips | 200.0 | 0.00 | 1 |" in table
    assert "| service | 220.0 | 0.25 | 3 |" in table
    assert "| service over HTTP vs in-process pyvips | 0.909 | 0.90 |" in table
    assert "pillow" not in table.split("| ratio |")[0]
    assert "commit abc1234" in table
    assert "Not measured: baseline: RuntimeError('boom')" in table


def test_the_handshake_loop_renders_only_between_the_two_lines(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    calls: list[tuple[str, int, str]] = []
    lines = iter(["go\n", "end\n"])

    def readline() -> str:
        calls.append(("<line>", 0, ""))
        return next(lines)

    def render(path: str, width: int, fmt: str) -> bytes:
        calls.append((path, width, fmt))
        return b"x" * width

    monkeypatch.setattr(sys, "stdin", SimpleNamespace(readline=readline))
    result = libcost.handshake(render, ["a.jpg", "b.png", "a.jpg"], fmt="original", count=3)
    pool = urls.spread_variants(["a.jpg", "b.png", "a.jpg"], 3)
    assert calls == [
        ("a.jpg", 64, "original"),
        ("b.png", 64, "original"),
        ("<line>", 0, ""),
        *[(v.name, v.width, "original") for v in pool],
        ("<line>", 0, ""),
    ]
    assert result == {"renders": 3, "output_bytes": sum(v.width for v in pool)}
    printed = capsys.readouterr().out.splitlines()
    assert printed[0] == "ready"
    assert json.loads(printed[1]) == result


def test_a_missing_tool_without_root_names_its_package(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(shutil, "which", lambda name: None)
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    with pytest.raises(RuntimeError, match="apt-get install valgrind"):
        debian.ensure_package("valgrind", "valgrind")


def test_paired_loop_processes_each_render_the_whole_stretch_from_their_own_lane(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    launched: list[list[str]] = []

    class FakeProcess:
        def __init__(self, argv: list[str], **options: object) -> None:
            launched.append(argv)
            self.renders = int(argv[argv.index("--stretch") + 1]) if "--stretch" in argv else 7

        def communicate(self) -> tuple[str, str]:
            return json.dumps({"renders": self.renders, "seconds": 2.0, "cpu_seconds": 3.0}), ""

    monkeypatch.setattr("benchmarks.run.subprocess.Popen", FakeProcess)
    monkeypatch.setattr(bench_run, "CORES", 2)
    bench = bench_run.Bench(bench_run.QUICK, str(tmp_path), str(tmp_path), pair_loops=True)
    figures = bench.inprocess_throughput("python", "vips", ["a.jpg", "b.png"], stretch=(300, 9))
    lanes = [argv[argv.index("--offset") :] for argv in launched]
    assert lanes == [
        ["--offset", "300", "--stretch", "9", "--lane", "0"],
        ["--offset", "300", "--stretch", "9", "--lane", "4"],
    ]
    assert figures == {"rps": 9.0, "cpu_ms_per_render": 333.33, "pool_start": 300, "stretch": 9}
    launched.clear()
    unpaired = bench.inprocess_throughput("python", "vips", ["a.jpg", "b.png"])
    assert all("--loop-seconds" in argv and "--stretch" not in argv for argv in launched)
    assert "stretch" not in unpaired


# -- same moment, one CPU each (benchmarks.lab.cores) -----------------------------


def test_core_pairings_are_parsed_and_unknown_ones_refused() -> None:
    assert cores.parse_pairings("service:vips, baseline:pillow,") == [
        ("service", "vips"),
        ("baseline", "pillow"),
    ]
    with pytest.raises(ValueError, match="unknown pairing 'service:pillow'"):
        cores.parse_pairings("service:pillow")
    with pytest.raises(ValueError, match="no pairing"):
        cores.parse_pairings(" , ")


def test_each_round_swaps_the_two_cpus_of_server_and_loop() -> None:
    assert cores.two_cpus({5, 3, 9}) == (3, 5)
    with pytest.raises(RuntimeError, match="two CPUs"):
        cores.two_cpus({0})
    assert list(cores.placements((3, 5), rounds=2)) == [(3, 5), (5, 3), (3, 5), (5, 3)]


def test_service_environment_items_keep_empty_values() -> None:
    # GLIBC_TUNABLES= (empty) is how the service's allocator settings are opted out of.
    assert cores.parse_environment(["GLIBC_TUNABLES=", "A=b=c"]) == {
        "GLIBC_TUNABLES": "",
        "A": "b=c",
    }
    with pytest.raises(ValueError, match="NAME=VALUE"):
        cores.parse_environment(["GLIBC_TUNABLES"])


def test_mean_width_is_of_the_variants_each_side_got_through() -> None:
    pool = urls.VariantPool(["a.jpg", "b.png"], widths=[600, 700, 800])
    # From index 1: b@600, a@700, b@700.
    assert cores.mean_width(pool, 1, 3) == pytest.approx(2000 / 3)
    assert cores.mean_width(pool, 1, 0) == 0.0


def _pair(server: str, loop: str, server_rps: float, loop_rps: float, **more: float) -> cores.Pair:
    fields: dict[str, Any] = {
        "server_cpu": 0, "loop_cpu": 1, "requests": 100, "server_cpu_ms": 100.0,
        "client_cpu_ms": 0.5, "renders": 100, "loop_renders_in_all": 110, "loop_cpu_ms": 90.0,
        "server_mean_width": 850.0, "loop_mean_width": 860.0,
    }  # fmt: skip
    fields.update(more)
    return cores.Pair(server=server, loop=loop, server_rps=server_rps, loop_rps=loop_rps, **fields)


def test_core_pairs_are_summarized_per_pairing_by_median_and_range() -> None:
    pairs = [
        _pair("service", "vips", 8.0, 10.0, server_cpu_ms=125.0, loop_cpu_ms=100.0),
        _pair("service", "vips", 9.0, 10.0, server_cpu_ms=110.0, loop_cpu_ms=99.0),
        _pair("service", "vips", 9.5, 10.0, server_cpu_ms=100.0, loop_cpu_ms=98.0),
        _pair("baseline", "pillow", 5.0, 5.0),
    ]
    got = cores.summary(pairs)
    assert list(got) == ["service:vips", "baseline:pillow"]
    vips = got["service:vips"]
    assert vips["pairs"] == 3
    assert vips["rate_ratio"] == {"median": 0.9, "low": 0.8, "high": 0.95}
    assert vips["cpu_ratio"] == {"median": 0.9, "low": 0.8, "high": 0.98}
    assert vips["server_cpu_ms"] == 110.0
    assert vips["loop_cpu_ms"] == 99.0
    assert got["baseline:pillow"]["rate_ratio"] == {"median": 1.0, "low": 1.0, "high": 1.0}

    table = cores.markdown(
        {"summary": got, "seconds": 20.0, "commit": "abc1234", "service_environment": {}}
    )
    assert "| service:vips | 3 | 0.90 (0.80-0.95) | 0.90 (0.80-0.98) | 110.0 / 99.0 |" in table
    assert "| baseline:pillow | 1 | 1.00 (1.00-1.00) |" in table
    assert "Commit abc1234; service environment as the service sets it." in table


def test_the_start_on_stdin_loop_warms_every_image_up_before_it_says_ready(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    calls: list[str] = []

    def readline() -> str:
        calls.append("<line>")
        return "go\n"

    def render(path: str, width: int, fmt: str) -> bytes:
        calls.append(f"{path}@{width}:{fmt}")
        return b""

    monkeypatch.setattr(sys, "stdin", SimpleNamespace(readline=readline))
    libcost.wait_for_start(render, ["a.jpg", "b.png", "a.jpg"], fmt="original")
    assert calls == ["a.jpg@64:original", "b.png@64:original", "<line>"]
    assert capsys.readouterr().out == "ready\n"


def test_a_pair_runs_the_server_load_and_the_loop_pinned_to_their_cpus(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    started: dict[str, Any] = {}
    launched: list[list[str]] = []
    events: list[str] = []  # the order of what the pair did
    # The loop rendered 20 in 2 s, 0.1 s (0.095 s of CPU) each; the server answered 16.
    marks = [(0.1 * n, 0.095 * n) for n in range(1, 21)]

    class FakeServer:
        pid = 4242
        base_url = "http://127.0.0.1:1"

        def wait_ready(self) -> None:
            started["ready"] = True

        def stop(self) -> None:
            started["stopped"] = True

    def start_service(originals: str, workdir: str, **options: object) -> FakeServer:
        started.update(options)
        return FakeServer()

    class FakeLoop:
        def __init__(self, argv: list[str], **options: object) -> None:
            launched.append(argv)
            started["loop_env"] = options["env"]
            self.stdin = SimpleNamespace(write=events.append, flush=lambda: None)
            done = {"renders": 20, "seconds": 2.05, "cpu_seconds": 1.95, "marks": marks}
            self.stdout = iter(["ready\n", json.dumps(done)])

        def __enter__(self) -> FakeLoop:
            return self

        def __exit__(self, *exc: object) -> None:
            return None

        def kill(self) -> None:
            raise AssertionError("the loop was killed")

    cpu = iter([10.0, 12.0])
    loads: list[dict[str, Any]] = []

    def fake_wrk(base_url: str, paths_file: str, **options: object) -> wrk.WrkResult:
        events.append("wrk")
        loads.append({"paths": Path(paths_file).read_text().splitlines(), **options})
        return wrk.WrkResult(
            requests=16, seconds=2.0, rps=8.0, latency_ms={}, statuses={"200": 16},
            client_cpu_seconds=0.032,
        )  # fmt: skip

    # No baseline venv is set up for it (library_pythons would, on a fresh clone).
    monkeypatch.setattr(competitors, "ensure_venv", lambda name: "/baseline/python")
    monkeypatch.setattr("benchmarks.lab.cores.competitors.start_service", start_service)
    monkeypatch.setattr("benchmarks.lab.cores.competitors.fetch", lambda url: (200, {}, 10))
    monkeypatch.setattr("benchmarks.lab.handshake.subprocess.Popen", FakeLoop)
    monkeypatch.setattr("benchmarks.lab.handshake.read_line", lambda stream, timeout: next(stream))
    monkeypatch.setattr("benchmarks.lab.cores.proctree.tree", lambda pid: [pid])
    monkeypatch.setattr("benchmarks.lab.cores.proctree.cpu_seconds", lambda pids: next(cpu))
    monkeypatch.setattr("benchmarks.lab.cores.wrk.run", fake_wrk)

    pair = cores.measure_pair(
        "service", "service-path", (1, 0),
        originals="/o", names=["a.jpg", "b.png"], offset=6, seconds=2.0,
        workdir=str(tmp_path / "pair"), service_env={"GLIBC_TUNABLES": ""},
    )  # fmt: skip

    # The server: one process, one render, pinned to CPU 1, with the extra environment.
    assert started["workers"] == started["concurrency"] == started["total_concurrency"] == 1
    assert started["wrapper"] == ("taskset", "-c", "1")
    assert started["env"] == {"GLIBC_TUNABLES": ""}
    assert started["stopped"]
    # The loop: the service's path in process, pinned to CPU 0, from the same offset.
    loop_argv = launched[0]
    assert loop_argv[:4] == ["taskset", "-c", "0", sys.executable]
    assert loop_argv[loop_argv.index("--library") + 1] == "service"
    assert loop_argv[loop_argv.index("--offset") + 1] == "6"
    assert "--start-on-stdin" in loop_argv
    assert "--marks" in loop_argv
    assert started["loop_env"]["GLIBC_TUNABLES"] == ""  # the service's environment too
    assert events == ["go\n", "wrk"]  # told to start, then the load ran
    # The load: the pool's variants from the same offset, wrk pinned with the server.
    pool = urls.VariantPool(["a.jpg", "b.png"])
    assert loads[0]["paths"][:3] == [urls.url_path("service", pool.variant(i)) for i in (6, 7, 8)]
    assert loads[0]["wrapper"] == ("taskset", "-c", "1")
    assert loads[0]["concurrency"] == 2
    assert pair.server_cpu_ms == pytest.approx(1000 * 2.0 / 16)
    assert pair.client_cpu_ms == pytest.approx(2.0)
    # The loop is counted over its first 16 renders, the variants the server answered.
    assert (pair.renders, pair.loop_renders_in_all) == (16, 20)
    assert pair.loop_rps == pytest.approx(10.0)
    assert pair.loop_cpu_ms == pytest.approx(95.0)
    assert pair.rate_ratio == pytest.approx(0.8)
    assert pair.server_mean_width == pair.loop_mean_width == cores.mean_width(pool, 6, 16)


def test_a_loop_is_counted_over_the_renders_its_server_answered() -> None:
    rendered = {
        "renders": 3,
        "seconds": 3.5,
        "cpu_seconds": 3.2,
        "marks": [[1, 0.9], [2, 1.9], [3, 2.9]],
    }
    assert cores.loop_over_first(rendered, 2) == (2, 2.0, 1.9)
    assert cores.loop_over_first(rendered, 3) == (3, 3.0, 2.9)
    # A loop that got less far than the server is taken whole.
    assert cores.loop_over_first(rendered, 5) == (3, 3.5, 3.2)


def test_a_pair_whose_server_processes_changed_fails_and_stops_the_server(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    stopped: list[bool] = []
    killed: list[bool] = []

    class FakeServer:
        pid = 7
        base_url = "http://127.0.0.1:1"

        def wait_ready(self) -> None:
            return None

        def stop(self) -> None:
            stopped.append(True)

    class FakeLoop:
        def __init__(self, argv: list[str], **options: object) -> None:
            self.stdin = SimpleNamespace(write=lambda line: None, flush=lambda: None)
            self.stdout = iter(["ready\n"])

        def __enter__(self) -> FakeLoop:
            return self

        def __exit__(self, *exc: object) -> None:
            return None

        def kill(self) -> None:
            killed.append(True)

    trees = iter([[7, 8], [7, 9]])  # worker 8 replaced by 9 during the load
    monkeypatch.setattr(
        "benchmarks.lab.cores.competitors.start_service", lambda *a, **k: FakeServer()
    )
    monkeypatch.setattr("benchmarks.lab.cores.competitors.fetch", lambda url: (200, {}, 10))
    monkeypatch.setattr("benchmarks.lab.handshake.subprocess.Popen", FakeLoop)
    monkeypatch.setattr("benchmarks.lab.handshake.read_line", lambda stream, timeout: next(stream))
    monkeypatch.setattr("benchmarks.lab.cores.proctree.tree", lambda pid: next(trees))
    monkeypatch.setattr("benchmarks.lab.cores.proctree.cpu_seconds", lambda pids: 1.0)
    monkeypatch.setattr(
        "benchmarks.lab.cores.wrk.run",
        lambda *a, **k: wrk.WrkResult(requests=4, seconds=2.0, rps=2.0, latency_ms={}),
    )
    with pytest.raises(RuntimeError, match="processes changed"):
        cores.measure_pair(
            "service", "vips", (0, 1),
            originals="/o", names=["a.jpg"], offset=0, seconds=2.0,
            workdir=str(tmp_path / "pair"), service_env={},
        )  # fmt: skip
    assert killed == [True]
    assert stopped == [True]


# -- remote originals (scenario 8, benchmarks.origin, lab.origin_fetch) ----------------


def test_the_origins_nginx_conf_serves_the_directory_on_loopback_only() -> None:
    """Everything nginx writes stays in its scratch directory; no system paths."""
    text = origin.config("/data/corpus/", 8123, "/scratch/work", as_root=False)
    assert "listen 127.0.0.1:8123;" in text
    assert "root /data/corpus;" in text
    assert "daemon off;" in text
    assert "sendfile on;" in text
    assert "etag on;" in text
    assert "pid /scratch/work/nginx.pid;" in text
    for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"):
        assert f"{kind}_temp_path /scratch/work/{kind}-temp;" in text
    assert "user " not in text
    assert "/var/" not in text
    assert "user root;" in origin.config("/data", 8123, "/scratch/work", as_root=True)


@pytest.mark.parametrize("root", ["relative/dir", "/with space", "/semi;colon", "/brace}"])
def test_the_origins_nginx_conf_refuses_paths_it_cannot_quote(root: str) -> None:
    with pytest.raises(ValueError, match=r"nginx\.conf"):
        origin.config(root, 8123, "/scratch/work", as_root=False)


def test_the_origins_access_log_is_counted_by_status() -> None:
    log = "200 881400 /a.jpg\n304 0 /a.jpg\n200 10 /b.png\n\ngarbage line\n"
    assert origin.statuses(log) == {"200": 2, "304": 1}


def test_the_remote_service_takes_the_services_syntax() -> None:
    variant = urls.Variant("a b.jpg", 640, 4095)
    assert urls.url_path(report.REMOTE, variant) == urls.url_path("service", variant)


def test_the_origin_scenario_is_part_of_the_full_run_and_a_flag_of_the_quick_one() -> None:
    assert bench_run.FULL.origin
    assert not bench_run.QUICK.origin
    for argv in (["--origin"], ["--quick", "--origin"], ["--no-origin"]):
        assert bench_run.latest_name(bench_run.build_parser().parse_args(argv)) is None


def _origin_results(remote_rps: list[float], remote_hits: list[float]) -> dict[str, Any]:
    def runs(values: list[float], rss: float) -> list[dict[str, Any]]:
        return [_run(value, rss) for value in values]

    return {
        "origin": {
            "origin_requests": {"warm": {"200": 12}, "source_hits": {}, "cache_hits": {"304": 2}},
            "source_hits": {
                "service": runs([20, 21, 22], 300),
                report.REMOTE: runs(remote_rps, 290),
                "baseline": runs([10, 10, 11], 250),
            },
            "cache_hits": {
                "service": runs([3000, 3100, 2900], 200),
                report.REMOTE: runs(remote_hits, 210),
                "baseline": runs([2000, 2000, 2000], 150),
            },
        }
    }


def test_the_origin_scenario_compares_the_remote_service_with_the_local_one() -> None:
    summary = report.summarize_all(_origin_results([19, 20, 21], [3000, 3000, 3000]))["origin"]
    sources = summary["source_hits"]
    assert sources["remote_vs_local"]["rps"] == pytest.approx(20 / 21)
    assert sources["remote_vs_local"]["rps_paired_min"] == pytest.approx(19 / 20)
    assert sources["remote_vs_local"]["rps_paired_max"] == pytest.approx(21 / 22)
    assert sources["remote_vs_local"]["cpu_per_request"] == pytest.approx(1.0)
    assert sources["remote_vs_local"]["peak_rss"] == pytest.approx(290 / 300)
    assert sources["ratios"]["baseline"]["rps"] == pytest.approx(2.1)
    assert sources["remote_ratios"]["baseline"]["rps"] == pytest.approx(2.0)
    found = {t["target"]: t for t in summary["targets"]}
    cached = found["HTTP origin, new variants of originals in the source cache, c=4: "
                   "remote / local req/s"]  # fmt: skip
    assert cached["value"] == pytest.approx(20 / 21)
    assert cached["met"] is True
    assert found["HTTP origin, result-cache hits, c=16: remote / local req/s"]["met"] is True
    slower = report.summarize_all(_origin_results([15, 16, 17], [3000, 3000, 3000]))["origin"]
    assert [t["met"] for t in slower["targets"]] == [False, True]


def test_the_origin_scenarios_table_carries_its_ratios_and_what_nginx_was_asked() -> None:
    results = _origin_results([19, 20, 21], [2800, 2900, 3000])
    text = report.markdown(results)
    assert "**Remote originals** (scenario 8)" in text
    assert (
        "| new variants of originals in the source cache, c=4: req/s | 21.0 (20.0-22.0) "
        "| 20.0 (19.0-21.0) | 10.0 (10.0-11.0) | 0.95x (0.95-0.95) | 2.10x | 2.00x |"
    ) in text
    assert "| result-cache hits, c=16: req/s | 3000.0 (2900.0-3100.0) " in text
    assert "warming 12 x 200; the source-cache runs none; the result-cache runs 2 x 304." in text
    assert "| target (issue 19) | measured | goal | met |" in text
    assert report.markdown(json.loads(json.dumps(results))) == text
    assert report.origin_lines({}) == []


def test_across_runs_carries_the_origin_ratios() -> None:
    first = _origin_results([19, 20, 21], [3000, 3000, 3000])
    second = _origin_results([21, 21, 21], [3000, 3000, 3000])
    table = report.across_runs([first, second])
    assert (
        "| HTTP origin, new variants of cached sources c=4, remote / local req/s "
        "| 0.95 | 1.00 | 0.98 |"
    ) in table


def test_the_origin_scenario_gives_both_services_the_same_fresh_variants(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Local and remote get one list per repetition, which neither has seen:
    the local one's pool goes on after the variants it answered before."""
    asked: dict[tuple[str, str], list[str]] = {}

    def load(
        self: bench_run.Bench, server: SimpleNamespace, paths: list[str], **options: object
    ) -> dict[str, Any]:
        asked[(str(options["label"]), server.name)] = paths
        return {**_run(10, 100), "wraps": False}

    counts = iter([{}, {"200": 12}, {"200": 12}, {"200": 12, "304": 1}])
    nginx = SimpleNamespace(requests=lambda: Counter(next(counts)))
    monkeypatch.setattr(bench_run.Bench, "load", load)
    monkeypatch.setattr(competitors, "fetch", lambda url: (200, {}, 10))
    plan = replace(bench_run.QUICK, runs=2, origin=True)
    bench = bench_run.Bench(plan, str(tmp_path), str(tmp_path))
    names = ("service", "baseline")
    bench.servers = [SimpleNamespace(name=n, base_url="http://x") for n in names]  # type: ignore[misc]
    bench.remote = SimpleNamespace(name=report.REMOTE, base_url="http://y")  # type: ignore[assignment]
    bench.nginx = nginx  # type: ignore[assignment]
    mix = corpus.mix_names()
    earlier = bench.pools.setdefault(f"service:{','.join(mix)}", urls.VariantPool(mix)).take(50)
    bench.remote_originals()
    budget = bench_run.variants_per_run(plan.seconds)
    for repetition in range(2):
        label = f"origin-sources-{repetition}"
        local, remote = asked[(label, "service")], asked[(label, report.REMOTE)]
        assert local == remote
        assert len(local) == budget
        assert local[0] == urls.url_path(
            "service", urls.VariantPool(mix).variant(50 + repetition * budget)
        )
    assert not set(asked[("origin-sources-0", "service")]) & {
        urls.url_path("service", v) for v in earlier
    }
    table = bench.results["origin"]
    assert isinstance(table, dict)
    assert table["origin_requests"] == {
        "warm": {"200": 12}, "source_hits": {}, "cache_hits": {"304": 1},
    }  # fmt: skip
    assert {
        len(runs) for case in ("source_hits", "cache_hits") for runs in table[case].values()
    } == {2}


def test_a_first_downloads_latency_is_the_median_of_remote_minus_local() -> None:
    rounds = [
        {"a.jpg": {"curl": 1.0, "download": 2.0, "local": 50.0, "remote": 54.0},
         "b.png": {"curl": 10.0, "download": 20.0, "local": 100.0, "remote": 130.0}},
        {"a.jpg": {"curl": 2.0, "download": 3.0, "local": 60.0, "remote": 62.0},
         "b.png": {"curl": 10.0, "download": 22.0, "local": 90.0, "remote": 110.0}},
        {"a.jpg": {"curl": 1.0, "download": 2.0, "local": 40.0, "remote": 43.0},
         "b.png": {"curl": 12.0, "download": 21.0, "local": 95.0, "remote": 120.0}},
    ]  # fmt: skip
    summary = origin_fetch.latency_summary(rounds, {"a.jpg": 1_000_000, "b.png": 12_000_000})
    a, b = summary["images"]["a.jpg"], summary["images"]["b.png"]
    assert (a["added"], a["curl"], a["local"], a["remote"]) == (3.0, 1.0, 50.0, 54.0)
    assert a["added_over_curl"] == pytest.approx(3.0)
    assert b["added"] == 25.0  # the median of 30, 20, 25: per round, not of the medians
    assert b["mb"] == 12.0
    assert summary["median"]["added"] == pytest.approx(14.0)
    assert summary["sum"]["added"] == pytest.approx(28.0)
    assert summary["sum"]["added_over_curl"] == pytest.approx(28.0 / 11.0)
    table = origin_fetch.latency_table(summary)
    assert "| b.png | 12.0 | 10.0 | 21.0 | 95.0 | 120.0 | 25.0 | 2.50x |" in table
    assert "| **sum over the corpus** |" in table


def test_peak_rss_is_read_from_vmhwm_and_compared_side_by_side() -> None:
    status = "Name:\tpython\nVmPeak:\t 900000 kB\nVmHWM:\t  123456 kB\nVmRSS:\t 1000 kB\n"
    assert origin_fetch.vm_hwm_kib(status) == 123456
    with pytest.raises(ValueError, match="VmHWM"):
        origin_fetch.vm_hwm_kib("VmRSS:\t 1000 kB\n")
    fields = ("workers_peak_mib", "largest_worker_mib", "idle_workers_mib", "tree_peak_mib")

    def burst(mib: float, seconds: float) -> dict[str, float]:
        return {**dict.fromkeys(fields, mib), "seconds": seconds, "downloads": 0.0}

    summary = origin_fetch.memory_summary(
        {"local": [burst(400, 2), burst(420, 3), burst(410, 2)],
         "remote": [burst(430, 2), burst(400, 2), burst(410, 4)]}
    )  # fmt: skip
    assert summary["sides"]["local"]["workers_peak_mib"] == 410
    assert summary["remote_over_local"]["workers_peak_mib"] == pytest.approx(1.0)
    assert summary["remote_over_local"]["seconds"] == pytest.approx(1.0)
    assert "| workers' peak RSS (VmHWM, summed), MiB | 410 | 410 | 1.00x |" in (
        origin_fetch.memory_table(summary, ["a.png"])
    )


def test_the_download_time_is_summed_over_the_metrics_label_sets() -> None:
    exposition = (
        "# TYPE image_factory_origin_duration_seconds histogram\n"
        'image_factory_origin_duration_seconds_bucket{origin="a",le="0.1"} 1.0\n'
        'image_factory_origin_duration_seconds_sum{origin="a"} 0.25\n'
        'image_factory_origin_duration_seconds_sum{origin="b"} 0.5\n'
        "image_factory_origin_duration_seconds_sum_other 9.0\n"
    )
    assert origin_fetch.metric_total(exposition, origin_fetch.DOWNLOAD_METRIC) == 0.75
    assert origin_fetch.metric_total("", origin_fetch.DOWNLOAD_METRIC) == 0.0


def test_paired_requests_compare_sums_pairs_and_cpu() -> None:
    """The ratio of the sums is the throughput ratio; pairs are taken in order."""
    measured = {
        "local": [100.0, 50.0, 60.0],
        "remote": [110.0, 50.0, 54.0],
        "local_cpu_ms": [80.0],
        "remote_cpu_ms": [84.0],
    }
    summary = origin_fetch.paired_summary(measured)
    assert summary["requests"] == 3
    assert (summary["local_ms"], summary["remote_ms"]) == (60.0, 54.0)
    assert summary["rps_ratio"] == pytest.approx(210 / 214)
    assert summary["time_ratio"] == pytest.approx(214 / 210)
    assert summary["pair_ratio"] == pytest.approx(1.0)
    assert summary["pair_added_ms"] == pytest.approx(0.0)
    assert summary["cpu_ratio"] == pytest.approx(1.05)
    table = origin_fetch.paired_table(summary)
    assert "| server CPU ms a request | 80.0 | 84.0 | 1.050x |" in table
    assert "| requests/s (the ratio of the sums) | | | 0.981x |" in table


def test_the_ten_large_originals_are_the_corpus_largest_and_six_derived() -> None:
    assert len(origin_fetch.LARGE) == len(set(origin_fetch.LARGE)) == 10
    assert set(corpus.LARGEST) < set(origin_fetch.LARGE)
    names = {entry.name for entry in corpus.CORPUS}
    assert {source for source, _ in origin_fetch.DERIVED.values()} <= names
    assert not set(origin_fetch.DERIVED) & names  # a derived file never shadows a corpus one


# -- the page load (scenario 9, benchmarks.pageload) ------------------------------------


def test_the_page_loads_browsers_are_the_same_for_a_seed_and_differ_for_another() -> None:
    assert pageload.browsers(50, seed=3) == pageload.browsers(50, seed=3)
    assert pageload.browsers(50, seed=3) != pageload.browsers(50, seed=4)
    assert pageload.browsers(10) == pageload.browsers(50)[:10]  # the seed's sequence, cut


def test_the_page_loads_browsers_span_viewports_and_pixel_ratios_within_range() -> None:
    """320-2560 CSS px at DPR 1, 1.5, 2 or 3, every device width under the output limit."""
    drawn = pageload.browsers(2000)
    assert {b.dpr for b in drawn} == {1.0, 1.5, 2.0, 3.0}
    assert {b.kind for b in drawn} == {device.name for device in pageload.DEVICES}
    assert all(320 <= b.css_width <= 2560 for b in drawn)
    assert all(b.device_width == round(b.css_width * b.dpr) for b in drawn)
    widths = [b.device_width for b in drawn]
    assert min(widths) >= 320
    assert max(widths) <= 3840 < pageload.MAX_OUTPUT
    assert len(set(widths)) > 500  # many distinct widths: what the ladder is for
    phones = sum(b.kind == "phone" for b in drawn) / len(drawn)
    assert 0.45 < phones < 0.55


def test_the_burst_asks_each_original_at_every_ladder_width_at_once() -> None:
    workload = pageload.Workload.build(["a.jpg", "b c.png"], 3)
    bursts = workload.bursts()
    assert bursts == [
        [f"/picture/{name}?w={step}&format=webp" for step in pageload.LADDER]
        for name in ("a.jpg", "b%20c.png")
    ]


def test_each_browser_asks_each_original_once_at_its_device_width() -> None:
    workload = pageload.Workload.build(["a.jpg", "b.png", "c.jpg"], 7, seed=5)
    page = workload.page_loads()
    assert len(page) == 21
    for index, browser in enumerate(workload.browsers):
        mine = page[3 * index : 3 * index + 3]
        width = browser.device_width
        assert mine == [f"/picture/{n}?w={width}&format=webp" for n in ("a.jpg", "b.png", "c.jpg")]
    described = workload.describe()
    assert described["page_requests"] == 21
    assert described["burst_requests"] == 18
    assert described["distinct_widths"] == len({b.device_width for b in workload.browsers})


def test_the_ladder_variant_passes_the_ladder_as_the_services_widths_option() -> None:
    assert pageload.widths_argument(pageload.LADDER) == ["--widths", "320,640,960,1280,1920,2560"]


def test_metric_values_are_summed_over_label_sets_and_never_match_a_longer_name() -> None:
    exposition = (
        "# HELP image_factory_renders_total Renders completed.\n"
        "# TYPE image_factory_renders_total counter\n"
        "image_factory_renders_total 7.0\n"
        "image_factory_renders_created 1.7e9\n"
        'image_factory_cache_entries{pid="1"} 3.0\n'
        'image_factory_cache_entries{pid="2"} 4.0\n'
        "image_factory_cache_entries_other 100.0\n"
    )
    assert pageload.metric_value(exposition, "image_factory_renders_total") == 7.0
    assert pageload.metric_value(exposition, "image_factory_cache_entries") == 7.0
    assert pageload.metric_value(exposition, "image_factory_cache_bytes") is None


class _PageLoadServer:
    """A started service as ``pageload.run`` sees it; ``exit`` 2 fails its start."""

    def __init__(self, name: str, options: list[str], exit_status: int | None) -> None:
        self.name, self.options = name, options
        self.process = SimpleNamespace(returncode=exit_status)
        self.settings = {"command": "python -m service " + " ".join(options)}
        self.base_url = "http://127.0.0.1:1"
        self.stopped = False

    def wait_ready(self) -> None:
        if self.process.returncode is not None:
            raise RuntimeError(f"service exited with {self.process.returncode} at start")

    def stop(self) -> None:
        self.stopped = True


def _pageload_run(renders: float, rps: float) -> dict[str, Any]:
    phase = {"rps": rps, "latency_ms": {"p50": 100.0, "p99": 300.0}, "statuses": {"200": 10},
             "errors": {}}  # fmt: skip
    return {
        "burst": phase, "page": phase, "renders_burst": 6.0, "renders": renders,
        "cache_entries": renders, "cache_bytes": renders * 1e5, "du_bytes": int(renders * 2e5),
    }  # fmt: skip


def test_the_page_load_runs_both_variants_each_round_rotated_on_fresh_services(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    started: list[_PageLoadServer] = []

    def start(name: str, options: Sequence[str]) -> _PageLoadServer:
        started.append(_PageLoadServer(name, list(options), None))
        return started[-1]

    measured = iter([_pageload_run(r, 10.0) for r in (90, 20, 22, 95, 88, 21)])
    monkeypatch.setattr(pageload, "measure", lambda server, cache, work: next(measured))
    workload = pageload.Workload.build(["a.jpg"], 2)
    starter: Any = start  # a stand-in for competitors.start_service
    results = pageload.run(
        workload, runs=3, start=starter, workdir=str(tmp_path), ladder=True, log=lambda _: None
    )
    assert [s.name for s in started] == [
        "pageload-0-plain", "pageload-0-ladder", "pageload-1-ladder", "pageload-1-plain",
        "pageload-2-plain", "pageload-2-ladder",
    ]  # fmt: skip
    assert {tuple(s.options) for s in started if s.name.endswith("ladder")} == {
        ("--widths", "320,640,960,1280,1920,2560")
    }
    assert all(s.options == [] for s in started if s.name.endswith("plain"))
    assert all(s.stopped for s in started)
    assert [r["renders"] for r in results["runs"]["plain"]] == [90, 95, 88]
    assert results["skipped"] == {}
    summary = report.summarize_all({"pageload": results})["pageload"]
    assert summary["plain"]["renders"]["median"] == 90
    assert summary["ladder"]["renders"]["median"] == 21
    assert summary["ladder_over_plain"]["renders"] == pytest.approx(21 / 90)
    assert summary["ladder_over_plain"]["page_rps"] == pytest.approx(1.0)
    text = report.markdown({"pageload": results})
    assert "| renders (all requests) | 90 (88-95) | 21 (20-22) | 0.23x |" in text
    assert "**Throughput" not in text  # no load case ran: no empty tables


def test_a_service_that_refuses_the_ladder_at_start_skips_that_variant_only(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    (tmp_path / "pageload-0-ladder.log").write_text(
        "usage: image-factory [-h] ...\nimage-factory: unrecognized arguments: --widths 320\n"
    )

    def start(name: str, options: Sequence[str]) -> _PageLoadServer:
        return _PageLoadServer(name, list(options), 2 if options else None)

    monkeypatch.setattr(pageload, "measure", lambda server, cache, work: _pageload_run(50, 9.0))
    workload = pageload.Workload.build(["a.jpg"], 2)
    starter: Any = start  # a stand-in for competitors.start_service
    results = pageload.run(
        workload, runs=2, start=starter, workdir=str(tmp_path), ladder=True, log=lambda _: None
    )
    assert results["skipped"] == {"ladder": "image-factory: unrecognized arguments: --widths 320"}
    assert list(results["runs"]) == ["plain"]
    assert len(results["runs"]["plain"]) == 2
    text = report.markdown({"pageload": results})
    assert "| renders (all requests) | 50 (50-50) | - | n/a |" in text
    assert "The ladder variant did not run: image-factory: unrecognized arguments" in text


def test_without_the_option_the_ladder_variant_is_never_started(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    options_given: list[list[str]] = []

    def start(name: str, options: Sequence[str]) -> _PageLoadServer:
        options_given.append(list(options))
        return _PageLoadServer(name, list(options), None)

    monkeypatch.setattr(pageload, "measure", lambda server, cache, work: _pageload_run(50, 9.0))
    starter: Any = start
    results = pageload.run(
        pageload.Workload.build(["a.jpg"], 2), runs=2, start=starter, workdir=str(tmp_path),
        ladder=False, log=lambda _: None,
    )  # fmt: skip
    assert options_given == [[], []]
    assert "--widths" in results["skipped"]["ladder"]
    assert list(results["runs"]) == ["plain"]


def test_a_failing_page_load_run_keeps_the_runs_before_it(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    calls: list[int] = []

    def measure(server: object, cache: str, work: object) -> dict[str, Any]:
        calls.append(1)
        if len(calls) == 2:
            raise RuntimeError("/metrics answered 500")
        return _pageload_run(50, 9.0)

    def start(name: str, options: Sequence[str]) -> _PageLoadServer:
        return _PageLoadServer(name, list(options), None)

    monkeypatch.setattr(pageload, "measure", measure)
    table: dict[str, Any] = {}
    starter: Any = start
    with pytest.raises(RuntimeError, match="500"):
        pageload.run(
            pageload.Workload.build(["a.jpg"], 2), runs=2, start=starter, workdir=str(tmp_path),
            ladder=True, log=lambda _: None, into=table,
        )  # fmt: skip
    assert [run["renders"] for run in table["runs"]["plain"]] == [50]
    assert table["runs"]["ladder"] == []
    assert "| renders (all requests) | 50 | - | n/a |" in report.markdown({"pageload": table})


def test_the_page_load_is_part_of_the_full_run_and_a_flag_of_the_quick_one() -> None:
    assert bench_run.FULL.pageload
    assert not bench_run.QUICK.pageload
    assert bench_run.FULL.pageload_browsers == pageload.BROWSERS
    for argv in (["--pageload"], ["--pageload-browsers", "5"], ["--pageload-images", "a.jpg"]):
        assert bench_run.latest_name(bench_run.build_parser().parse_args(argv)) is None


def test_the_benchmarks_readme_stays_within_150_lines() -> None:
    """Detail belongs in the journal; the README stays a page."""
    readme = Path(competitors.ROOT) / "benchmarks" / "README.md"
    assert len(readme.read_text().splitlines()) <= 150


# -- ipx, the third competitor --------------------------------------------------


def test_ipx_asks_the_width_the_format_and_the_services_quality() -> None:
    """Each variant maps to ipx's modifiers: width, explicit format, q for lossy ones."""
    quality = {"jpeg": 80, "webp": 80, "avif": 60}
    assert urls.ipx_path(urls.Variant("a b.jpg", 640), quality) == "/w_640,f_jpeg,q_80/a%20b.jpg"
    assert urls.ipx_path(urls.Variant("x.png", 700), quality) == "/w_700,f_png/x.png"
    assert urls.ipx_path(urls.Variant("x.png", 700, None, "webp"), quality) == (
        "/w_700,f_webp,q_80/x.png"
    )
    assert urls.ipx_path(urls.Variant("a.jpg", 800, None, "avif"), quality) == (
        "/w_800,f_avif,q_60/a.jpg"
    )
    with pytest.raises(ValueError, match="no output format"):
        urls.ipx_path(urls.Variant("a.gif", 800), quality)


def test_ipx_drops_the_height_salt_that_never_constrains_the_fit() -> None:
    """A salted variant asks ipx for the same render as the unsalted one."""
    salted = urls.Variant("a.jpg", 800, 4095)
    assert urls.url_path("ipx", salted) == urls.url_path("ipx", urls.Variant("a.jpg", 800))


def test_ipx_gets_the_services_default_qualities() -> None:
    """url_path gives ipx the quality the service uses by default for each format."""
    quality = competitors.service_defaults()[0]
    for fmt in ("jpeg", "webp", "avif"):
        path = urls.url_path("ipx", urls.Variant("a.jpg", 800, None, fmt))
        assert path == f"/w_800,f_{fmt},q_{quality[fmt]}/a.jpg"


@pytest.mark.parametrize(
    ("names", "fmt"),
    [
        (corpus.mix_names(), None),  # uncached mix, c=1/4/16; the hit set
        ([corpus.FOUR_MP], None),  # latency
        (list(corpus.LARGEST), "jpeg"),  # memory
        (corpus.mix_names(), "jpeg"),  # formats
        (corpus.mix_names(), "webp"),
        (corpus.mix_names(), "avif"),
    ],
)
def test_every_scenarios_ipx_request_asks_the_format_the_others_answer(
    names: list[str], fmt: str | None
) -> None:
    """Each scenario's variants reach ipx at their width, in the format the service answers."""
    for variant in urls.VariantPool(names).take(3 * len(names), fmt):
        modifiers, _, name = urls.url_path("ipx", variant)[1:].partition("/")
        expected = libcost.output_format(variant.name, variant.format or "original")
        assert modifiers.split(",")[:2] == [f"w_{variant.width}", f"f_{expected}"]
        assert name == variant.name


def test_ipx_server_command_line_and_environment() -> None:
    """The script gets node_modules, the originals and the port, in that order."""
    argv = competitors.ipx_command("/usr/bin/node", "/x/node_modules", "corpus/originals", 8123)
    assert argv == [
        "/usr/bin/node",
        competitors.IPX_SCRIPT,
        "/x/node_modules",
        os.path.abspath("corpus/originals"),
        "8123",
    ]
    with open(competitors.IPX_SCRIPT) as handle:
        script = handle.read()
    assert "const [modules, originals, port] = process.argv.slice(2);" in script
    assert '"127.0.0.1"' in script
    assert '"/healthz"' in script
    assert competitors.ipx_environment(2) == {"UV_THREADPOOL_SIZE": "2"}


def test_ipx_and_sharp_are_pinned_into_the_suites_own_folder() -> None:
    """npm installs exact versions under .bench-node/, never globally."""
    argv = node.install_command("/r/.bench-node")
    assert argv[:4] == ["npm", "install", "--prefix", "/r/.bench-node"]
    assert "--save-exact" in argv
    assert argv[-2:] == ["ipx@3.1.1", "sharp@0.34.5"]
    assert node.modules_dir("/r/.bench-node") == "/r/.bench-node/node_modules"
    assert os.path.join(competitors.ROOT, ".bench-node") == node.BENCH_NODE
    assert node.node_major("v20.20.2\n") == 20


def test_a_set_up_bench_node_is_not_installed_again(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """The stamp of the pinned packages spares npm on later runs."""
    (tmp_path / ".packages").write_text("\n".join(node.PACKAGES))
    monkeypatch.setattr(node, "ensure_runtime", lambda: "v20.0.0")

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("npm ran")

    monkeypatch.setattr(subprocess, "run", refuse)
    assert node.ensure_ipx(str(tmp_path)) == str(tmp_path / "node_modules")


def test_without_node_and_root_ipx_is_skipped_with_a_one_line_reason(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """No node, no root: the reason names the Debian package, on one line."""
    monkeypatch.setattr(shutil, "which", lambda name: None)
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    reason = node.skip_reason(str(tmp_path))
    assert reason == (
        "ipx skipped: node is missing: install it (Debian/Ubuntu: apt-get install nodejs)"
    )
    assert not (tmp_path / "node_modules").exists()


def test_a_node_too_old_for_sharp_is_a_skip(monkeypatch: pytest.MonkeyPatch) -> None:
    """Debian's node older than sharp's floor skips ipx rather than failing the run."""
    monkeypatch.setattr(debian, "ensure_package", lambda binary, package: None)
    monkeypatch.setattr(
        subprocess,
        "run",
        lambda *a, **k: SimpleNamespace(stdout="v16.20.0\n", returncode=0),
    )
    assert node.skip_reason() == "ipx skipped: node v16.20.0 is older than sharp's 18"


def test_the_run_records_why_ipx_was_skipped(monkeypatch: pytest.MonkeyPatch) -> None:
    """setup_ipx: modules when set up, the reason when not, nothing when not asked."""
    assert bench_run.setup_ipx(False) == (None, None)
    monkeypatch.setattr(node, "skip_reason", lambda: "ipx skipped: no npm")
    assert bench_run.setup_ipx(True) == (None, "ipx skipped: no npm")
    monkeypatch.setattr(node, "skip_reason", lambda: None)
    assert bench_run.setup_ipx(True) == (node.modules_dir(), None)
    text = report.markdown({**_results(), "skipped": {"ipx": "ipx skipped: no npm"}})
    assert "Skipped: ipx skipped: no npm" in text.splitlines()


def test_ipx_is_part_of_the_full_run_and_a_flag_of_the_quick_one() -> None:
    """make bench runs ipx; make bench-quick does not; --ipx changes what latest means."""
    assert bench_run.FULL.ipx is True
    assert bench_run.QUICK.ipx is False
    for flag in ("--ipx", "--no-ipx"):
        assert bench_run.latest_name(bench_run.build_parser().parse_args([flag])) is None


def _with_ipx() -> dict[str, Any]:
    results = _results()
    for runs, size in ((results["uncached"]["4"]["service"], 50_000),):
        for run in runs:
            run["bytes_per_response"] = size
    results["uncached"]["4"]["ipx"] = [
        {**_run(5, 700), "bytes_per_response": 40_000} for _ in range(3)
    ]
    results["cache_hits"]["ipx"] = [_run(50, 400)] * 3
    results["output_bytes"] = {
        "service": {"a.jpg": 300, "b.png": 700},
        "ipx": {"a.jpg": 250, "b.png": 750},
        "thumbor": {},
    }
    return results


def test_ipx_has_its_column_and_the_services_ratio_to_it() -> None:
    """Every table carries ipx and service / ipx; its hits are said to be renders."""
    text = report.markdown(_with_ipx())
    assert "| thumbor | ipx | service / baseline | service / thumbor | service / ipx |" in text
    assert "| uncached mix, c=4 | 20.0 (19.0-21.0) | 10.0 (9.0-11.0) | 9.0 (8.0-10.0) | " in text
    assert "| 2.00x | 2.22x | 4.00x |" in text
    assert "| p99/p50 service | p99/p50 baseline | p99/p50 ipx |" in text
    assert report.IPX_HITS in text


def test_output_bytes_are_compared_per_response_and_over_the_same_hit_set() -> None:
    """Mean bytes per response by case, and the hit set's totals, as ratios."""
    results = _with_ipx()
    summary = report.summarize_all(results)
    assert summary["uncached"]["4"]["ratios"]["ipx"]["bytes_per_response"] == pytest.approx(1.25)
    assert summary["output_bytes"] == {
        "images": 2,
        "total_bytes": {"service": 1000, "ipx": 1000},
        "ratios": {"ipx": 1.0},
    }
    text = report.markdown(results)
    assert "| uncached mix, c=4 | 50000 (50000-50000) | - | - | 40000 (40000-40000) " in text
    assert (
        "| the cache-hit set, 2 images, total | 1000 | - | - | 1000 | n/a | n/a | 1.00x |" in text
    )


def test_wrk_counts_the_bytes_of_the_bodies() -> None:
    """The script sums body sizes; the result gives their mean per response."""
    line = WRK_JSON[:-1] + ', "body_bytes": 6513000}'
    result = wrk.parse_json_line(line)
    assert result.body_bytes == 6513000
    assert result.as_dict()["bytes_per_response"] == round(6513000 / 2163)
    assert wrk.parse_json_line(WRK_JSON).as_dict()["bytes_per_response"] is None
    assert "body_bytes = body_bytes + #body" in wrk.LUA_SCRIPT


def test_a_pool_hands_out_again_what_a_run_never_asked_for() -> None:
    pool = urls.VariantPool(["a.jpg", "b.png"], widths=range(600, 700))
    taken = pool.take(100)
    pool.give_back(0, 30)
    again = pool.take(100)
    assert again[:70] == taken[30:]
    assert not set(again) & set(taken[:30])
    with pytest.raises(ValueError, match="give_back"):
        pool.give_back(0, 300)


def test_the_wrk_script_reports_how_far_into_the_list_it_went() -> None:
    """``reached``: the highest path index any thread asked for, plus one,
    which the uncached runs give back to their pools after."""
    assert "if index + 1 > reached then reached = index + 1 end" in wrk.LUA_SCRIPT
    assert '"reached": %d' in wrk.LUA_SCRIPT
    line = WRK_JSON[:-1] + ', "reached": 2200}'
    assert wrk.parse_json_line(line).as_dict()["reached"] == 2200
    assert wrk.parse_json_line(WRK_JSON).reached == 0


def test_an_uncached_series_asks_each_run_for_variants_no_run_asked_for(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Each run starts where the one before stopped asking, not where its
    list ended: the pool is given back what wrk never reached."""
    asked: list[list[str]] = []

    def load(
        self: bench_run.Bench, server: SimpleNamespace, paths: list[str], **options: object
    ) -> dict[str, Any]:
        asked.append(paths)
        return {**_run(10, 100), "wraps": 0, "reached": 40}

    monkeypatch.setattr(bench_run.Bench, "load", load)
    plan = replace(bench_run.QUICK, runs=3)
    bench = bench_run.Bench(plan, str(tmp_path), str(tmp_path))
    bench.servers = [SimpleNamespace(name="service", base_url="http://x")]  # type: ignore[list-item]
    bench.uncached_series("uncached-c4", ["a.jpg", "b.png"], 4, plan.seconds, None)
    assert [paths[0] for paths in asked[1:]] == [asked[0][40], asked[0][80]]
    assert bench.pools["service:a.jpg,b.png"].used == 120


def test_fresh_copies_are_new_names_of_the_same_file_removed_after(tmp_path: Path) -> None:
    """The 4 MP JPEG's own scenario asks for hard links of it: originals no
    server has rendered, the same bytes; gone once the scenario is done."""
    original = tmp_path / "photo.jpg"
    original.write_bytes(b"\xff\xd8 bytes of a JPEG")
    with bench_run.fresh_copies(str(tmp_path), "photo.jpg", 3) as names:
        assert len(set(names)) == 3
        for name in names:
            copy = tmp_path / name
            assert copy.parent != tmp_path
            assert os.path.samefile(copy, original)
        folder = (tmp_path / names[0]).parent
    assert not folder.exists()
    assert original.read_bytes() == b"\xff\xd8 bytes of a JPEG"
