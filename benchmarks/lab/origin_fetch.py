"""Remote originals: what a first download adds, its memory, and paired hits.

    python -m benchmarks.lab.origin_fetch [--rounds 5] [--memory-rounds 3]

Real processes on loopback: nginx (``benchmarks.origin``) serving a copy of
the corpus, and the service as ``make bench`` starts it, either reading
that directory (``local``) or the same files from nginx (``remote``:
``--originals http://127.0.0.1:PORT/``), every start with a fresh cache
directory and the same flags otherwise.

- ``latency``: each original of the corpus rendered once to 800 px, its
  first request on each side (uncached everywhere: for ``remote`` a
  download, then the render), against ``curl -o /dev/null`` of the same
  file from nginx; every request timed by curl (``time_total``, a new
  connection each), the three in a rotating order, one worker a side (so
  every request meets a process warmed up on two other images). What the
  download adds is ``remote - local``, per round; the table gives each
  image's medians over the rounds, and their median and sum over the
  corpus, in ms and as a ratio to curl's time.
- ``memory``: the ten largest originals (the corpus's four of 13-46 MP and
  six derived from them, made once into ``<corpus>/lab-large/``: the 46 MP
  PNG re-encoded as baseline and as progressive JPEG, three package JPEGs
  as PNG, one upscaled 1.5x) requested all at once at 800 px, from a fresh
  service with ``--workers 2`` (as in ``make bench``), local or remote in
  turn: the peak RSS of its worker processes (``VmHWM``, summed over the
  workers), and of the whole tree sampled every 50 ms.
- ``paired``: what scenario 8 of ``make bench`` measures with ``wrk`` (new
  variants of originals already in the source cache), one request at a
  time, local and remote alternately over the same variants (each pair in
  a rotating order, on kept-alive connections, one worker a side): on a
  machine whose speed drifts by 20 % and more from one load run to the
  next, pairs of requests a few milliseconds apart resolve a 5 % goal that
  runs seconds apart cannot. The ratio of the sums is the c=1 throughput
  ratio; the median of the pairs' ratios and the CPU per request of each
  service's tree are beside it.

Prints Markdown tables; writes ``benchmarks/results/origin-fetch-<date>.json``
and ``.md``.
"""

from __future__ import annotations

import argparse
import datetime
import errno
import http.client
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from .. import competitors, corpus, origin, proctree, urls
from ..run import RESULTS_DIR, measured_commit, results_stamp, rotated

WIDTH = 800
# Two small originals each side renders first, so that no measured request
# pays for the first render of its process (libvips' loaders, the HTTP
# client's session): copies of corpus images under names nothing measures.
WARM_UP = {"warmup.jpg": "grace_hopper.jpg", "warmup.png": "astronaut.png"}
# How each of the six derived large originals is made (name: source, how).
DERIVED = {
    "kleiber-46mp.jpg": ("kleiber-46mp.png", "jpeg"),
    "kleiber-46mp-progressive.jpg": ("kleiber-46mp.png", "progressive"),
    "kleiber.png": ("kleiber.jpg", "png"),
    "seeding.png": ("seeding.jpg", "png"),
    "dragonfly.png": ("dragonfly.jpg", "png"),
    "seeding-36mp.jpg": ("seeding.jpg", "upscale1.5"),
}
LARGE = (*corpus.LARGEST, *DERIVED)
SIDES = ("local", "remote")
PARTS = ("latency", "memory", "paired")
DOWNLOAD_METRIC = "image_factory_origin_duration_seconds_sum"


# -- the files -------------------------------------------------------------------


def derive(how: str, source: str, target: str) -> None:
    """Make one derived large original (libvips, in a temporary name first)."""
    import pyvips  # noqa: PLC0415 - only when a file is missing

    image = pyvips.Image.new_from_file(source, access="sequential")
    temp = target + ".tmp" + os.path.splitext(target)[1]
    if how == "upscale1.5":
        image.resize(1.5, kernel="lanczos3").jpegsave(temp, Q=90)
    elif how in ("jpeg", "progressive"):
        image.jpegsave(temp, Q=90, interlace=how == "progressive")
    elif how == "png":
        image.pngsave(temp, compression=6)
    else:
        raise ValueError(f"unknown derivation {how!r}")
    os.replace(temp, target)


def large_originals(corpus_dir: str) -> dict[str, str]:
    """The ten large originals' paths, the derived ones made when missing."""
    originals = corpus.originals_dir(corpus_dir)
    made = os.path.join(corpus_dir, "lab-large")
    os.makedirs(made, exist_ok=True)
    paths = {name: os.path.join(originals, name) for name in corpus.LARGEST}
    for name, (source, how) in DERIVED.items():
        path = os.path.join(made, name)
        if not os.path.isfile(path):
            print(f"origin_fetch: deriving {name} from {source} ({how})", file=sys.stderr)
            derive(how, os.path.join(originals, source), path)
        paths[name] = path
    return paths


def link_or_copy(source: str, target: str) -> None:
    try:
        os.link(source, target)
    except OSError as error:
        if error.errno not in (errno.EXDEV, errno.EPERM, errno.EMLINK):
            raise
        shutil.copyfile(source, target)


def served_directory(scratch: str, corpus_dir: str, *, large: bool) -> tuple[str, list[str]]:
    """The directory both sides read (nginx serves it, the local service
    opens it): the corpus (or the ten large originals) and the warm-up
    copies, hard-linked where possible; and the names to measure."""
    originals = corpus.originals_dir(corpus_dir)
    files = {e.name: os.path.join(originals, e.name) for e in corpus.CORPUS}
    if large:
        files = large_originals(corpus_dir)
    served = os.path.join(scratch, "large" if large else "corpus")
    os.makedirs(served, exist_ok=True)
    for name, path in {
        **files,
        **{w: os.path.join(originals, s) for w, s in WARM_UP.items()},
    }.items():
        if not os.path.exists(os.path.join(served, name)):
            link_or_copy(path, os.path.join(served, name))
    return served, list(files)


# -- the processes ------------------------------------------------------------------


@contextmanager
def service(
    side: str, served: str, nginx: origin.Nginx, scratch: str, *, workers: int
) -> Iterator[competitors.Server]:
    """A fresh service (its own new cache directory) reading ``served``
    (``local``) or the same files from ``nginx`` (``remote``), warmed up."""
    work = tempfile.mkdtemp(prefix=f"{side}-", dir=scratch)
    spec = served if side == "local" else nginx.base_url + "/"
    server = competitors.start_service(
        spec, work, workers=workers, extra_args=["--drain-seconds", "0"], name=side
    )
    try:
        server.wait_ready()
        for name in WARM_UP:
            status, _, _ = curl(f"{server.base_url}/picture/{name}?w=64")
            if status != 200:
                raise RuntimeError(f"{side}: warming up on {name} gave {status}")
        yield server
    finally:
        server.stop()
        shutil.rmtree(work, ignore_errors=True)


def curl(url: str) -> tuple[int, float, str]:
    """GET ``url`` with curl, the body to /dev/null, on a new connection:
    (status, seconds, X-Cache)."""
    out = subprocess.run(
        ["curl", "-s", "-o", "/dev/null", "-w", "%{http_code} %{time_total} %header{x-cache}",
         "--max-time", "120", url],
        capture_output=True, text=True, check=True,
    ).stdout.split()  # fmt: skip
    return int(out[0]), float(out[1]), out[2] if len(out) > 2 else ""


def metric_total(exposition: str, name: str) -> float:
    """The sum over every label set of ``name`` in a Prometheus text exposition."""
    total = 0.0
    for line in exposition.splitlines():
        if line.startswith(name) and line[len(name) : len(name) + 1] in ("{", " "):
            total += float(line.rsplit(None, 1)[1])
    return total


def download_seconds(server: competitors.Server) -> float:
    """The time the (one) worker has spent on origin requests, by its /metrics."""
    with urllib.request.urlopen(server.base_url + "/metrics", timeout=30) as reply:
        text = reply.read().decode()
    return metric_total(text, DOWNLOAD_METRIC)


def workers_of(supervisor: int) -> list[int]:
    with open(f"/proc/{supervisor}/task/{supervisor}/children") as listing:
        return [int(pid) for pid in listing.read().split()]


def vm_hwm_kib(status: str) -> int:
    """``VmHWM`` (peak resident set) from a /proc/PID/status text, in KiB."""
    for line in status.splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    raise ValueError("no VmHWM line")


def peak_kib(pid: int) -> int:
    with open(f"/proc/{pid}/status") as handle:
        return vm_hwm_kib(handle.read())


# -- (i) latency --------------------------------------------------------------------


def latency_round(
    round_index: int, names: Sequence[str], served: str, nginx: origin.Nginx, scratch: str
) -> dict[str, dict[str, float]]:
    """One round: fresh services; each image's first request on each, and curl."""
    timings: dict[str, dict[str, float]] = {}
    with (
        service("local", served, nginx, scratch, workers=1) as local,
        service("remote", served, nginx, scratch, workers=1) as remote,
    ):
        bases = {"local": local.base_url, "remote": remote.base_url}
        for index, name in enumerate(rotated(list(names), round_index)):
            row: dict[str, float] = {}
            for kind in rotated(["remote", "local", "curl"], index + round_index):
                if kind == "curl":
                    status, seconds, cache = curl(f"{nginx.base_url}/{name}")
                else:
                    url = f"{bases[kind]}/picture/{name}?w={WIDTH}"
                    spent = download_seconds(remote) if kind == "remote" else 0.0
                    status, seconds, cache = curl(url)
                    if kind == "remote":
                        row["download"] = 1000 * (download_seconds(remote) - spent)
                    if cache != "MISS":
                        raise RuntimeError(f"{kind}: {name} was no first request ({cache})")
                if status != 200:
                    raise RuntimeError(f"{kind}: {name} gave {status}")
                row[kind] = 1000 * seconds
            timings[name] = row
    return timings


def latency_summary(
    rounds: Sequence[Mapping[str, Mapping[str, float]]], sizes: Mapping[str, int]
) -> dict[str, Any]:
    """Each image's medians over the rounds (ms): curl, local, remote, and
    what the download added (``remote - local`` per round) and its ratio to
    curl; then the median over the images and the sums over the corpus."""
    images: dict[str, dict[str, float]] = {}
    for name in rounds[0]:
        runs = [r[name] for r in rounds]
        added = statistics.median(run["remote"] - run["local"] for run in runs)
        curl_ms = statistics.median(run["curl"] for run in runs)
        images[name] = {
            "mb": sizes[name] / 1e6,
            "curl": curl_ms,
            "download": statistics.median(run["download"] for run in runs),
            "local": statistics.median(run["local"] for run in runs),
            "remote": statistics.median(run["remote"] for run in runs),
            "added": added,
            "added_over_curl": added / curl_ms if curl_ms else float("nan"),
        }
    keys = ("curl", "download", "local", "remote", "added", "added_over_curl")
    median = {key: statistics.median(row[key] for row in images.values()) for key in keys}
    total = {key: sum(row[key] for row in images.values()) for key in keys[:-1]}
    total["added_over_curl"] = total["added"] / total["curl"] if total["curl"] else float("nan")
    return {"images": images, "median": median, "sum": total, "rounds": len(rounds)}


def latency_table(summary: Mapping[str, Any]) -> str:
    lines = [
        f"**A first download, medians of {summary['rounds']} rounds (ms)**: the first request "
        f"at w={WIDTH} on a fresh service reading the directory (local) or the same file from "
        "nginx (remote), and `curl -o /dev/null` of the file from nginx; `download` is the "
        "remote worker's own time on the origin request (its /metrics)",
        "",
        "| original | MB | curl | download | local | remote | added (remote - local) "
        "| added / curl |",
        "|---|---|---|---|---|---|---|---|",
    ]

    def row(label: str, values: Mapping[str, float], mb: str) -> str:
        return (
            f"| {label} | {mb} | {values['curl']:.1f} | {values['download']:.1f} | "
            f"{values['local']:.1f} | "
            f"{values['remote']:.1f} | {values['added']:.1f} | {values['added_over_curl']:.2f}x |"
        )

    for name, values in summary["images"].items():
        lines.append(row(name, values, f"{values['mb']:.1f}"))
    lines.append(row("**median over the images**", summary["median"], ""))
    lines.append(row("**sum over the corpus**", summary["sum"], ""))
    return "\n".join(lines) + "\n"


# -- (ii) memory --------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Burst:
    """One burst of the ten at once on a fresh service."""

    workers_peak_mib: float  # VmHWM summed over the workers
    largest_worker_mib: float
    idle_workers_mib: float  # VmHWM after the warm-up, before the burst
    tree_peak_mib: float  # sampled RSS of the whole tree
    seconds: float
    downloads: int  # files nginx sent meanwhile

    def as_dict(self) -> dict[str, float]:
        return {name: getattr(self, name) for name in self.__dataclass_fields__}


def burst(server: competitors.Server, names: Sequence[str], nginx: origin.Nginx) -> Burst:
    """The ten requested at once (a thread each), then the workers' VmHWM."""
    workers = workers_of(server.pid)
    idle = sum(peak_kib(pid) for pid in workers)
    before = nginx.requests()
    results: dict[str, tuple[int, float, str]] = {}

    def ask(name: str) -> None:
        results[name] = curl(f"{server.base_url}/picture/{name}?w={WIDTH}")

    threads = [threading.Thread(target=ask, args=(name,)) for name in names]
    started = time.monotonic()
    with proctree.Sampler(server.pid) as sampler:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    seconds = time.monotonic() - started
    failed = {name: result for name, result in results.items() if result[0] != 200}
    if failed or len(results) != len(names):
        raise RuntimeError(f"{server.name}: the burst failed: {failed}")
    if workers_of(server.pid) != workers:
        raise RuntimeError(f"{server.name}: a worker was replaced during the burst")
    peaks = [peak_kib(pid) for pid in workers]
    return Burst(
        workers_peak_mib=sum(peaks) / 1024,
        largest_worker_mib=max(peaks) / 1024,
        idle_workers_mib=idle / 1024,
        tree_peak_mib=sampler.peak.rss_bytes / 2**20,
        seconds=seconds,
        downloads=(nginx.requests() - before).get("200", 0),
    )


def memory_summary(bursts: Mapping[str, Sequence[Mapping[str, float]]]) -> dict[str, Any]:
    """Medians over the rounds of each side, and remote over local."""
    sides = {
        side: {key: statistics.median(b[key] for b in runs) for key in runs[0]}
        for side, runs in bursts.items()
    }
    ratios = {
        key: sides["remote"][key] / sides["local"][key]
        for key in ("workers_peak_mib", "largest_worker_mib", "tree_peak_mib", "seconds")
        if sides["local"][key]
    }
    return {"sides": sides, "remote_over_local": ratios, "rounds": len(bursts["local"])}


def memory_table(summary: Mapping[str, Any], names: Sequence[str]) -> str:
    sides, ratios = summary["sides"], summary["remote_over_local"]
    lines = [
        f"**The ten largest at once, medians of {summary['rounds']} rounds**: "
        f"{', '.join(names)}, each at w={WIDTH}, on a fresh service with 2 workers",
        "",
        "| | local | remote | remote / local |",
        "|---|---|---|---|",
    ]
    rows = (
        ("workers' peak RSS (VmHWM, summed), MiB", "workers_peak_mib", 0),
        ("largest worker's VmHWM, MiB", "largest_worker_mib", 0),
        ("the tree's sampled peak RSS, MiB", "tree_peak_mib", 0),
        ("workers' VmHWM before the burst, MiB", "idle_workers_mib", 0),
        ("the burst's wall time, s", "seconds", 1),
        ("originals nginx sent", "downloads", 0),
    )
    for label, key, digits in rows:
        ratio = f"{ratios[key]:.2f}x" if key in ratios else ""
        lines.append(
            f"| {label} | {sides['local'][key]:.{digits}f} | {sides['remote'][key]:.{digits}f} "
            f"| {ratio} |"
        )
    return "\n".join(lines) + "\n"


# -- (iii) paired --------------------------------------------------------------------


def paired_requests(
    served: str, nginx: origin.Nginx, scratch: str, count: int
) -> dict[str, list[float]]:
    """``count`` new variants of the mix, each asked of both services, one
    request at a time; every original already in the remote's source cache."""
    mix = corpus.mix_names()
    timings: dict[str, list[float]] = {side: [] for side in SIDES}
    cpu: dict[str, list[float]] = {side: [] for side in SIDES}
    with (
        service("local", served, nginx, scratch, workers=1) as local,
        service("remote", served, nginx, scratch, workers=1) as remote,
    ):
        servers = {"local": local, "remote": remote}
        connections = {
            side: http.client.HTTPConnection("127.0.0.1", server.port, timeout=120)
            for side, server in servers.items()
        }

        def ask(side: str, variant: urls.Variant) -> tuple[float, str | None]:
            connection = connections[side]
            started = time.perf_counter()
            connection.request("GET", urls.url_path("service", variant))
            reply = connection.getresponse()
            reply.read()
            if reply.status != 200:
                raise RuntimeError(f"{side}: {variant} gave {reply.status}")
            return time.perf_counter() - started, reply.headers.get("X-Cache")

        for variant in urls.fixed_variants(mix, 400):  # every original downloaded
            for side in SIDES:
                ask(side, variant)
        before = {side: proctree.cpu_seconds(proctree.tree(s.pid)) for side, s in servers.items()}
        for index, variant in enumerate(urls.VariantPool(mix).take(count)):
            for side in rotated(list(SIDES), index):
                seconds, cache = ask(side, variant)
                if cache != "MISS":
                    raise RuntimeError(f"{side}: {variant} was no new variant ({cache})")
                timings[side].append(1000 * seconds)
        for side, server in servers.items():
            spent = proctree.cpu_seconds(proctree.tree(server.pid)) - before[side]
            cpu[side].append(1000 * spent / count)
        for connection in connections.values():
            connection.close()
    return {**timings, "local_cpu_ms": cpu["local"], "remote_cpu_ms": cpu["remote"]}


def paired_summary(measured: Mapping[str, Sequence[float]]) -> dict[str, float]:
    """Remote against local over the same variants: medians (ms), the ratio
    of the sums (the c=1 throughput ratio, inverted), the median of the
    pairs' ratios and of their differences, CPU per request."""
    local, remote = measured["local"], measured["remote"]
    local_cpu, remote_cpu = measured["local_cpu_ms"][0], measured["remote_cpu_ms"][0]
    return {
        "requests": len(local),
        "local_ms": statistics.median(local),
        "remote_ms": statistics.median(remote),
        "time_ratio": sum(remote) / sum(local),
        "rps_ratio": sum(local) / sum(remote),
        "pair_ratio": statistics.median(r / loc for loc, r in zip(local, remote, strict=True)),
        "pair_added_ms": statistics.median(r - loc for loc, r in zip(local, remote, strict=True)),
        "local_cpu_ms": local_cpu,
        "remote_cpu_ms": remote_cpu,
        "cpu_ratio": remote_cpu / local_cpu,
    }


def paired_table(summary: Mapping[str, float]) -> str:
    return (
        f"**New variants of originals in the source cache, one request at a time**: "
        f"{summary['requests']:.0f} variants of the mix, each asked of both services in turn\n\n"
        "| | local | remote | remote / local |\n|---|---|---|---|\n"
        f"| median ms a request | {summary['local_ms']:.1f} | {summary['remote_ms']:.1f} "
        f"| {summary['remote_ms'] / summary['local_ms']:.3f}x |\n"
        f"| requests/s (the ratio of the sums) | | | {summary['rps_ratio']:.3f}x |\n"
        f"| median of the pairs' ratios (remote ms / local ms) | | "
        f"| {summary['pair_ratio']:.3f}x ({summary['pair_added_ms']:+.2f} ms) |\n"
        f"| server CPU ms a request | {summary['local_cpu_ms']:.1f} "
        f"| {summary['remote_cpu_ms']:.1f} | {summary['cpu_ratio']:.3f}x |\n"
    )


# -- main -------------------------------------------------------------------------


def run_latency(args: argparse.Namespace, scratch: str) -> dict[str, Any]:
    served, names = served_directory(scratch, args.corpus, large=False)
    sizes = {name: os.path.getsize(os.path.join(served, name)) for name in names}
    nginx = origin.start(served, os.path.join(scratch, "nginx-latency"))
    try:
        rounds = []
        for index in range(args.rounds):
            rounds.append(latency_round(index, names, served, nginx, scratch))
            print(f"origin_fetch: latency round {index + 1} done", file=sys.stderr)
    finally:
        nginx.stop()
    return {"rounds": rounds, "summary": latency_summary(rounds, sizes)}


def run_memory(args: argparse.Namespace, scratch: str) -> dict[str, Any]:
    served, names = served_directory(scratch, args.corpus, large=True)
    nginx = origin.start(served, os.path.join(scratch, "nginx-memory"))
    bursts: dict[str, list[dict[str, float]]] = {side: [] for side in SIDES}
    try:
        for index in range(args.memory_rounds):
            for side in rotated(list(SIDES), index):
                with service(side, served, nginx, scratch, workers=args.workers) as server:
                    found = burst(server, names, nginx)
                bursts[side].append(found.as_dict())
                print(
                    f"origin_fetch: burst {index + 1} {side}: workers' VmHWM "
                    f"{found.workers_peak_mib:.0f} MiB, {found.seconds:.1f} s",
                    file=sys.stderr,
                )
    finally:
        nginx.stop()
    sizes = {name: os.path.getsize(os.path.join(served, name)) for name in names}
    return {
        "originals": {name: round(size / 1e6, 1) for name, size in sizes.items()},
        "workers": args.workers,
        "bursts": bursts,
        "summary": memory_summary(bursts),
    }


def run_paired(args: argparse.Namespace, scratch: str) -> dict[str, Any]:
    served, _ = served_directory(scratch, args.corpus, large=False)
    nginx = origin.start(served, os.path.join(scratch, "nginx-paired"))
    try:
        measured = paired_requests(served, nginx, scratch, args.paired_variants)
    finally:
        nginx.stop()
    return {"measured": measured, "summary": paired_summary(measured)}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rounds", type=int, default=5, help="of the latency part")
    parser.add_argument("--memory-rounds", type=int, default=3, help="bursts a side")
    parser.add_argument("--paired-variants", type=int, default=240, help="of the paired part")
    parser.add_argument("--only", choices=PARTS, help="one part only")
    parser.add_argument("--workers", type=int, default=2, help="of the memory part's service")
    parser.add_argument("--corpus", default=os.path.join(competitors.ROOT, corpus.DEFAULT_DIR))
    parser.add_argument("--out", default=RESULTS_DIR)
    args = parser.parse_args(argv)

    corpus.build(args.corpus)
    scratch = tempfile.mkdtemp(prefix="origin-fetch-")
    results: dict[str, Any] = {
        "started": datetime.datetime.now().isoformat(timespec="seconds"),
        "commit": measured_commit(),
        "machine": competitors.describe_machine(),
        "width": WIDTH,
    }
    tables = []
    try:
        if args.only in (None, "latency"):
            results["latency"] = run_latency(args, scratch)
            tables.append(latency_table(results["latency"]["summary"]))
        if args.only in (None, "memory"):
            results["memory"] = run_memory(args, scratch)
            names = list(results["memory"]["originals"])
            tables.append(memory_table(results["memory"]["summary"], names))
        if args.only in (None, "paired"):
            results["paired"] = run_paired(args, scratch)
            tables.append(paired_table(results["paired"]["summary"]))
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    text = "\n".join(tables)
    print(text, end="")
    os.makedirs(args.out, exist_ok=True)
    base = os.path.join(args.out, f"origin-fetch-{results_stamp()}")
    with open(base + ".json", "w") as out:
        json.dump(results, out, indent=1)
    with open(base + ".md", "w") as out:
        out.write(f"Run of {results['started']} at {results['commit']}.\n\n{text}")
    print(f"wrote {base}.json, {base}.md", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
