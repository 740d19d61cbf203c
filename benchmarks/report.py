"""From raw runs to medians, ratios, the issue's targets and Markdown tables.

Pure functions over the results dictionary that ``benchmarks.run`` writes, so
that a results file can be re-rendered (``python -m benchmarks.report
results/latest.json``) and the logic is tested without running anything.
"""

from __future__ import annotations

import argparse
import json
import statistics
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from .stats import format_ratio, paired_ratios, ratio, summarize

ORDER = ("service", "baseline", "thumbor", "ipx")
# The service's ratios are to each of these.
OTHERS = ORDER[1:]
# What ``benchmarks.run`` writes as ``inprocess_paired_with`` when loop i ran
# right after repetition i of this series, the one the targets use.
LOOPS_PAIRED_WITH = "uncached c=4"
Runs = Sequence[Mapping[str, Any]]


def series_summary(runs: Runs) -> dict[str, Any]:
    """Medians (and ranges) of one competitor's repeated runs of one case."""
    rps = [float(r["rps"]) for r in runs]
    latency = [r["latency_ms"] for r in runs]
    out: dict[str, Any] = {
        "rps": summarize(rps).as_dict(),
        "p50_ms": summarize([float(x["p50"]) for x in latency]).as_dict(),
        "p90_ms": summarize([float(x["p90"]) for x in latency]).as_dict(),
        "p99_ms": summarize([float(x["p99"]) for x in latency]).as_dict(),
        "peak_rss_mib": summarize([float(r["peak_rss_mib"]) for r in runs]).as_dict(),
        "peak_pss_mib": summarize([float(r["peak_pss_mib"]) for r in runs]).as_dict(),
        "requests": sum(int(r["requests"]) for r in runs),
        "non_2xx": sum(
            c for r in runs for code, c in r.get("statuses", {}).items() if not code.startswith("2")
        ),
        "client_cpu_percent": summarize([float(r["client_cpu_percent"]) for r in runs]).median,
    }
    cpu = [
        float(r["server_cpu_ms_per_request"]) for r in runs if r.get("server_cpu_ms_per_request")
    ]
    if cpu:
        out["server_cpu_ms_per_request"] = summarize(cpu).as_dict()
    sizes = [float(r["bytes_per_response"]) for r in runs if r.get("bytes_per_response")]
    if sizes:  # counted since 2026-12-02
        out["bytes_per_response"] = summarize(sizes).as_dict()
    return out


# The name of a second Image Factory from another checkout (run.py's
# --compare-with), measured in the same run for an A/B of two commits.
BEFORE = "before"


def case_summary(case: Mapping[str, Runs]) -> dict[str, Any]:
    """Every competitor of one case, and the service's ratios to the others
    (and, with --compare-with, the earlier commit's as ``before_ratios``)."""
    out: dict[str, Any] = {name: series_summary(runs) for name, runs in case.items() if runs}
    out["ratios"] = _ratios(case, out, "service")
    if case.get(BEFORE):
        out["before_ratios"] = _ratios(case, out, BEFORE)
    return out


def _ratios(case: Mapping[str, Runs], out: Mapping[str, Any], ours: str) -> dict[str, Any]:
    ratios: dict[str, Any] = {}
    service = case.get(ours)
    for other in OTHERS:
        theirs = case.get(other)
        if not service or not theirs:
            continue
        ours_rps = [float(r["rps"]) for r in service]
        their_rps = [float(r["rps"]) for r in theirs]
        ours_mem = out[ours]["peak_rss_mib"]["median"]
        their_mem = out[other]["peak_rss_mib"]["median"]
        paired = paired_ratios(ours_rps, their_rps) if len(ours_rps) == len(their_rps) else []
        cpu_ours = out[ours].get("server_cpu_ms_per_request", {}).get("median")
        cpu_theirs = out[other].get("server_cpu_ms_per_request", {}).get("median")
        ratios[other] = {
            "rps": ratio(out[ours]["rps"]["median"], out[other]["rps"]["median"]),
            # how many times less CPU the service spends on a request
            "cpu_efficiency": ratio(cpu_theirs or 0.0, cpu_ours or 0.0),
            "rps_paired_min": min(paired) if paired else None,
            "rps_paired_max": max(paired) if paired else None,
            "peak_rss": ratio(ours_mem, their_mem),
        }
        sizes = [out[side].get("bytes_per_response", {}).get("median") for side in (ours, other)]
        if sizes[0] and sizes[1]:
            ratios[other]["bytes_per_response"] = ratio(sizes[0], sizes[1])
    return ratios


# The service reading its originals from nginx (run.py's scenario 8), beside
# the one reading the same directory from disk ("service").
REMOTE = "remote"
# Issue 19's goal for the remote service against the local one, req/s.
REMOTE_GOAL = 0.95
ORIGIN_CASES = (
    ("source_hits", "new variants of originals in the source cache, c=4"),
    ("cache_hits", "result-cache hits, c=16"),
)


def versus(
    case: Mapping[str, Runs], out: Mapping[str, Any], ours: str, theirs: str
) -> dict[str, Any]:
    """``ours`` against ``theirs``, measured in the same rounds, each figure
    ours over theirs: req/s (a ratio of medians, and the range of the
    repetition-by-repetition ratios), server CPU per request, p50 and peak
    RSS (above 1: ours costs more)."""
    mine, other = out[ours], out[theirs]
    ours_rps = [float(r["rps"]) for r in case[ours]]
    their_rps = [float(r["rps"]) for r in case[theirs]]
    paired = paired_ratios(ours_rps, their_rps) if len(ours_rps) == len(their_rps) else []
    cpu = [side.get("server_cpu_ms_per_request", {}).get("median") for side in (mine, other)]
    return {
        "rps": ratio(mine["rps"]["median"], other["rps"]["median"]),
        "rps_paired_min": min(paired) if paired else None,
        "rps_paired_max": max(paired) if paired else None,
        "cpu_per_request": ratio(cpu[0], cpu[1]) if cpu[0] and cpu[1] else None,
        "p50": ratio(mine["p50_ms"]["median"], other["p50_ms"]["median"]),
        "peak_rss": ratio(mine["peak_rss_mib"]["median"], other["peak_rss_mib"]["median"]),
    }


def origin_summary(origin: Mapping[str, Any]) -> dict[str, Any]:
    """Scenario 8: each case's sides, the local service and the remote one
    against the baseline (``ratios``, ``remote_ratios``), the remote against
    the local (``remote_vs_local``), and issue 19's targets."""
    out: dict[str, Any] = {"origin_requests": dict(origin.get("origin_requests", {}))}
    found: list[dict[str, Any]] = []
    for key, label in ORIGIN_CASES:
        case = origin.get(key)
        if not case or not case.get("service") or not case.get(REMOTE):
            continue
        summary: dict[str, Any] = {
            name: series_summary(runs) for name, runs in case.items() if runs
        }
        summary["ratios"] = _ratios(case, summary, "service")
        summary["remote_ratios"] = _ratios(case, summary, REMOTE)
        summary["remote_vs_local"] = versus(case, summary, REMOTE, "service")
        out[key] = summary
        value = summary["remote_vs_local"]["rps"]
        if value is not None:
            found.append(
                {
                    "target": f"HTTP origin, {label}: remote / local req/s",
                    "value": value,
                    "goal": f">= {REMOTE_GOAL:.2f}",
                    "met": value >= REMOTE_GOAL,
                }
            )
    out["targets"] = found
    return out


def _after_over_before(case: Mapping[str, Any]) -> float | None:
    return ratio(case["service"]["rps"]["median"], case[BEFORE]["rps"]["median"])


def ab_lines(summary: Mapping[str, Any]) -> list[str]:
    """The A/B table of a --compare-with run: each commit's req/s against the
    baseline measured in the same rounds, and after/before. Empty otherwise."""
    cases: list[tuple[str, Mapping[str, Any]]] = [
        (f"uncached mix, c={c}", case)
        for c, case in sorted(summary.get("uncached", {}).items(), key=lambda kv: int(kv[0]))
    ]
    if "cache_hits" in summary:
        cases.append(("cache hits, c=16", summary["cache_hits"]))
    rows = [
        f"| {label} | {format_ratio(case['ratios'].get('baseline', {}).get('rps'))} "
        f"| {format_ratio(case['before_ratios'].get('baseline', {}).get('rps'))} "
        f"| {format_ratio(_after_over_before(case))} |"
        for label, case in cases
        if "before_ratios" in case
    ]
    if not rows:
        return []
    return [
        "",
        "**A/B: this checkout against --compare-with's, in the same run** (req/s ratios)",
        "",
        "| case | after / baseline | before / baseline | after / before |",
        "|---|---|---|---|",
        *rows,
    ]


def summarize_all(results: Mapping[str, Any]) -> dict[str, Any]:
    summary: dict[str, Any] = {}
    if "uncached" in results:
        summary["uncached"] = {c: case_summary(case) for c, case in results["uncached"].items()}
    for key in ("latency_4mp", "cache_hits", "memory_largest"):
        if key in results:
            summary[key] = case_summary(results[key])
    if "formats" in results:
        summary["formats"] = {f: case_summary(case) for f, case in results["formats"].items()}
    if "origin" in results:
        summary["origin"] = origin_summary(results["origin"])
    if "pageload" in results:
        summary["pageload"] = pageload_summary(results["pageload"])
    if "output_bytes" in results:
        summary["output_bytes"] = output_bytes_summary(results["output_bytes"])
    summary["targets"] = targets(results, summary)
    return summary


def output_bytes_summary(sizes: Mapping[str, Mapping[str, int]]) -> dict[str, Any]:
    """The cache-hit set as each server renders it (the same variants from
    all): total bytes per server, and the service's total over each other's."""
    totals = {name: sum(per_image.values()) for name, per_image in sizes.items() if per_image}
    ours = totals.get("service")
    return {
        "images": max((len(per_image) for per_image in sizes.values()), default=0),
        "total_bytes": totals,
        "ratios": {
            other: ratio(ours, totals[other]) for other in OTHERS if ours and totals.get(other)
        },
    }


def _median(summary: Mapping[str, Any], *path: str) -> float | None:
    node: Any = summary
    for key in path:
        if not isinstance(node, Mapping) or key not in node:
            return None
        node = node[key]
    return float(node) if isinstance(node, int | float) else None


def targets(results: Mapping[str, Any], summary: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The issue's targets, each with the measured value and whether it is met."""
    found: list[dict[str, Any]] = []

    def add(name: str, value: float | None, goal: str, met: bool | None) -> None:
        found.append({"target": name, "value": value, "goal": goal, "met": met})

    libcost = results.get("libcost", {})
    shares = loop_shares(results, summary)
    # Results written before 2026-12-01 looped at 800 px, not at the load's widths.
    widths = "same widths" if "inprocess_runs" in libcost else "loops at 800 px"
    for key, name in (
        ("raw", f"service/baseline vs raw pyvips/Pillow ratio ({widths})"),
        ("raw_cpu", "baseline/service CPU per request vs raw ratio (noise-robust)"),
        ("at_800", "service/baseline vs raw ratio at 800 px (per-image table)"),
        ("vips", "service vs in-process pyvips throughput"),
        ("own", "service vs its render path in process throughput"),
        ("own_cpu", "service's render path CPU in process / over HTTP (noise-robust)"),
    ):
        value = shares[key]
        if value is not None:
            add(f"uncached c=4 mix: {name}", value, ">= 0.90", value >= 0.9)
    c4 = _median(summary, "uncached", "4", "ratios", "baseline", "rps")
    if c4 is not None:
        add("moonshot: uncached c=4 mix vs baseline", c4, ">= 2.0", c4 >= 2.0)
    thumbor = _median(summary, "uncached", "4", "ratios", "thumbor", "rps")
    if thumbor is not None:
        add("uncached c=4 mix vs thumbor", thumbor, "> 1.0", thumbor > 1.0)
    p50 = _median(summary, "latency_4mp", "service", "p50_ms", "median")
    p99 = _median(summary, "latency_4mp", "service", "p99_ms", "median")
    if p50 and p99 is not None:
        add("4 MP JPEG alone c=4: service p99 / p50", p99 / p50, "<= 2.0", p99 / p50 <= 2.0)
    hits = _median(summary, "cache_hits", "ratios", "baseline", "rps")
    if hits is not None:
        add("cache hits c=16 vs baseline", hits, ">= 1.0", hits >= 1.0)
    concurrencies = sorted(summary.get("uncached", {}), key=int)
    if concurrencies:
        top = concurrencies[-1]
        memory = _median(summary, "uncached", top, "ratios", "baseline", "peak_rss")
        if memory is not None:
            add(
                f"peak RSS of the tree, c={top} over the mix, vs baseline",
                memory,
                "<= 1.0",
                memory <= 1.0,
            )
    big = libcost.get("per_image", {}).get("kleiber-46mp.png")
    if big:
        _big_png_targets(big, add)
    return found


def loop_shares(results: Mapping[str, Any], summary: Mapping[str, Any]) -> dict[str, float | None]:
    """The uncached c=4 load as a share of the in-process loops: ``raw``
    (service/baseline over pyvips/Pillow, by req/s), ``raw_cpu`` (the same
    by CPU per request), ``at_800`` (``raw`` against the 800-px per-image
    sum instead), ``vips`` and ``own`` (the service's req/s over plain
    pyvips' and over its own render path's), ``own_cpu`` (the render path's
    CPU per render in process over the service's per request)."""
    libcost = results.get("libcost", {})
    c4 = _median(summary, "uncached", "4", "ratios", "baseline", "rps")
    # The raw ratio of the libraries on the load's own variants: their
    # in-process loops, one process per core, at the load runs' widths.
    loops = libcost.get("inprocess_rps", {})
    raw = ratio(loops.get("vips", 0.0), loops["pillow"]) if loops.get("pillow") else None
    # CPU per render is steadier than renders/s on a shared machine; results
    # from before the loops measured CPU fall back to the throughput ratio.
    cpu_loops = libcost.get("inprocess_cpu_ms_per_render", {})
    raw_cpu = (
        ratio(cpu_loops.get("pillow", 0.0), cpu_loops["vips"]) if cpu_loops.get("vips") else raw
    )
    service_c4 = _median(summary, "uncached", "4", "service", "rps", "median")
    service_cpu = _median(
        summary, "uncached", "4", "service", "server_cpu_ms_per_request", "median"
    )
    shares: dict[str, float | None] = {
        "raw": _share(c4, raw),
        "at_800": _share(c4, libcost.get("mix_speedup")),
        "raw_cpu": _share(
            _median(summary, "uncached", "4", "ratios", "baseline", "cpu_efficiency"), raw_cpu
        ),
        "vips": _share(service_c4, loops.get("vips")),
        "own": _share(service_c4, loops.get("service")),
        "own_cpu": _share(_median(cpu_loops, "service"), service_cpu),
    }
    # Results written from 2026-12-01 evening on pair each loop with a
    # repetition of the load: medians of those run-by-run ratios instead.
    shares.update(paired_shares(results))
    return shares


def _share(part: float | None, whole: float | None) -> float | None:
    """``ratio`` of two figures either of which may not have been measured."""
    return None if part is None or whole is None else ratio(part, whole)


def paired_shares(results: Mapping[str, Any]) -> dict[str, float]:
    """The targets against the in-process loops, as medians of run-by-run
    ratios, when ``benchmarks.run`` ran loop *i* right after repetition *i*
    of the uncached c=4 load (``inprocess_paired_with``); empty otherwise.

    Each ratio then compares figures taken within the same minute, not a
    quarter of an hour apart; the minute-to-minute noise stays (the
    repetitions' ratios spread by 10 % and more here)."""
    libcost = results.get("libcost", {})
    if libcost.get("inprocess_paired_with") != LOOPS_PAIRED_WITH:
        return {}
    loops = libcost.get("inprocess_runs", {})
    load = results.get("uncached", {}).get("4", {})
    sides = [load.get("service", []), load.get("baseline", [])]
    sides += [loops.get(library, []) for library in ("vips", "service", "pillow")]
    values: dict[str, list[float]] = {key: [] for key in ("raw", "raw_cpu", "vips", "own")}
    values["own_cpu"] = []
    for ours, theirs, vips, own, pillow in zip(*sides, strict=False):
        raw = ratio(vips["rps"], pillow["rps"])
        load_ratio = ratio(ours["rps"], theirs["rps"])
        if raw and load_ratio is not None:
            values["raw"].append(load_ratio / raw)
        ours_cpu = ours.get("server_cpu_ms_per_request")
        theirs_cpu = theirs.get("server_cpu_ms_per_request")
        raw_cpu = ratio(pillow["cpu_ms_per_render"], vips["cpu_ms_per_render"])
        if ours_cpu and theirs_cpu and raw_cpu:
            values["raw_cpu"].append(theirs_cpu / ours_cpu / raw_cpu)
            values["own_cpu"].append(own["cpu_ms_per_render"] / ours_cpu)
        for key, loop in (("vips", vips), ("own", own)):
            if loop["rps"]:
                values[key].append(ours["rps"] / loop["rps"])
    return {key: statistics.median(found) for key, found in values.items() if found}


def _big_png_targets(big: Mapping[str, Any], add: Callable[[str, float, str, bool], None]) -> None:
    """The 46 MP PNG's memory target, for plain pyvips (``thumbnail``) and
    for the service's own render path."""
    pillow = big["pillow"]
    own_pillow = pillow["peak_rss_mib"] - pillow["idle_rss_mib"]
    sides = [("pyvips", big["vips"])]
    if "service" in big:
        sides.append(("service path", big["service"]))
    for label, side in sides:
        absolute = side["peak_rss_mib"] / pillow["peak_rss_mib"]
        name = f"46 MP PNG per-render peak RSS, {label} / Pillow (whole process)"
        add(name, absolute, "<= 0.25", absolute <= 0.25)
        if own_pillow > 0:
            own = (side["peak_rss_mib"] - side["idle_rss_mib"]) / own_pillow
            name = f"46 MP PNG per-render peak RSS above idle, {label} / Pillow"
            add(name, own, "<= 0.25", own <= 0.25)


# -- Markdown -----------------------------------------------------------------


def _cell(summary: Mapping[str, Any] | None, key: str = "rps", digits: int = 1) -> str:
    if not summary or key not in summary:
        return "-"
    s = summary[key]
    return f"{s['median']:.{digits}f} ({s['min']:.{digits}f}-{s['max']:.{digits}f})"


def _row(
    label: str, case: Mapping[str, Any], key: str = "rps", digits: int = 1, ratio_key: str = "rps"
) -> str:
    cells = [_cell(case.get(name), key, digits) for name in ORDER]
    ratios = case.get("ratios", {})
    versus = [format_ratio(ratios.get(other, {}).get(ratio_key)) for other in OTHERS]
    return f"| {label} | " + " | ".join(cells + versus) + " |"


HEADER = (
    "| case | service | baseline (Flask + Pillow) | thumbor | ipx "
    "| service / baseline | service / thumbor | service / ipx |\n"
    "|---|---|---|---|---|---|---|---|"
)
# ipx has no result cache of its own (it is made to sit behind a CDN).
IPX_HITS = "ipx keeps no result cache: its cache-hit requests are renders, every one."


def _fewer_runs(plan: Mapping[str, Any]) -> str:
    """The cases a plan (the quick one) measures fewer times than the rest."""
    runs = plan.get("runs")
    fewer = []
    if plan.get("memory_runs", runs) != runs:
        fewer.append(f"{plan['memory_runs']} of the largest images")
    if plan.get("libcost_repeat", runs) != runs:
        fewer.append(f"{plan['libcost_repeat']} render per image in process")
    return f" ({', '.join(fewer)})" if fewer else ""


def _load_tables(summary: Mapping[str, Any]) -> list[str]:
    """Throughput, latency and peak RSS of the load cases; none when no load
    case ran (a run of scenario 1 or 9 alone)."""
    cases = {"uncached", "latency_4mp", "formats", "cache_hits", "memory_largest"}
    if not summary.keys() & cases:
        return []
    lines = [
        "",
        "**Throughput, requests/s** (higher is better)",
        "",
        HEADER,
    ]
    for concurrency, case in sorted(summary.get("uncached", {}).items(), key=lambda kv: int(kv[0])):
        lines.append(_row(f"uncached mix, c={concurrency}", case))
    if "latency_4mp" in summary:
        lines.append(_row("uncached 4 MP JPEG alone, c=4", summary["latency_4mp"]))
    for fmt, case in summary.get("formats", {}).items():
        lines.append(_row(f"uncached mix → {fmt}, c=4", case))
    if "cache_hits" in summary:
        lines.append(_row("cache hits, c=16", summary["cache_hits"], digits=0))
    lines += [
        "",
        "**Latency, ms** (p50 / p99, medians of the runs)",
        "",
        HEADER.replace("service / baseline", "p99/p50 service")
        .replace("| service / thumbor |", "| p99/p50 baseline |")
        .replace("| service / ipx |", "| p99/p50 ipx |"),
    ]
    latency_cases = [
        (f"uncached mix, c={c}", case)
        for c, case in sorted(summary.get("uncached", {}).items(), key=lambda kv: int(kv[0]))
    ]
    if "latency_4mp" in summary:
        latency_cases.append(("4 MP JPEG alone, c=4", summary["latency_4mp"]))
    for label, case in latency_cases:
        cells = []
        for name in ORDER:
            s = case.get(name)
            cells.append(f"{s['p50_ms']['median']:.0f} / {s['p99_ms']['median']:.0f}" if s else "-")
        spread = []
        for name in ("service", "baseline", "ipx"):
            s = case.get(name)
            spread.append(
                f"{s['p99_ms']['median'] / s['p50_ms']['median']:.2f}"
                if s and s["p50_ms"]["median"]
                else "-"
            )
        lines.append(f"| {label} | " + " | ".join(cells + spread) + " |")
    lines += ["", "**Peak RSS of the whole process tree, MiB** (lower is better)", "", HEADER]
    for concurrency, case in sorted(summary.get("uncached", {}).items(), key=lambda kv: int(kv[0])):
        lines.append(_row(f"uncached mix, c={concurrency}", case, "peak_rss_mib", 0, "peak_rss"))
    if "memory_largest" in summary:
        lines.append(
            _row(
                "largest images (13-46 MP) → JPEG, c=16",
                summary["memory_largest"],
                "peak_rss_mib",
                0,
                "peak_rss",
            )
        )
    if "cache_hits" in summary:
        lines.append(_row("cache hits, c=16", summary["cache_hits"], "peak_rss_mib", 0, "peak_rss"))
    return lines + _hits_note(summary) + _bytes_lines(summary)


def _hits_note(summary: Mapping[str, Any]) -> list[str]:
    return ["", IPX_HITS] if "ipx" in summary.get("cache_hits", {}) else []


def _load_cases(summary: Mapping[str, Any]) -> list[tuple[str, Mapping[str, Any]]]:
    """Every load case of the run, labelled as the tables label them."""
    cases: list[tuple[str, Mapping[str, Any]]] = [
        (f"uncached mix, c={c}", case)
        for c, case in sorted(summary.get("uncached", {}).items(), key=lambda kv: int(kv[0]))
    ]
    if "latency_4mp" in summary:
        cases.append(("uncached 4 MP JPEG alone, c=4", summary["latency_4mp"]))
    cases += [(f"uncached mix → {f}, c=4", c) for f, c in summary.get("formats", {}).items()]
    if "cache_hits" in summary:
        cases.append(("cache hits, c=16", summary["cache_hits"]))
    if "memory_largest" in summary:
        cases.append(("largest images (13-46 MP) → JPEG, c=16", summary["memory_largest"]))
    return cases


def _bytes_lines(summary: Mapping[str, Any]) -> list[str]:
    """Output parity: the mean body of each case's responses (each server
    walks the same list of variants, each as far as it gets), and the
    cache-hit set's total, the very same variants from every server."""
    rows = [
        _row(label, case, "bytes_per_response", 0, "bytes_per_response")
        for label, case in _load_cases(summary)
        if any("bytes_per_response" in case.get(name, {}) for name in ORDER)
    ]
    hit_set = summary.get("output_bytes")
    if hit_set and hit_set["total_bytes"]:
        totals, ratios = hit_set["total_bytes"], hit_set["ratios"]
        cells = [str(totals[name]) if name in totals else "-" for name in ORDER]
        cells += [format_ratio(ratios.get(other)) for other in OTHERS]
        label = f"the cache-hit set, {hit_set['images']} images, total"
        rows.append(f"| {label} | " + " | ".join(cells) + " |")
    if not rows:
        return []
    return [
        "",
        "**Output bytes per response** (mean of each run, medians of the runs; the same "
        "formats and qualities on every server: a ratio far from 1 says the outputs differ)",
        "",
        HEADER,
        *rows,
    ]


def markdown(results: Mapping[str, Any]) -> str:
    summary = results.get("summary") or summarize_all(results)
    plan = results.get("plan", {})
    lines = [
        f"Run of {results.get('started', '?')}: {plan.get('runs', '?')} runs of each case"
        f"{_fewer_runs(plan)}, "
        f"{plan.get('seconds', '?')} s each (uncached); medians, with the range of the runs in "
        "brackets; ratios are of medians. Machine: "
        f"{results.get('machine', {}).get('cpus', '?')} cores, "
        f"{results.get('machine', {}).get('cpu_model', '?')}.",
    ]
    lines += [f"Skipped: {reason}" for reason in results.get("skipped", {}).values()]
    lines += _load_tables(summary)
    cpu_rows = [
        (f"uncached mix, c={c}", case)
        for c, case in sorted(summary.get("uncached", {}).items(), key=lambda kv: int(kv[0]))
    ]
    if "latency_4mp" in summary:
        cpu_rows.append(("uncached 4 MP JPEG alone, c=4", summary["latency_4mp"]))
    cpu_rows += [(f"uncached mix → {f}, c=4", c) for f, c in summary.get("formats", {}).items()]
    if cpu_rows:
        lines += [
            "",
            "**Server CPU per request, ms** (all processes of the server; less noisy than "
            "req/s on a shared machine; the ratios say how many times less CPU the service "
            "spends per request)",
            "",
            HEADER,
        ]
        for label, case in cpu_rows:
            lines.append(_row(label, case, "server_cpu_ms_per_request", 1, "cpu_efficiency"))
    libcost = results.get("libcost")
    if libcost and "per_image" in libcost:
        lines += [
            "",
            "**In-process cost per image** (scenario 1: median ms of one render to 800 px, "
            "original's format; peak RSS of the process, MiB)",
            "",
            "| image | pyvips ms | service path ms | Pillow ms | Pillow / pyvips "
            "| pyvips peak RSS | service path peak RSS | Pillow peak RSS |",
            "|---|---|---|---|---|---|---|---|",
        ]
        for name, row in libcost["per_image"].items():
            vips, pillow = row["vips"], row["pillow"]
            service = row.get("service")  # absent in results older than the column
            service_ms = f"{service['ms_median']:.0f}" if service else "-"
            service_rss = f"{service['peak_rss_mib']:.0f}" if service else "-"
            lines.append(
                f"| {name} | {vips['ms_median']:.0f} | {service_ms} | "
                f"{pillow['ms_median']:.0f} | {row['speedup']:.2f}x | "
                f"{vips['peak_rss_mib']:.0f} | {service_rss} | {pillow['peak_rss_mib']:.0f} |"
            )
        totals = libcost["mix_ms_total"]
        lines.append(
            f"| **mix total** | {totals['vips']:.0f} | | {totals['pillow']:.0f} | "
            f"**{libcost['mix_speedup']:.2f}x** | | | |"
        )
    if libcost and (rps := libcost.get("inprocess_rps")):
        lines += ["", _inprocess_sentence(rps, libcost.get("inprocess_cpu_ms_per_render", {}))]
        if libcost.get("inprocess_paired_with"):
            same_work = any(
                "stretch" in run
                for runs in libcost.get("inprocess_runs", {}).values()
                for run in runs
            )
            lines.append(
                "Each loop ran right after a repetition of the uncached c=4 load"
                + (
                    ", over the variants its server answered in it, from the first on (pyvips "
                    "and the service's path the service's, Pillow the baseline's)"
                    if same_work
                    else ""
                )
                + "; the targets against the loops below are medians of those run-by-run ratios."
            )
    found = summary.get("targets", [])
    if found:
        lines += [
            "",
            "**Targets of issue 4**",
            "",
            "| target | measured | goal | met |",
            "|---|---|---|---|",
        ]
        for t in found:
            value = "-" if t["value"] is None else f"{t['value']:.2f}"
            met = {True: "yes", False: "**no**", None: "-"}[t["met"]]
            lines.append(f"| {t['target']} | {value} | {t['goal']} | {met} |")
    lines += origin_lines(summary.get("origin", {}))
    lines += pageload_lines(summary.get("pageload", {}))
    lines += ab_lines(summary)
    return "\n".join(lines) + "\n"


def origin_lines(origin: Mapping[str, Any]) -> list[str]:
    """Scenario 8's table, what nginx was asked, and issue 19's targets;
    empty when it did not run."""
    cases = [(key, label, origin[key]) for key, label in ORIGIN_CASES if key in origin]
    if not cases:
        return []
    lines = [
        "",
        "**Remote originals** (scenario 8): `remote` is the service reading the corpus from "
        "nginx on loopback (`--originals http://127.0.0.1:PORT/`), `service` the same "
        "settings reading the directory; `remote / local` is remote's figure over local's "
        "(req/s: higher is better; CPU, p50, RSS: above 1 costs more)",
        "",
        "| case | service (local) | remote (HTTP origin) | baseline | remote / local "
        "| service / baseline | remote / baseline |",
        "|---|---|---|---|---|---|---|",
    ]
    for _, label, case in cases:
        versus_local = case["remote_vs_local"]
        lowest, highest = versus_local["rps_paired_min"], versus_local["rps_paired_max"]
        spread = f" ({lowest:.2f}-{highest:.2f})" if lowest is not None else ""
        rows = [
            ("req/s", "rps", 1, "rps"),
            ("server CPU ms a request", "server_cpu_ms_per_request", 2, "cpu_per_request"),
            ("p50 ms", "p50_ms", 1, "p50"),
            ("peak RSS of the tree, MiB", "peak_rss_mib", 0, "peak_rss"),
        ]
        for name, key, digits, versus_key in rows:
            cells = [_cell(case.get(side), key, digits) for side in ("service", REMOTE, "baseline")]
            ratio_cell = format_ratio(versus_local.get(versus_key))
            baseline = ["-", "-"]
            if key == "rps":
                ratio_cell += spread
                baseline = [
                    format_ratio(case[group].get("baseline", {}).get("rps"))
                    for group in ("ratios", "remote_ratios")
                ]
            lines.append(
                f"| {label}: {name} | " + " | ".join([*cells, ratio_cell, *baseline]) + " |"
            )
    asked = origin.get("origin_requests", {})
    if asked:
        phases = {"warm": "warming", "source_hits": "the source-cache runs",
                  "cache_hits": "the result-cache runs"}  # fmt: skip
        parts = [
            f"{phases.get(phase, phase)} {_statuses(counts)}" for phase, counts in asked.items()
        ]
        lines += ["", "Requests nginx answered (by status): " + "; ".join(parts) + "."]
    if origin.get("targets"):
        lines += ["", "| target (issue 19) | measured | goal | met |", "|---|---|---|---|"]
        for t in origin["targets"]:
            met = "yes" if t["met"] else "**no**"
            lines.append(f"| {t['target']} | {t['value']:.2f} | {t['goal']} | {met} |")
    return lines


# Scenario 9 (benchmarks.pageload): each figure of a run, its label, how it is
# read from the run, the digits shown.
PAGELOAD_FIGURES: tuple[tuple[str, str, Callable[[Mapping[str, Any]], float | None], int], ...] = (
    ("renders", "renders (all requests)", lambda r: r["renders"], 0),
    ("renders_burst", "renders in the burst", lambda r: r["renders_burst"], 0),
    ("cache_entries", "cache entries", lambda r: r["cache_entries"], 0),
    ("cache_mb", "cache MB (/metrics)", lambda r: _mb(r["cache_bytes"]), 1),
    ("du_mb", "cache directory MB on disk (du)", lambda r: _mb(r["du_bytes"]), 1),
    ("page_rps", "page loads: req/s", lambda r: r["page"]["rps"], 1),
    ("page_p50", "page loads: p50 ms", lambda r: r["page"]["latency_ms"]["p50"], 0),
    ("page_p99", "page loads: p99 ms", lambda r: r["page"]["latency_ms"]["p99"], 0),
    ("burst_rps", "burst: req/s", lambda r: r["burst"]["rps"], 1),
    ("burst_p50", "burst: p50 ms", lambda r: r["burst"]["latency_ms"]["p50"], 0),
    ("burst_p99", "burst: p99 ms", lambda r: r["burst"]["latency_ms"]["p99"], 0),
)
PAGELOAD_VARIANTS = ("plain", "ladder")


def _mb(value: float | None) -> float | None:
    return None if value is None else value / 1e6


def _not_answered_200(run: Mapping[str, Any]) -> int:
    """A run's requests answered otherwise than 200, or not at all."""
    phases = [run[phase] for phase in ("burst", "page")]
    other = sum(int(c) for p in phases for code, c in p["statuses"].items() if code != "200")
    return other + sum(int(c) for p in phases for c in p["errors"].values())


def pageload_summary(pageload: Mapping[str, Any]) -> dict[str, Any]:
    """Scenario 9: each variant's medians (and ranges) over its runs, ladder
    over plain of the medians, and the requests not answered 200."""
    out: dict[str, Any] = {
        "workload": dict(pageload.get("workload", {})),
        "skipped": dict(pageload.get("skipped", {})),
    }
    for variant, runs in pageload.get("runs", {}).items():
        figures: dict[str, Any] = {}
        for key, _, read, _ in PAGELOAD_FIGURES:
            values = [float(value) for run in runs if (value := read(run)) is not None]
            if values:
                figures[key] = summarize(values).as_dict()
        figures["not_ok"] = sum(_not_answered_200(run) for run in runs)
        out[variant] = figures
    if "plain" in out and "ladder" in out:
        out["ladder_over_plain"] = {
            key: ratio(out["ladder"][key]["median"], out["plain"][key]["median"])
            for key, *_ in PAGELOAD_FIGURES
            if key in out["ladder"] and key in out["plain"]
        }
    return out


def _range_cell(figures: Mapping[str, Any] | None, key: str, digits: int) -> str:
    if not figures or key not in figures:
        return "-"
    s = figures[key]
    if s["runs"] == 1:
        return f"{s['median']:.{digits}f}"
    return f"{s['median']:.{digits}f} ({s['min']:.{digits}f}-{s['max']:.{digits}f})"


def pageload_lines(summary: Mapping[str, Any]) -> list[str]:
    """Scenario 9's table and what did not run; empty when it did not run."""
    if not any(variant in summary for variant in PAGELOAD_VARIANTS):
        return []
    work = summary.get("workload", {})
    ladder = ",".join(str(step) for step in work.get("ladder", []))
    widths = work.get("device_widths", {})
    lines = [
        "",
        f"**Page load** (scenario 9): {work.get('browsers', '?')} browsers (seeded) each ask "
        f"the {len(work.get('originals', []))} originals once at their width "
        f"({work.get('distinct_widths', '?')} distinct widths, {widths.get('min', '?')}-"
        f"{widths.get('max', '?')} px) → {work.get('format', '?')} at "
        f"c={work.get('page_concurrency', '?')}, after a burst of each original at every "
        f"ladder width at once; `ladder` is the service with `--widths {ladder}`, `plain` "
        "without, each run a fresh service and cache",
        "",
        "| figure | plain | ladder | ladder / plain |",
        "|---|---|---|---|",
    ]
    ratios = summary.get("ladder_over_plain", {})
    for key, label, _, digits in PAGELOAD_FIGURES:
        cells = [_range_cell(summary.get(variant), key, digits) for variant in PAGELOAD_VARIANTS]
        lines.append(f"| {label} | {' | '.join(cells)} | {format_ratio(ratios.get(key))} |")
    for variant, reason in summary.get("skipped", {}).items():
        lines += ["", f"The {variant} variant did not run: {reason}."]
    failed = [
        f"{variant} {summary[variant]['not_ok']}"
        for variant in PAGELOAD_VARIANTS
        if summary.get(variant, {}).get("not_ok")
    ]
    if failed:
        lines += ["", f"Requests not answered 200: {', '.join(failed)}."]
    return lines


def _statuses(counts: Mapping[str, int]) -> str:
    if not counts:
        return "none"
    return ", ".join(f"{count} x {status}" for status, count in sorted(counts.items()))


def _inprocess_sentence(rps: Mapping[str, float], cpu: Mapping[str, float]) -> str:
    names = {"vips": "pyvips", "service": "service path", "pillow": "Pillow"}
    parts = []
    for library, name in names.items():
        if library in rps:
            part = f"{name} {rps[library]:.1f}"
            if library in cpu:
                part += f" ({cpu[library]:.1f} ms CPU each)"
            parts.append(part)
    speedup = format_ratio(ratio(rps.get("vips", 0), rps.get("pillow", 0)))
    return (
        "In-process throughput over the mix at the load runs' widths, one process per core, "
        f"renders/s (medians of the runs): {', '.join(parts)}; pyvips / Pillow {speedup}."
    )


# The ratios that the README quotes, as medians over several full runs.
ACROSS_RATIOS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("uncached mix c=1, req/s vs baseline", ("uncached", "1", "ratios", "baseline", "rps")),
    ("uncached mix c=4, req/s vs baseline", ("uncached", "4", "ratios", "baseline", "rps")),
    ("uncached mix c=16, req/s vs baseline", ("uncached", "16", "ratios", "baseline", "rps")),
    ("uncached mix c=4, req/s vs thumbor", ("uncached", "4", "ratios", "thumbor", "rps")),
    ("uncached mix c=4, req/s vs ipx", ("uncached", "4", "ratios", "ipx", "rps")),
    ("uncached mix c=16, req/s vs ipx", ("uncached", "16", "ratios", "ipx", "rps")),
    (
        "uncached mix c=4, less CPU per request than baseline",
        ("uncached", "4", "ratios", "baseline", "cpu_efficiency"),
    ),
    (
        "uncached mix c=4, less CPU per request than thumbor",
        ("uncached", "4", "ratios", "thumbor", "cpu_efficiency"),
    ),
    (
        "uncached mix c=4, less CPU per request than ipx",
        ("uncached", "4", "ratios", "ipx", "cpu_efficiency"),
    ),
    ("4 MP JPEG alone c=4, req/s vs baseline", ("latency_4mp", "ratios", "baseline", "rps")),
    ("cache hits c=16, req/s vs baseline", ("cache_hits", "ratios", "baseline", "rps")),
    (
        "peak RSS of the tree, mix c=4, vs baseline",
        ("uncached", "4", "ratios", "baseline", "peak_rss"),
    ),
    (
        "peak RSS of the tree, mix c=16, vs baseline",
        ("uncached", "16", "ratios", "baseline", "peak_rss"),
    ),
    (
        "peak RSS, largest images c=16, vs baseline",
        ("memory_largest", "ratios", "baseline", "peak_rss"),
    ),
    (
        "HTTP origin, new variants of cached sources c=4, remote / local req/s",
        ("origin", "source_hits", "remote_vs_local", "rps"),
    ),
    (
        "HTTP origin, new variants of cached sources c=4, remote / local CPU",
        ("origin", "source_hits", "remote_vs_local", "cpu_per_request"),
    ),
    (
        "HTTP origin, result-cache hits c=16, remote / local req/s",
        ("origin", "cache_hits", "remote_vs_local", "rps"),
    ),
    (
        "HTTP origin, result-cache hits c=16, remote / local CPU",
        ("origin", "cache_hits", "remote_vs_local", "cpu_per_request"),
    ),
    ("page load, renders, ladder / plain", ("pageload", "ladder_over_plain", "renders")),
    ("page load, cache bytes on disk, ladder / plain", ("pageload", "ladder_over_plain", "du_mb")),
    ("page load, req/s, ladder / plain", ("pageload", "ladder_over_plain", "page_rps")),
)


def across_runs(runs: Sequence[Mapping[str, Any]]) -> str:
    """The targets and headline ratios of several results files side by
    side, with their medians: what the README quotes."""
    summaries = [run.get("summary") or summarize_all(run) for run in runs]
    labels = [str(run.get("started", "?")) for run in runs]
    rows: dict[str, list[float | None]] = {}
    for index, summary in enumerate(summaries):
        for found in summary.get("targets", []):
            values = rows.setdefault(found["target"], [None] * len(runs))
            values[index] = found["value"]
    for name, path in ACROSS_RATIOS:
        rows[name] = [_median(summary, *path) for summary in summaries]
    lines = [
        "| target or ratio | " + " | ".join(labels) + " | median |",
        "|---|" + "---|" * (len(runs) + 1),
    ]
    for name, values in rows.items():
        measured = [value for value in values if value is not None]
        if not measured:
            continue
        cells = ["-" if value is None else f"{value:.2f}" for value in values]
        lines.append(f"| {name} | " + " | ".join(cells) + f" | {summarize(measured).median:.2f} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(
        description="Re-render the tables of a results file; with several, "
        "their targets and headline ratios side by side, with medians"
    )
    parser.add_argument("results", nargs="+")
    args = parser.parse_args()
    loaded = []
    for path in args.results:
        with open(path) as handle:
            results = json.load(handle)
        results["summary"] = summarize_all(results)
        loaded.append(results)
    # markdown() ends its text with a newline already.
    print(markdown(loaded[0]) if len(loaded) == 1 else across_runs(loaded), end="")


if __name__ == "__main__":
    main()
