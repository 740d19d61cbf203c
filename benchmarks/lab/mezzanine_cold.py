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
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import urllib.request

from .. import competitors, corpus, proctree, urls, wrk
from ..run import CORES, wait_idle

_SIDES = {"mezzanine": "true", "direct": "false"}
_PER_ROUND = 1500  # more than either side answers in a round: never wraps


def _originals(source: str, directory: str, copies: int) -> list[str]:
    """``copies`` hard links of each photo of the mix: their names."""
    names = []
    for index in range(copies):
        for name in corpus.mix_names():
            linked = f"c{index:05d}-{name}"
            os.link(os.path.join(source, name), os.path.join(directory, linked))
            names.append(linked)
    return names


def _metric(server: competitors.Server, name: str) -> float:
    with urllib.request.urlopen(server.base_url + "/metrics", timeout=10) as response:
        text = response.read().decode()
    values = [float(line.split()[1]) for line in text.splitlines() if line.startswith(name + " ")]
    return sum(values)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--corpus", default=os.path.join(competitors.ROOT, corpus.DEFAULT_DIR))
    args = parser.parse_args(argv)
    corpus.build(args.corpus)
    workdir = tempfile.mkdtemp(prefix="mezzanine-cold-")
    originals = os.path.join(workdir, "originals")
    os.mkdir(originals)
    copies = -(-args.rounds * _PER_ROUND // len(corpus.mix_names()))
    names = _originals(corpus.originals_dir(args.corpus), originals, copies)
    paths = [f"/picture/{name}?w=800" for name in names]
    servers = [
        competitors.start_service(
            originals,
            workdir,
            workers=CORES,
            name=side,
            env={"IMAGE_FACTORY_MEZZANINE": value},
        )
        for side, value in _SIDES.items()
    ]
    figures: dict[str, list[tuple[float, float]]] = {side: [] for side in _SIDES}
    try:
        for server in servers:
            server.wait_ready()
        for round_ in range(args.rounds):
            batch = paths[round_ * _PER_ROUND : (round_ + 1) * _PER_ROUND]
            order = servers if round_ % 2 == 0 else servers[::-1]
            for server in order:
                listed = urls.paths_file(workdir, f"cold-{round_}-{server.name}")
                urls.write_paths(listed, batch)
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
    rps = {side: statistics.median(r for r, _ in rows) for side, rows in figures.items()}
    cpu = {side: statistics.median(c for _, c in rows) for side, rows in figures.items()}
    print(
        f"medians: mezzanine {rps['mezzanine']:.1f} req/s, {cpu['mezzanine']:.1f} ms CPU; "
        f"direct {rps['direct']:.1f} req/s, {cpu['direct']:.1f} ms CPU; "
        f"req/s ratio {rps['mezzanine'] / rps['direct']:.3f}, "
        f"CPU per request ratio {cpu['mezzanine'] / cpu['direct']:.3f}; "
        f"mezzanines built: {builds:g}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
