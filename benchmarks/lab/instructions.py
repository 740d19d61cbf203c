"""Instruction counts: the one measure of the renders that a shared machine's noise cannot move.

    python -m benchmarks.lab.instructions        # make bench-instructions, about 12 minutes

On the 2-core machines we measure on, the same uncached load at c=4 cost
the service 91-141 ms of CPU per request in the full runs of one day
(2026-12-01), and req/s swings more. valgrind's
callgrind counts the instructions each side executes instead (user space,
every thread, summed over the process tree), which repeat to a fraction of a
percent. Each side renders the same uncached variants
(``urls.spread_variants``: the images of the mix round-robin, each variant
at another of the load runs' widths, 24 of them averaging 841 px, each in
its own format), after one render of each image at 64 px that loads the
codecs; every process is dumped just before and just after them, and once
more after 20 s idle, whose rate of background work (timers) is subtracted
for the stretch's length: at full speed it is nothing per request, under
valgrind a stretch lasts minutes:

- ``vips``: plain pyvips in process (``benchmarks.libcost``);
- ``service-path``: the service's render path in process;
- ``service``: Image Factory over HTTP, started as ``make bench`` starts it
  (one worker per core, the supervisor), one request at a time;
- ``pillow``: Pillow's ``Image.thumbnail`` in process;
- ``baseline``: Flask + Pillow under gunicorn, as ``make bench`` starts it.

What the counts do not see: the kernel's time (page faults, system calls),
cache misses and stalls, and time a core sits idle. The req/s and CPU tables
see those; the counts say how much of a gap is the code each side runs.
Writes ``benchmarks/results/instructions-<date>.json`` and ``.md``.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import datetime
import glob
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from .. import competitors, corpus, debian, proctree, urls
from ..run import (
    CORES,
    RESULTS_DIR,
    library_environment,
    library_python,
    measured_commit,
    quality_args,
    results_stamp,
)
from .handshake import answer, ready_child, tell

IN_PROCESS = ("vips", "service-path", "pillow")
OVER_HTTP = ("service", "baseline")
SIDES = (*IN_PROCESS, *OVER_HTTP)
# Each image of the 12-image mix twice, at 24 different widths of the load runs.
DEFAULT_VARIANTS = 24
# valgrind runs code ~50x slower: a 250 ms render takes over 10 s, the 24
# renders of a side several minutes.
_SLOW_SECONDS = 600
_STRETCH_SECONDS = 3600
# How long each side's background work is counted for, idle, after its renders.
_IDLE_SECONDS = 20.0


@dataclass(frozen=True, slots=True)
class Count:
    """What one side executed for the variants."""

    side: str
    instructions: int  # the measured stretch, less the side's background work
    renders: int
    processes: int
    seconds: float  # how long the measured stretch took under valgrind
    background_per_second: float  # what the side's processes run while idle

    @property
    def per_render(self) -> float:
        return self.instructions / self.renders


def callgrind_totals(text: str) -> int:
    """The instruction total of one callgrind output file: its closing
    ``totals:`` line, else the header's ``summary:``."""
    totals = re.findall(r"^totals:\s+(\d+)", text, re.MULTILINE)
    if totals:
        return int(totals[-1])
    summary = re.search(r"^summary:\s+(\d+)", text, re.MULTILINE)
    if summary is None:
        raise ValueError("no totals or summary line: not a callgrind output file")
    return int(summary.group(1))


def latest_dump(directory: str, pid: int) -> tuple[int, str] | None:
    """The newest numbered dump (``callgrind.PID.N``) of ``pid`` and its
    number. The unnumbered file is the process's output at exit (or at an
    exec), never a measured stretch."""
    numbered: list[tuple[int, str]] = []
    for path in glob.glob(os.path.join(directory, f"callgrind.{pid}.*")):
        suffix = path.rsplit(".", 1)[1]
        if suffix.isdigit():
            numbered.append((int(suffix), path))
    return max(numbered) if numbered else None


def net_of_background(measured: int, seconds: float, idle: int, idle_seconds: float) -> int:
    """``measured`` less what the processes run anyway in ``seconds``, at the
    rate they ran it while idle: the workers' housekeeping timer, the
    supervisor's and gunicorn's ticks. At full speed that is nothing per
    request; under valgrind a stretch lasts minutes, so it is not."""
    return max(0, round(measured - idle / idle_seconds * seconds))


def ratios(counts: Mapping[str, Count]) -> dict[str, float]:
    """The issue's targets, by instructions per render (higher is better for
    the service in each): the service against plain pyvips and against its
    own render path, the raw Pillow/pyvips advantage, the service against
    the baseline, and the share of the raw advantage the service keeps."""
    per = {side: count.per_render for side, count in counts.items()}
    out: dict[str, float] = {}
    if "vips" in per and "service" in per:
        out["service_vs_vips"] = per["vips"] / per["service"]
    if "service-path" in per and "service" in per:
        out["service_vs_own_path"] = per["service-path"] / per["service"]
    if "vips" in per and "service-path" in per:
        out["own_path_vs_vips"] = per["vips"] / per["service-path"]
    if "pillow" in per and "vips" in per:
        out["raw_pillow_over_vips"] = per["pillow"] / per["vips"]
    if "baseline" in per and "service" in per:
        out["baseline_over_service"] = per["baseline"] / per["service"]
        if "raw_pillow_over_vips" in out:
            out["share_of_raw"] = out["baseline_over_service"] / out["raw_pillow_over_vips"]
    return {name: round(value, 3) for name, value in out.items()}


_RATIO_ROWS = (
    ("service_vs_vips", "service over HTTP vs in-process pyvips", "0.90"),
    ("service_vs_own_path", "service over HTTP vs its render path in process", "0.90"),
    ("own_path_vs_vips", "service's render path vs plain pyvips, in process", ""),
    ("raw_pillow_over_vips", "raw ratio: Pillow / pyvips, in process", ""),
    ("baseline_over_service", "baseline / service, over HTTP", "2.0 (moonshot)"),
    ("share_of_raw", "share of the raw ratio the service keeps", "0.90"),
)


def markdown(results: Mapping[str, object]) -> str:
    """The table of counts and the ratios, from a results dictionary."""
    counts = results["counts"]
    ratio_values = results["ratios"]
    assert isinstance(counts, dict)
    assert isinstance(ratio_values, dict)
    lines = [
        f"Instruction counts (valgrind callgrind, user space, all threads and processes) "
        f"of {results['variants']} uncached variants of the mix, run of {results['started']} "
        f"(commit {results.get('commit') or 'unknown'}).",
        "",
        "| side | instructions per render (millions) | background subtracted (M/s) | processes |",
        "|---|---|---|---|",
    ]
    for side in SIDES:
        if side in counts:
            count = counts[side]
            per_render = count["instructions"] / count["renders"] / 1e6
            background = count["background_per_second"] / 1e6
            lines.append(
                f"| {side} | {per_render:,.1f} | {background:,.2f} | {count['processes']} |"
            )
    lines += [
        "",
        "These count code, not time: the issue's goals are for throughput and CPU time,",
        "quoted here for reference only.",
        "",
        "| ratio | by instructions | the issue's goal, by throughput |",
        "|---|---|---|",
    ]
    for key, label, goal in _RATIO_ROWS:
        if key in ratio_values:
            lines.append(f"| {label} | {ratio_values[key]:.3f} | {goal} |")
    failures = results.get("failures")
    if isinstance(failures, dict) and failures:
        lines += ["", "Not measured: " + "; ".join(f"{k}: {v}" for k, v in failures.items())]
    return "\n".join(lines) + "\n"


class Callgrind:
    """valgrind's callgrind around one side: where its output goes, and the
    dumps of every process of its tree."""

    def __init__(self, directory: str) -> None:
        self.directory = directory
        os.makedirs(directory, exist_ok=True)

    @property
    def wrapper(self) -> list[str]:
        return [
            "valgrind",
            "--tool=callgrind",
            "--trace-children=yes",  # the re-executed service, its workers
            f"--callgrind-out-file={os.path.join(self.directory, 'callgrind.%p')}",
            f"--log-file={os.path.join(self.directory, 'valgrind.%p.log')}",
        ]

    def dump(self, pids: Sequence[int]) -> int:
        """Dump every process (each dump holds what ran since the last, and
        starts the count again); the instructions summed. Every process of
        the tree runs under valgrind, so one that writes no new dump is a
        failure: callgrind_control exits 0 even when it reached nothing."""
        total = 0
        for pid in pids:
            before = latest_dump(self.directory, pid)
            reply = subprocess.run(
                ["callgrind_control", "--dump", str(pid)],
                check=False,
                capture_output=True,
                text=True,
                timeout=_SLOW_SECONDS,
            )
            after = latest_dump(self.directory, pid)
            if after is None or (before is not None and after[0] <= before[0]):
                message = (reply.stdout + reply.stderr).strip().replace("\n", " ")
                raise RuntimeError(f"callgrind could not dump process {pid}: {message[:300]}")
            with open(after[1]) as handle:
                total += callgrind_totals(handle.read())
        return total

    def measure(self, pids: Sequence[int], work: Callable[[], None]) -> tuple[int, float, float]:
        """Instructions of ``pids`` while ``work`` runs, less their
        background work (``net_of_background``); the stretch's seconds, and
        the background's instructions per second."""
        self.dump(pids)  # what ran before is not counted
        started = time.monotonic()
        work()
        measured = self.dump(pids)
        seconds = time.monotonic() - started
        time.sleep(_IDLE_SECONDS)
        idle = self.dump(pids)
        idle_seconds = time.monotonic() - started - seconds
        rate = idle / idle_seconds
        return net_of_background(measured, seconds, idle, idle_seconds), seconds, rate


def count_in_process(side: str, paths: Sequence[str], variants: int, callgrind: Callgrind) -> Count:
    library = "service" if side == "service-path" else side
    argv = [
        *callgrind.wrapper,
        library_python(library), "-m", "benchmarks.libcost", "--library", library,
        "--images", ",".join(paths), "--handshake-variants", str(variants), *quality_args(),
    ]  # fmt: skip
    with ready_child(
        argv, cwd=competitors.ROOT, env=library_environment(library), side=side,
        timeout=_SLOW_SECONDS,
    ) as process:  # fmt: skip
        pids = proctree.tree(process.pid)
        answered: list[int] = []

        def work() -> None:
            tell(process, "go")
            answered.append(int(json.loads(answer(process, _STRETCH_SECONDS))["renders"]))

        instructions, seconds, background = callgrind.measure(pids, work)
        tell(process, "end")
    return Count(side, instructions, answered[0], len(pids), seconds, background)


def count_over_http(
    side: str, originals: str, variants: Sequence[urls.Variant], callgrind: Callgrind
) -> Count:
    slow = str(_SLOW_SECONDS)
    workdir = tempfile.mkdtemp(prefix=f"instructions-{side}-")
    server: competitors.Server | None = None
    try:
        if side == "service":
            server = competitors.start_service(
                originals, workdir, workers=CORES, wrapper=callgrind.wrapper,
                extra_args=["--render-timeout", slow, "--header-timeout", slow],
            )  # fmt: skip
        else:
            server = competitors.start_baseline(
                originals, workdir, workers=CORES, wrapper=callgrind.wrapper,
                extra_args=["--timeout", slow],
            )  # fmt: skip
        server.wait_ready(timeout=_SLOW_SECONDS)
        running = server
        # Each worker gets its share of these (connections land by the
        # kernel's hash): two rounds at sizes the count does not ask for.
        names = list(dict.fromkeys(v.name for v in variants))
        for width in (64, 65):
            for name in names:
                _get(running, urls.Variant(name, width), side)
        pids = proctree.tree(server.pid)

        def work() -> None:
            for variant in variants:
                _get(running, variant, side)

        instructions, seconds, background = callgrind.measure(pids, work)
    finally:
        if server is not None:
            server.stop()
        shutil.rmtree(workdir, ignore_errors=True)
    return Count(side, instructions, len(variants), len(pids), seconds, background)


def _get(server: competitors.Server, variant: urls.Variant, side: str) -> None:
    """One uncached request; the service must say so (``X-Cache: MISS``)."""
    status, headers, _ = competitors.fetch(
        server.base_url + urls.url_path(side, variant), timeout=_SLOW_SECONDS
    )
    if status != 200:
        raise RuntimeError(f"{side} answered {status} for {variant}")
    if side == "service" and headers.get("X-Cache") != "MISS":
        raise RuntimeError(f"{side}: {variant} was not rendered (X-Cache {headers.get('X-Cache')})")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--variants", type=int, default=DEFAULT_VARIANTS)
    parser.add_argument("--sides", default=",".join(SIDES), help=f"any of {', '.join(SIDES)}")
    parser.add_argument("--corpus", default=os.path.join(competitors.ROOT, corpus.DEFAULT_DIR))
    parser.add_argument("--out", default=RESULTS_DIR)
    args = parser.parse_args(argv)
    sides = [s.strip() for s in args.sides.split(",") if s.strip()]
    if unknown := set(sides) - set(SIDES):
        parser.error(f"unknown sides: {', '.join(sorted(unknown))}")
    debian.ensure_package("valgrind", "valgrind")
    corpus.build(args.corpus)
    competitors.ensure_venv("baseline")
    originals = corpus.originals_dir(args.corpus)
    mix = corpus.mix_names()
    variants = urls.spread_variants(mix, args.variants)
    paths = [os.path.join(originals, name) for name in mix]
    scratch = tempfile.mkdtemp(prefix="image-factory-instructions-")
    started = datetime.datetime.now().isoformat(timespec="seconds")
    commit = measured_commit()

    def measure(side: str) -> Count:
        callgrind = Callgrind(os.path.join(scratch, side))
        if side in IN_PROCESS:
            return count_in_process(side, paths, args.variants, callgrind)
        return count_over_http(side, originals, variants, callgrind)

    # Counts do not depend on what else runs (the background work is
    # subtracted by time): one side per core at once. A side that fails is
    # recorded; the others' counts are kept.
    counts: dict[str, Count] = {}
    failures: dict[str, str] = {}
    with concurrent.futures.ThreadPoolExecutor(max_workers=CORES) as pool:
        futures = {side: pool.submit(_logged(measure), side) for side in sides}
        for side, future in futures.items():
            try:
                counts[side] = future.result()
            except Exception as error:  # keep the other sides' counts
                print(f"instructions: {side} failed: {error!r}", file=sys.stderr, flush=True)
                failures[side] = repr(error)
    results: dict[str, object] = {
        "started": started,
        "commit": commit,
        "variants": args.variants,
        "variant_list": [[v.name, v.width] for v in variants],
        "machine": competitors.describe_machine(),
        "counts": {
            side: {
                "instructions": c.instructions,
                "renders": c.renders,
                "processes": c.processes,
                "seconds": round(c.seconds, 1),
                "background_per_second": round(c.background_per_second),
            }
            for side, c in counts.items()
        },
        "ratios": ratios(counts),
        "failures": failures,
    }
    base = os.path.join(args.out, f"instructions-{results_stamp()}")
    os.makedirs(args.out, exist_ok=True)
    with open(base + ".json", "w") as out:
        json.dump(results, out, indent=1)
    table = markdown(results)
    with open(base + ".md", "w") as out:
        out.write(table)
    print(table)
    print(f"wrote {base}.json, {base}.md", file=sys.stderr)
    if not failures:  # else keep valgrind's logs for a look
        shutil.rmtree(scratch, ignore_errors=True)
    else:
        print(f"valgrind's logs and outputs: {scratch}", file=sys.stderr)
    return 1 if failures else 0


def _logged(measure: Callable[[str], Count]) -> Callable[[str], Count]:
    def run(side: str) -> Count:
        print(f"instructions: {side} ...", file=sys.stderr, flush=True)
        count = measure(side)
        print(
            f"instructions: {side}: {count.per_render / 1e6:,.1f} M per render "
            f"({count.processes} processes, {count.seconds:.0f} s, background "
            f"{count.background_per_second / 1e6:.2f} M/s subtracted)",
            file=sys.stderr,
            flush=True,
        )
        return count

    return run


if __name__ == "__main__":
    sys.exit(main())
