"""Instruction counts: the one measure of the renders that a shared machine's noise cannot move.

    python -m benchmarks.instructions        # make bench-instructions, about 10 minutes

On the 2-core machines we measure on, the same 320 uncached requests cost
89.7 and then 103.4 ms of CPU each, a minute apart; the req/s and CPU
tables of ``benchmarks.run`` swing by as much between runs. valgrind's
callgrind counts the instructions each side executes instead (user space,
every thread, summed over the process tree), which repeat to a fraction of a
percent. Each side renders the same uncached variants: the first
``--variants`` of the load runs' pool (``VariantPool``: every image of the
mix, each at the pool's first widths, in its own format), after one render
of each image at 64 px that loads the codecs, and the counters are zeroed
just before and read just after them:

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
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from . import competitors, corpus, debian, proctree, urls
from .run import CORES, RESULTS_DIR, library_environment, library_pythons, quality_args

IN_PROCESS = ("vips", "service-path", "pillow")
OVER_HTTP = ("service", "baseline")
SIDES = (*IN_PROCESS, *OVER_HTTP)
# The two widths of every image: 24 renders of the 12-image mix.
DEFAULT_VARIANTS = 24
# valgrind runs code ~50x slower: a 250 ms render takes over 10 s.
_SLOW_SECONDS = 600
_TOTALS = re.compile(r"^(?:summary|totals):\s+(\d+)", re.MULTILINE)


@dataclass(frozen=True, slots=True)
class Count:
    """What one side executed for the variants."""

    side: str
    instructions: int
    renders: int
    processes: int

    @property
    def per_render(self) -> float:
        return self.instructions / self.renders


def callgrind_totals(text: str) -> int:
    """The instruction total of one callgrind output file."""
    found = _TOTALS.search(text)
    if found is None:
        raise ValueError("no summary or totals line: not a callgrind output file")
    return int(found.group(1))


def latest_dump(directory: str, pid: int) -> str | None:
    """The newest numbered dump (``callgrind.PID.N``) of ``pid``: the one
    ``callgrind_control --dump`` wrote. The unnumbered file is the process's
    final output at exit (or at an exec), never the measured stretch."""
    numbered: list[tuple[int, str]] = []
    for path in glob.glob(os.path.join(directory, f"callgrind.{pid}.*")):
        suffix = path.rsplit(".", 1)[1]
        if suffix.isdigit():
            numbered.append((int(suffix), path))
    return max(numbered)[1] if numbered else None


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
    ("service_vs_vips", "service over HTTP vs in-process pyvips", ">= 0.90"),
    ("service_vs_own_path", "service over HTTP vs its render path in process", ">= 0.90"),
    ("own_path_vs_vips", "service's render path vs plain pyvips, in process", ""),
    ("raw_pillow_over_vips", "raw ratio: Pillow / pyvips, in process", ""),
    ("baseline_over_service", "baseline / service, over HTTP (moonshot: 2x)", ">= 2.0"),
    ("share_of_raw", "share of the raw ratio the service keeps", ">= 0.90"),
)


def markdown(results: Mapping[str, object]) -> str:
    """The table of counts and the ratios, from a results dictionary."""
    counts = results["counts"]
    ratio_values = results["ratios"]
    assert isinstance(counts, dict)
    assert isinstance(ratio_values, dict)
    lines = [
        f"Instruction counts (valgrind callgrind, user space, all threads and processes) "
        f"of {results['variants']} uncached variants of the mix, run of {results['started']}.",
        "",
        "| side | instructions per render (millions) | processes |",
        "|---|---|---|",
    ]
    for side in SIDES:
        if side in counts:
            count = counts[side]
            per_render = count["instructions"] / count["renders"] / 1e6
            lines.append(f"| {side} | {per_render:,.1f} | {count['processes']} |")
    lines += ["", "| ratio | by instructions | goal (issue 4) |", "|---|---|---|"]
    for key, label, goal in _RATIO_ROWS:
        if key in ratio_values:
            lines.append(f"| {label} | {ratio_values[key]:.3f} | {goal} |")
    return "\n".join(lines) + "\n"


class Callgrind:
    """valgrind's callgrind around one side: where its output goes, and the
    zero and dump commands sent to every process of its tree."""

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

    def zero(self, pids: Sequence[int]) -> None:
        for pid in pids:
            _control("--zero", pid)

    def dump(self, pids: Sequence[int]) -> tuple[int, int]:
        """Dump every process; (instructions summed, processes counted)."""
        total = counted = 0
        for pid in pids:
            _control("--dump", pid)
            dump = latest_dump(self.directory, pid)
            if dump is None:
                continue  # not under valgrind (it runs nothing of the renders)
            with open(dump) as handle:
                total += callgrind_totals(handle.read())
            counted += 1
        return total, counted


def _control(command: str, pid: int) -> None:
    subprocess.run(
        ["callgrind_control", command, str(pid)],
        check=False,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        timeout=_SLOW_SECONDS,
    )


def count_in_process(side: str, paths: Sequence[str], variants: int, callgrind: Callgrind) -> Count:
    library = "service" if side == "service-path" else side
    argv = [
        *callgrind.wrapper,
        library_pythons()[library], "-m", "benchmarks.libcost", "--library", library,
        "--images", ",".join(paths), "--handshake-variants", str(variants), *quality_args(),
    ]  # fmt: skip
    with subprocess.Popen(
        argv,
        cwd=competitors.ROOT,
        env=library_environment(library),
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    ) as process:
        assert process.stdin is not None
        assert process.stdout is not None
        _expect(process.stdout.readline(), "ready", side)
        pids = proctree.tree(process.pid)
        callgrind.zero(pids)
        process.stdin.write("go\n")
        process.stdin.flush()
        renders = int(json.loads(process.stdout.readline())["renders"])
        instructions, processes = callgrind.dump(pids)
        process.stdin.write("end\n")
        process.stdin.close()
    return Count(side, instructions, renders, processes)


def count_over_http(
    side: str, originals: str, variants: Sequence[urls.Variant], callgrind: Callgrind
) -> Count:
    workdir = tempfile.mkdtemp(prefix=f"instructions-{side}-")
    slow = str(_SLOW_SECONDS)
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
    try:
        server.wait_ready(timeout=_SLOW_SECONDS)
        # Each worker gets its share of these (connections land by the
        # kernel's hash): two rounds at sizes the count does not ask for.
        names = list(dict.fromkeys(v.name for v in variants))
        for width in (64, 65):
            for name in names:
                _get(server, urls.Variant(name, width), side)
        pids = proctree.tree(server.pid)
        callgrind.zero(pids)
        for variant in variants:
            _get(server, variant, side)
        instructions, processes = callgrind.dump(pids)
    finally:
        server.stop()
        shutil.rmtree(workdir, ignore_errors=True)
    return Count(side, instructions, len(variants), processes)


def _get(server: competitors.Server, variant: urls.Variant, side: str) -> None:
    status, _, _ = competitors.fetch(
        server.base_url + urls.url_path(side, variant), timeout=_SLOW_SECONDS
    )
    if status != 200:
        raise RuntimeError(f"{side} answered {status} for {variant}")


def _expect(line: str, wanted: str, side: str) -> None:
    if line.strip() != wanted:
        raise RuntimeError(f"{side}: expected {wanted!r} from the render loop, got {line!r}")


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
    variants = urls.VariantPool(mix).take(args.variants)
    paths = [os.path.join(originals, name) for name in mix]
    scratch = tempfile.mkdtemp(prefix="image-factory-instructions-")
    started = datetime.datetime.now().isoformat(timespec="seconds")

    def measure(side: str) -> Count:
        callgrind = Callgrind(os.path.join(scratch, side))
        if side in IN_PROCESS:
            return count_in_process(side, paths, args.variants, callgrind)
        return count_over_http(side, originals, variants, callgrind)

    # Counts do not depend on what else runs: one side per core at once.
    counts: dict[str, Count] = {}
    with concurrent.futures.ThreadPoolExecutor(max_workers=CORES) as pool:
        for count in pool.map(_logged(measure), sides):
            counts[count.side] = count
    results: dict[str, object] = {
        "started": started,
        "variants": args.variants,
        "variant_list": [[v.name, v.width] for v in variants],
        "machine": competitors.describe_machine(),
        "counts": {
            side: {"instructions": c.instructions, "renders": c.renders, "processes": c.processes}
            for side, c in counts.items()
        },
        "ratios": ratios(counts),
    }
    stamp = datetime.datetime.now().strftime("%Y-%m-%d-%H%M%S")
    base = os.path.join(args.out, f"instructions-{stamp}")
    os.makedirs(args.out, exist_ok=True)
    with open(base + ".json", "w") as out:
        json.dump(results, out, indent=1)
    table = markdown(results)
    with open(base + ".md", "w") as out:
        out.write(table)
    print(table)
    print(f"wrote {base}.json, {base}.md", file=sys.stderr)
    shutil.rmtree(scratch, ignore_errors=True)
    return 0


def _logged(measure: Callable[[str], Count]) -> Callable[[str], Count]:
    def run(side: str) -> Count:
        print(f"instructions: {side} ...", file=sys.stderr, flush=True)
        count = measure(side)
        print(
            f"instructions: {side}: {count.per_render / 1e6:,.1f} M per render "
            f"({count.processes} processes)",
            file=sys.stderr,
            flush=True,
        )
        return count

    return run


if __name__ == "__main__":
    sys.exit(main())
