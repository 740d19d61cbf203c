"""q=auto against the fixed defaults (issue 24, item 3's targets).

    .venv/bin/python -m benchmarks.quality.auto [--rounds 3] [--target 80]

For each corpus photo and drawn image (``images``) at 800 px wide (or its
own width), for JPEG, WebP and AVIF: the service's whole render in process
(``service.render.render``: decode, resize, encode; q=auto's search
included), once at the format's fixed default q and once with q=auto,
alternated within each round, ``--rounds`` rounds (times: medians). Each
output is scored against the service's unencoded render at the same size
(its PNG) with the scorer q=auto uses, its candidates decoded as the
search decodes them. It renders as the service does: one libvips thread
a render, and the service's allocator settings (re-executing itself with
them; an operator's own ``GLIBC_TUNABLES`` wins). It also reports where
one more search of each image spends its time. Writes
``benchmarks/results/quality-auto-<stamp>.{json,md}``.

The targets: q=auto reaches its target on >= 95 % of the images, with
mean bytes <= 0.8x the fixed default's, at <= 2.5x a fixed render's time.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

# One libvips thread per render, as the service runs it: service/render
# sets it too, but this module imports pyvips first and libvips reads it
# once, so without this line the lab rendered with a thread per core.
os.environ.setdefault("VIPS_CONCURRENCY", "1")

import pyvips

from service.formats import FIXED_QUALITY, OutputFormat
from service.process import allocator
from service.render import (
    RenderPolicy,
    RenderRequest,
    configure_libvips,
    read_facts,
    render,
    score_pixels,
)
from service.render import auto_quality as aq
from service.render.ssimulacra2 import Reference

from .. import corpus
from ..competitors import ROOT, describe_machine
from . import images

RESULTS = os.path.join(ROOT, "benchmarks", "results")
WIDTH = 800
FORMATS = (OutputFormat.JPEG, OutputFormat.WEBP, OutputFormat.AVIF)


@dataclass(slots=True)
class Row:
    name: str
    kind: str
    format: str
    width: int
    height: int
    fixed_q: int
    fixed_bytes: int
    fixed_score: float
    fixed_ms: float
    fixed_cpu_ms: float
    auto_q: int
    auto_bytes: int
    auto_score: float
    auto_ms: float
    auto_cpu_ms: float
    # The median over rounds of each round's q=auto time over its fixed
    # time: the two renders of a round are adjacent, so a machine's slow
    # drift (other work on a shared host) cancels out of each ratio.
    paired_time_ratio: float
    paired_cpu_ratio: float
    encodes: int
    search_ms: dict[str, float]  # one spied search: in all, and its PARTS


def _policy(auto: bool, target: float) -> RenderPolicy:
    quality: dict[OutputFormat, int | str] = dict(FIXED_QUALITY)
    if auto:
        quality = dict.fromkeys(FIXED_QUALITY, "auto")
    return RenderPolicy(
        quality=quality,  # type: ignore[arg-type]
        max_output_size=4096,
        max_source_pixels=10**9,
        avif_effort=0,
        auto_quality_target=target,
        timeout_seconds=120.0,
    )


def _render(
    path: str, output: OutputFormat, width: int, policy: RenderPolicy
) -> tuple[bytes, int | None, float, float]:
    """The service's render: (bytes, q, seconds, CPU seconds of the process:
    libvips' threads included)."""
    request = RenderRequest(width=width, height=None, format=output, background=(255,) * 4)
    source = os.open(path, os.O_RDONLY)
    try:
        with tempfile.TemporaryFile() as target:
            began, cpu = time.perf_counter(), time.process_time()
            facts = read_facts(source, allow_svg=False)
            result = render(policy, request, facts, source, target.fileno())
            seconds, cpu = time.perf_counter() - began, time.process_time() - cpu
            target.seek(0)
            return target.read(), result.quality, seconds, cpu
    finally:
        os.close(source)


PARTS = ("decode", "reference", "score")


def _search_parts(
    path: str, output: OutputFormat, width: int, target: float
) -> tuple[int, dict[str, float]]:
    """One more q=auto render, spied: how many encodes its search made, and
    the ms it spent in all (``search``), decoding candidates, preparing
    references and scoring (the rest is the encodes and the probe)."""
    counted: list[int] = []
    spent = dict.fromkeys(("search", *PARTS), 0.0)
    real_search, real_decode = aq.search_quality, score_pixels.decoded_pixels
    real_init, real_score = Reference.__init__, Reference.score

    def timed(part: str, call: Callable[..., Any]) -> Callable[..., Any]:
        def spy(*args: Any, **kwargs: Any) -> Any:  # noqa: ANN401
            began = time.perf_counter()
            try:
                return call(*args, **kwargs)
            finally:
                spent[part] += (time.perf_counter() - began) * 1000

        return spy

    def search(*args: Any, **kwargs: Any) -> aq.Search:  # noqa: ANN401
        found: aq.Search = timed("search", real_search)(*args, **kwargs)
        counted.append(len(found.encodes))
        return found

    aq.search_quality = search
    score_pixels.decoded_pixels = timed("decode", real_decode)
    Reference.__init__ = timed("reference", real_init)  # type: ignore[method-assign]
    Reference.score = timed("score", real_score)  # type: ignore[method-assign]
    try:
        _render(path, output, width, _policy(True, target))
    finally:
        aq.search_quality, score_pixels.decoded_pixels = real_search, real_decode
        Reference.__init__ = real_init  # type: ignore[method-assign]
        Reference.score = real_score  # type: ignore[method-assign]
    return (counted[0] if counted else 0), spent


def measure(originals: list[images.Original], rounds: int, target: float) -> list[Row]:
    rows = []
    fixed, auto = _policy(False, target), _policy(True, target)
    for original in originals:
        header = pyvips.Image.new_from_file(original.path)
        width = min(WIDTH, header.width)
        png, _, _, _ = _render(original.path, OutputFormat.PNG, width, fixed)
        reference_image = images.flatten(pyvips.Image.new_from_buffer(png, ""))
        reference = Reference(score_pixels.pixels_of(reference_image))
        for output in FORMATS:
            print(f"auto: {original.name} {output.value}", file=sys.stderr, flush=True)
            times: dict[bool, list[float]] = {False: [], True: []}
            cpus: dict[bool, list[float]] = {False: [], True: []}
            outputs: dict[bool, tuple[bytes, int | None]] = {}
            for index in range(rounds):
                for is_auto in (False, True) if index % 2 == 0 else (True, False):
                    data, quality, seconds, cpu = _render(
                        original.path, output, width, auto if is_auto else fixed
                    )
                    times[is_auto].append(seconds)
                    cpus[is_auto].append(cpu)
                    outputs[is_auto] = data, quality
            score = {
                # Decoded as the search decodes its candidates.
                is_auto: reference.score(score_pixels.decoded_pixels(data, output, alpha=False))
                for is_auto, (data, _) in outputs.items()
            }
            rows.append(
                Row(
                    original.name,
                    original.kind,
                    output.value,
                    reference_image.width,
                    reference_image.height,
                    outputs[False][1] or 0,
                    len(outputs[False][0]),
                    score[False],
                    statistics.median(times[False]) * 1000,
                    statistics.median(cpus[False]) * 1000,
                    outputs[True][1] or 0,
                    len(outputs[True][0]),
                    score[True],
                    statistics.median(times[True]) * 1000,
                    statistics.median(cpus[True]) * 1000,
                    _paired(times),
                    _paired(cpus),
                    *_search_parts(original.path, output, width, target),
                )
            )
    return rows


def _paired(seconds: dict[bool, list[float]]) -> float:
    """The median of the rounds' q=auto over fixed ratios."""
    rounds = zip(seconds[False], seconds[True], strict=True)
    return statistics.median(auto / fixed for fixed, auto in rounds)


def _parts(row: Row) -> dict[str, float]:
    """A row's spied search, with what its PARTS leave: encodes, probe."""
    rest = row.search_ms["search"] - sum(row.search_ms[part] for part in PARTS)
    return {**row.search_ms, "rest": rest}


def summary(rows: list[Row], target: float) -> list[dict[str, Any]]:
    """Per format and kind: reached, bytes and time ratios."""
    found = []
    groups = sorted({(row.format, row.kind) for row in rows})
    for fmt, kind in [*groups, *[(f, "all") for f in sorted({r.format for r in rows})]]:
        chosen = [r for r in rows if r.format == fmt and kind in ("all", r.kind)]
        reached = [r for r in chosen if r.auto_score >= target]
        near = [r for r in chosen if r.auto_score >= target - 0.5]
        found.append(
            {
                "format": fmt,
                "kind": kind,
                "images": len(chosen),
                "reached": len(reached) / len(chosen),
                "reached_within_half_a_point": len(near) / len(chosen),
                "bytes_ratio_of_sums": sum(r.auto_bytes for r in chosen)
                / sum(r.fixed_bytes for r in chosen),
                "bytes_ratio_mean": statistics.mean(r.auto_bytes / r.fixed_bytes for r in chosen),
                "bytes_ratio_median": statistics.median(
                    r.auto_bytes / r.fixed_bytes for r in chosen
                ),
                "time_ratio_median": statistics.median(r.auto_ms / r.fixed_ms for r in chosen),
                "cpu_ratio_median": statistics.median(
                    r.auto_cpu_ms / r.fixed_cpu_ms for r in chosen
                ),
                "paired_time_ratio_median": statistics.median(r.paired_time_ratio for r in chosen),
                "paired_cpu_ratio_median": statistics.median(r.paired_cpu_ratio for r in chosen),
                "fixed_ms_median": statistics.median(r.fixed_ms for r in chosen),
                "auto_ms_median": statistics.median(r.auto_ms for r in chosen),
                "fixed_score_mean": statistics.mean(r.fixed_score for r in chosen),
                "auto_score_mean": statistics.mean(r.auto_score for r in chosen),
                "auto_q_median": statistics.median(r.auto_q for r in chosen),
                "encodes_max": max(r.encodes for r in chosen),
                "search_ms_median": {
                    part: statistics.median(_parts(r)[part] for r in chosen)
                    for part in ("search", *PARTS, "rest")
                },
            }
        )
    return found


def markdown(results: dict[str, Any]) -> str:
    target = results["target"]
    lines = [
        f"# q=auto against the fixed defaults, {results['started']}",
        "",
        f"Target SSIMULACRA2 {target:g}; {results['rounds']} rounds, alternating; "
        f"medians of the render times and CPU times (in process: decode, resize, encode, "
        f"search; CPU: the process', libvips' threads included). "
        f"Machine: {results['machine']}. Allocator: {results.get('allocator', 'not recorded')}.",
        "",
        "| format | kind | images | reached | within 0.5 | bytes (sums) | bytes (mean ratio) "
        "| bytes (median ratio) | time (median ratio) | CPU (median ratio) "
        "| time, paired by round (median) | CPU, paired | fixed ms "
        "| auto ms | score fixed / auto (mean) | auto q (median) | encodes (max) |",
        "|" + "---|" * 17,
    ]
    for s in results["summary"]:
        lines.append(
            f"| {s['format']} | {s['kind']} | {s['images']} | {s['reached']:.0%} "
            f"| {s['reached_within_half_a_point']:.0%} | {s['bytes_ratio_of_sums']:.2f}x "
            f"| {s['bytes_ratio_mean']:.2f}x | {s['bytes_ratio_median']:.2f}x "
            f"| {s['time_ratio_median']:.2f}x | {s['cpu_ratio_median']:.2f}x "
            f"| {s['paired_time_ratio_median']:.2f}x | {s['paired_cpu_ratio_median']:.2f}x "
            f"| {s['fixed_ms_median']:.0f} "
            f"| {s['auto_ms_median']:.0f} | {s['fixed_score_mean']:.1f} / "
            f"{s['auto_score_mean']:.1f} | {s['auto_q_median']:g} | {s['encodes_max']} |"
        )
    lines += [
        "",
        "Where a search's time goes (one more q=auto render of each image, spied; "
        "medians over the images, ms; the rest: the encodes and the probe's resize):",
        "",
        "| format | kind | search | candidates' decodes | references | scores | the rest |",
        "|" + "---|" * 7,
    ]
    for s in results["summary"]:
        parts = s["search_ms_median"]
        lines.append(
            f"| {s['format']} | {s['kind']} | {parts['search']:.0f} | {parts['decode']:.0f} "
            f"| {parts['reference']:.0f} | {parts['score']:.0f} | {parts['rest']:.0f} |"
        )
    lines += [
        "",
        "| image | format | size | fixed q, bytes, score, ms | auto q, bytes, score, ms "
        "| encodes |",
        "|---|---|---|---|---|---|",
    ]
    for r in results["rows"]:
        lines.append(
            f"| {r['name']} | {r['format']} | {r['width']}x{r['height']} "
            f"| {r['fixed_q']}, {r['fixed_bytes']:,}, {r['fixed_score']:.1f}, "
            f"{r['fixed_ms']:.0f} | {r['auto_q']}, {r['auto_bytes']:,}, "
            f"{r['auto_score']:.1f}, {r['auto_ms']:.0f} | {r['encodes']} |"
        )
    return "\n".join(lines) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--target", type=float, default=80.0)
    parser.add_argument("--only", choices=("photo", "drawn"))
    parser.add_argument("--limit", type=int, help="the first N images of each kind")
    parser.add_argument("--corpus", default=os.path.join(ROOT, corpus.DEFAULT_DIR))
    args = parser.parse_args()
    # The service's own allocator settings (process/allocator.py), which
    # decide what a search's fresh buffers cost: re-executed once with them.
    allocator.reexec_with_tuned_malloc(sys.argv[1:], module="benchmarks.quality.auto")
    configure_libvips()
    originals = images.selected(args.corpus, args.only, args.limit)
    started = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime())
    rows = measure(originals, args.rounds, args.target)
    results = {
        "started": started,
        "machine": describe_machine(),
        "allocator": os.environ.get("GLIBC_TUNABLES", "glibc's defaults"),
        "rounds": args.rounds,
        "target": args.target,
        "summary": summary(rows, args.target),
        "rows": [asdict(row) for row in rows],
    }
    stamp = time.strftime("%Y-%m-%d-%H%M%S", time.gmtime())
    path = os.path.join(RESULTS, f"quality-auto-{stamp}")
    with open(path + ".json", "w") as handle:
        json.dump(results, handle, indent=1)
    with open(path + ".md", "w") as handle:
        handle.write(markdown(results))
    print(markdown(results))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
