"""Measure the service's RSS under sustained uncached renders, per allocator.

    .venv/bin/python scripts/measure_allocator.py [--rounds 3] [--seconds 40]

Starts ``python -m service`` on loopback once per variant and round (variants
alternate within a round), drives it with ``wrk`` using URLs that are all
distinct (every request is a cache miss, i.e. a render), samples the process'
RSS from /proc, and prints the medians over rounds. Variants:

- ``glibc``: the default allocator, untuned (``GLIBC_TUNABLES=`` opts out of
  the service's own tuning);
- ``glibc-arena2``: glibc with ``MALLOC_ARENA_MAX=2``;
- ``glibc-tuned``: what the service sets by itself outside the container
  (``service/process/allocator.py``: one arena, buffers of 1 MiB and more mapped on
  transparent huge pages);
- ``jemalloc``: ``libjemalloc.so.2`` (Debian's libjemalloc2) through
  ``LD_PRELOAD``, with the ``MALLOC_CONF`` the Dockerfile sets;
- ``jemalloc-default``: the same without ``MALLOC_CONF``;
- ``jemalloc:CONF``: jemalloc with ``MALLOC_CONF=CONF`` (``--variant``, repeated, picks).

Needs ``wrk`` and ``libjemalloc2``: ``scripts/install-deps.sh bench``.
Originals: the bundled samples plus large generated photos (a 12 MP baseline
JPEG, a 6 MP progressive JPEG, which libvips cannot shrink on load, and a
3 MP PNG), so the allocator sees the large short-lived buffers it sees in
production.
"""
# ruff: noqa: S310, S603, S607

from __future__ import annotations

import argparse
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MALLOC_CONF = "background_thread:true,narenas:2,dirty_decay_ms:3000,muzzy_decay_ms:0"

# Each request: an original, a width and a quality derived from a counter that
# is unique per wrk thread, so no two requests share a cache key.
WRK_SCRIPT = r"""
local threads = {}
function setup(thread)
  thread:set("id", #threads)
  table.insert(threads, thread)
end
local counter = 0
local images = {"photo_12mp.jpg", "photo_progressive.jpg", "graphic.png", "retina.jpg"}
local formats = {"jpeg", "webp"}
request = function()
  counter = counter + 1
  local n = counter * 8 + id
  local image = images[n % #images + 1]
  local format = formats[math.floor(n / #images) % #formats + 1]
  local width = 200 + (n % 1000)
  local quality = 30 + math.floor(n / 1000) % 70
  return wrk.format("GET", "/picture/" .. image .. "?w=" .. width .. "&q=" .. quality
                    .. "&format=" .. format)
end
"""


@dataclass
class Result:
    variant: str
    requests_per_s: float
    errors: int
    rss_start_mb: float
    rss_peak_mb: float
    rss_end_mb: float
    rss_idle_mb: float
    cpu_ms_per_request: float
    samples: list[float] = field(default_factory=list)

    @property
    def growth_mb(self) -> float:
        """Median RSS over the last third of the load minus over the first third:
        how far RSS still climbs once the service is warm (0: flat)."""
        third = max(1, len(self.samples) // 3)
        if len(self.samples) < 3:
            return 0.0
        return statistics.median(self.samples[-third:]) - statistics.median(self.samples[:third])


def make_originals(directory: Path) -> None:
    import pyvips  # noqa: PLC0415 - only this script needs it at import time

    directory.mkdir(parents=True)
    shutil.copy(ROOT / "service" / "samples" / "retina.jpg", directory / "retina.jpg")

    def photo(width: int, height: int) -> pyvips.Image:
        # Smooth gradients plus noise: compresses like a photo, not like flat colour.
        xyz = pyvips.Image.xyz(width, height)
        base = (xyz[0] * (255 / width) * 0.6 + xyz[1] * (255 / height) * 0.4).cast("uchar")
        noise = pyvips.Image.gaussnoise(width, height, sigma=18, mean=0)
        channels = [(base + noise * k).cast("uchar") for k in (1.0, 0.7, 0.4)]
        others: list[pyvips.Image | int | float] = [channels[1], channels[2]]
        return channels[0].bandjoin(others).copy(interpretation="srgb")

    photo(4000, 3000).jpegsave(str(directory / "photo_12mp.jpg"), Q=90)
    photo(3000, 2000).jpegsave(str(directory / "photo_progressive.jpg"), Q=90, interlace=True)
    photo(2000, 1500).pngsave(str(directory / "graphic.png"), compression=3)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def cpu_seconds(pid: int) -> float:
    """User + system CPU of the process so far (all its threads)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def environment(variant: str, jemalloc: str) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("LD_PRELOAD", "MALLOC_ARENA_MAX", "MALLOC_CONF", "GLIBC_TUNABLES")
    }
    if variant == "glibc":
        env["GLIBC_TUNABLES"] = ""
    elif variant == "glibc-arena2":
        env["MALLOC_ARENA_MAX"] = "2"
    elif variant == "jemalloc":
        env["LD_PRELOAD"] = jemalloc
        env["MALLOC_CONF"] = MALLOC_CONF
    elif variant == "jemalloc-default":
        env["LD_PRELOAD"] = jemalloc
    elif variant.startswith("jemalloc:"):
        env["LD_PRELOAD"] = jemalloc
        env["MALLOC_CONF"] = variant.removeprefix("jemalloc:")
    elif variant != "glibc-tuned":
        raise SystemExit(f"unknown variant {variant!r}")
    return env


def wait_healthy(base: str, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit("the service exited during start-up")
        try:
            with urllib.request.urlopen(f"{base}/healthz", timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            time.sleep(0.1)
    raise SystemExit("the service did not become healthy")


def run_once(
    variant: str, args: argparse.Namespace, originals: Path, lua: Path, jemalloc: str
) -> Result:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    with tempfile.TemporaryDirectory(prefix="alloc-cache-") as cache_dir:
        command = [
            sys.executable, "-m", "service", "--port", str(port), "--cache-dir", cache_dir,
            "--originals", str(originals), "--concurrency", str(args.concurrency),
            "--queue", "256",
        ]  # fmt: skip
        with subprocess.Popen(
            command,
            cwd=ROOT,
            env=environment(variant, jemalloc),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        ) as process:
            try:
                wait_healthy(base, process)
                if variant.startswith("jemalloc"):
                    maps = Path(f"/proc/{process.pid}/maps").read_text()
                    assert "jemalloc" in maps, "LD_PRELOAD did not load jemalloc"
                start = rss_mb(process.pid)
                cpu_before = cpu_seconds(process.pid)
                samples: list[float] = []
                stop = threading.Event()

                def sample() -> None:
                    while not stop.wait(0.5):
                        samples.append(rss_mb(process.pid))

                sampler = threading.Thread(target=sample)
                sampler.start()
                wrk = subprocess.run(
                    ["wrk", "-t", "2", "-c", str(args.connections), "-d", f"{args.seconds}s",
                     "--timeout", "30s", "-s", str(lua), base],
                    capture_output=True, text=True, check=True,
                )  # fmt: skip
                stop.set()
                sampler.join()
                end = rss_mb(process.pid)
                cpu = cpu_seconds(process.pid) - cpu_before
                # Idle: what the allocator gives back once the load stops.
                time.sleep(args.idle)
                idle = rss_mb(process.pid)
            finally:
                process.terminate()
                process.wait(timeout=60)
    requests_per_s = 0.0
    errors = 0
    requests = 1
    for line in wrk.stdout.splitlines():
        if "requests in" in line:
            requests = max(1, int(line.split()[0]))
        if line.startswith("Requests/sec:"):
            requests_per_s = float(line.split()[1])
        if "Non-2xx" in line or "Socket errors" in line:
            errors += sum(int(part) for part in line.replace(",", " ").split() if part.isdigit())
    return Result(
        variant,
        requests_per_s,
        errors,
        start,
        max(samples, default=end),
        end,
        idle,
        1000 * cpu / requests,
        samples,
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=int, default=40)
    parser.add_argument("--connections", type=int, default=8)
    parser.add_argument("--concurrency", type=int, default=os.cpu_count() or 2)
    parser.add_argument("--idle", type=float, default=5.0, help="seconds before the idle RSS")
    parser.add_argument(
        "--variant",
        action="append",
        dest="variants",
        help="glibc, glibc-arena2, glibc-tuned, jemalloc, jemalloc-default or "
        "jemalloc:MALLOC_CONF; repeat for several (default: glibc, glibc-tuned, jemalloc)",
    )
    args = parser.parse_args()
    jemalloc = next(
        (str(path) for path in Path("/usr/lib").glob("*/libjemalloc.so.2")),
        "/usr/lib/x86_64-linux-gnu/libjemalloc.so.2",
    )
    if shutil.which("wrk") is None or not Path(jemalloc).exists():
        raise SystemExit("needs wrk and libjemalloc2: scripts/install-deps.sh bench")
    variants = args.variants or ["glibc", "glibc-tuned", "jemalloc"]
    results: dict[str, list[Result]] = {variant: [] for variant in variants}
    with tempfile.TemporaryDirectory(prefix="alloc-") as work:
        originals = Path(work) / "originals"
        make_originals(originals)
        lua = Path(work) / "unique.lua"
        lua.write_text(WRK_SCRIPT)
        for round_number in range(args.rounds):
            # Alternate the order so drift on a shared machine hits all variants.
            order = variants if round_number % 2 == 0 else variants[::-1]
            for variant in order:
                result = run_once(variant, args, originals, lua, jemalloc)
                results[variant].append(result)
                print(
                    f"round {round_number + 1} {variant:16s} {result.requests_per_s:6.1f} req/s "
                    f"{result.cpu_ms_per_request:5.0f} CPU ms/req "
                    f"errors {result.errors}  RSS MB: start {result.rss_start_mb:.0f} "
                    f"peak {result.rss_peak_mb:.0f} end {result.rss_end_mb:.0f} "
                    f"growth {result.growth_mb:+.0f} idle {result.rss_idle_mb:.0f}",
                    flush=True,
                )
    print(
        f"\nmedians over {args.rounds} rounds, {args.seconds} s of uncached renders, "
        f"wrk -c {args.connections}, --concurrency {args.concurrency}:"
    )
    print("| allocator | renders/s | CPU ms/render | RSS start | peak | end | growth | idle |")
    print("|---|---|---|---|---|---|---|---|")
    for variant, runs in results.items():

        def median(values: list[float]) -> float:
            return statistics.median(values)

        print(
            f"| {variant} | {median([r.requests_per_s for r in runs]):.1f} "
            f"| {median([r.cpu_ms_per_request for r in runs]):.0f} "
            f"| {median([r.rss_start_mb for r in runs]):.0f} MB "
            f"| {median([r.rss_peak_mb for r in runs]):.0f} MB "
            f"| {median([r.rss_end_mb for r in runs]):.0f} MB "
            f"| {median([r.growth_mb for r in runs]):+.0f} MB "
            f"| {median([r.rss_idle_mb for r in runs]):.0f} MB |"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
