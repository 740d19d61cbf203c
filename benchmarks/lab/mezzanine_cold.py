"""Where the mezzanine cannot help: every request a different original.

    .venv/bin/python -m benchmarks.lab.mezzanine_cold [--rounds 5] [--seconds 10]

The mix's photos hard-linked many times under new names (each name is an
original of its own: a new identity, a new header, nothing to share), and
every request one of those originals, once, at 800 px: the service with
``--mezzanine`` against the service without it, the same requests in the
same order, one fresh list per round, the two alternated (each round's
order rotated) on two workers each at concurrency 4. The mezzanine's cost
here is its bookkeeping on every miss (a look-up in its index, a memo
entry); nothing is ever built (checked from the services' metrics).
Prints req/s and server CPU per request per round, and the medians' ratios.

``--ipx`` adds ipx (Node + sharp, ``benchmarks.node``) as a side,
``--fast-shrink`` the service with ``--fast-shrink-on-load`` (ipx's depth of
JPEG shrink-on-load, docs/quality.md) and the mezzanine on, and
``--workers`` sets the services' processes (issue 23 compares the defaults,
one, with ipx on cold originals); ``--format jpeg`` asks every server for
JPEG (else each photo's own format).

Over HTTP that cost is far below the rounds' spread, so ``--bookkeeping``
measures it directly, in process: the time of what a miss of an original
never seen adds (``MezzanineStore.find`` on an index of ``--entries``
mezzanines, then ``wants``), against the time of the service's render of
the mix's photos at 800 px, alternated in the same process; medians.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
import urllib.request

from .. import competitors, corpus, libcost, node, proctree, urls, wrk
from ..run import CORES, wait_idle

_SIDES = {"mezzanine": "true", "direct": "false"}
_PER_ROUND = 1500  # more than either side answers in a round: never wraps


def _metric(server: competitors.Server, name: str) -> float:
    with urllib.request.urlopen(server.base_url + "/metrics", timeout=10) as response:
        text = response.read().decode()
    values = [float(line.split()[1]) for line in text.splitlines() if line.startswith(name + " ")]
    return sum(values)


def _report(figures: dict[str, list[tuple[float, float]]], builds: float) -> None:
    """The medians of each side's (req/s, CPU ms per request) and their ratios."""
    rps = {side: statistics.median(r for r, _ in rows) for side, rows in figures.items()}
    cpu = {side: statistics.median(c for _, c in rows) for side, rows in figures.items()}
    print(
        f"medians: mezzanine {rps['mezzanine']:.1f} req/s, {cpu['mezzanine']:.1f} ms CPU; "
        f"direct {rps['direct']:.1f} req/s, {cpu['direct']:.1f} ms CPU; "
        f"req/s ratio {rps['mezzanine'] / rps['direct']:.3f}, "
        f"CPU per request ratio {cpu['mezzanine'] / cpu['direct']:.3f}; "
        f"mezzanines built: {builds:g}"
    )
    if "fast" in rps:
        print(
            f"fast {rps['fast']:.1f} req/s, {cpu['fast']:.1f} ms CPU; fast / mezzanine: "
            f"req/s {rps['fast'] / rps['mezzanine']:.3f}, "
            f"CPU per request {cpu['fast'] / cpu['mezzanine']:.3f}"
            + (f"; fast / ipx: req/s {rps['fast'] / rps['ipx']:.3f}" if "ipx" in rps else "")
        )
    if "ipx" in rps:
        print(
            f"ipx {rps['ipx']:.1f} req/s, {cpu['ipx']:.1f} ms CPU; mezzanine / ipx: "
            f"req/s {rps['mezzanine'] / rps['ipx']:.3f}, "
            f"CPU per request {cpu['mezzanine'] / cpu['ipx']:.3f}"
        )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--corpus", default=os.path.join(competitors.ROOT, corpus.DEFAULT_DIR))
    parser.add_argument(
        "--bookkeeping", action="store_true", help="the per-miss cost in process, not over HTTP"
    )
    parser.add_argument("--entries", type=int, default=256, help="mezzanines in the index")
    parser.add_argument("--ipx", action="store_true", help="ipx as a third side")
    parser.add_argument(
        "--fast-shrink", action="store_true", help="a side with --fast-shrink-on-load"
    )
    parser.add_argument("--workers", type=int, default=CORES, help="the services' processes")
    parser.add_argument("--format", help="the output format of every request (jpeg)")
    args = parser.parse_args(argv)
    corpus.build(args.corpus)
    if args.bookkeeping:
        return _bookkeeping(corpus.originals_dir(args.corpus), args.rounds, args.entries)
    workdir = tempfile.mkdtemp(prefix="mezzanine-cold-")
    originals = os.path.join(workdir, "originals")
    os.mkdir(originals)
    copies = -(-args.rounds * _PER_ROUND // len(corpus.mix_names()))
    names = corpus.hard_links(
        corpus.originals_dir(args.corpus), corpus.mix_names(), originals, copies
    )
    variants = [urls.Variant(name, 800, None, args.format) for name in names]
    sides = {side: {"IMAGE_FACTORY_MEZZANINE": value} for side, value in _SIDES.items()}
    if args.fast_shrink:
        sides["fast"] = {"IMAGE_FACTORY_FAST_SHRINK_ON_LOAD": "true"}
    servers = [
        competitors.start_service(originals, workdir, workers=args.workers, name=side, env=env)
        for side, env in sides.items()
    ]
    if args.ipx:
        modules = node.ensure_ipx()
        servers.append(competitors.start_ipx(originals, workdir, modules=modules, cores=CORES))
    figures: dict[str, list[tuple[float, float]]] = {server.name: [] for server in servers}
    try:
        for server in servers:
            server.wait_ready()
        for round_ in range(args.rounds):
            batch = variants[round_ * _PER_ROUND : (round_ + 1) * _PER_ROUND]
            shift = round_ % len(servers)
            for server in servers[shift:] + servers[:shift]:
                listed = urls.paths_file(workdir, f"cold-{round_}-{server.name}")
                side = "ipx" if server.name == "ipx" else "service"
                urls.write_paths(listed, (urls.url_path(side, variant) for variant in batch))
                pids = proctree.tree(server.pid)
                before = proctree.cpu_seconds(pids)
                result = wrk.run(
                    server.base_url, listed, concurrency=args.concurrency, seconds=args.seconds
                )
                spent = proctree.cpu_seconds(proctree.tree(server.pid)) - before
                wait_idle(server.pid)
                per_request = 1000 * spent / max(1, result.requests)
                figures[server.name].append((result.rps, per_request))
                print(
                    f"round {round_ + 1} {server.name}: {result.rps:.1f} req/s, "
                    f"{per_request:.1f} ms CPU per request, {result.non_2xx} non-2xx, "
                    f"{result.wraps} wraps",
                    flush=True,
                )
        builds = _metric(servers[0], "image_factory_mezzanine_builds_total")
    finally:
        for server in servers:
            server.stop()
    _report(figures, builds)
    return 0


def _bookkeeping(source: str, rounds: int, entries: int) -> int:
    from service.cache import DiskCache  # noqa: PLC0415 - only where it is measured
    from service.mezzanine import MezzanineStore, adopt_mezzanine  # noqa: PLC0415

    workdir = tempfile.mkdtemp(prefix="mezzanine-bookkeeping-")
    store = MezzanineStore(DiskCache(workdir, 2**40, adopt=adopt_mezzanine))
    for index in range(entries):  # an index of other originals' mezzanines
        temp = store.new_temp()
        with open(temp.path, "wb") as handle:
            handle.write(b"\x08\xf2\xa6\xb6" + bytes(1000))
        store.commit(f"other-{index}", temp, "")
    render = libcost.service_renderer()
    photos = [os.path.join(source, name) for name in corpus.mix_names()]
    misses: list[float] = []
    renders: list[float] = []
    for round_ in range(rounds):
        for index, photo in enumerate(photos):
            identity = f"cold-{round_}-{index}"
            started = time.perf_counter()
            store.find(identity)
            store.wants(identity, "variant")
            misses.append(time.perf_counter() - started)
            started = time.perf_counter()
            render(photo, 800, "original")
            renders.append(time.perf_counter() - started)
    miss, made = statistics.median(misses), statistics.median(renders)
    print(
        f"per miss: mezzanine bookkeeping {1e6 * miss:.0f} us (median of {len(misses)}), "
        f"render {1e3 * made:.1f} ms; the bookkeeping is {100 * miss / made:.2f} % of a render"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
