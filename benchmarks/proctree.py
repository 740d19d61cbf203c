"""A server's whole process tree: its memory, sampled while load runs, and its CPU.

RSS summed over a forked tree counts shared pages once per process, which
flatters nobody in particular but overstates all; PSS (proportional set
size, from ``/proc/PID/smaps_rollup``) splits shared pages between their
users. Both are recorded; the tables quote RSS, as the issue's targets do.
"""

from __future__ import annotations

import os
import threading
import time
from dataclasses import dataclass

_PAGE = os.sysconf("SC_PAGE_SIZE")
_TICKS = os.sysconf("SC_CLK_TCK")


def parse_stat(text: str) -> tuple[int, float]:
    """(parent pid, user + system CPU seconds) from a /proc/PID/stat line."""
    # The command name is in parentheses and may contain spaces or ')'.
    fields = text[text.rindex(")") + 2 :].split()
    parent = int(fields[1])
    cpu_ticks = int(fields[11]) + int(fields[12])
    return parent, cpu_ticks / _TICKS


def tree(root: int) -> list[int]:
    """``root`` and every process descending from it."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as handle:
                parent, _ = parse_stat(handle.read())
        except (OSError, ValueError):
            continue
        children.setdefault(parent, []).append(int(entry))
    found, pending = [], [root]
    while pending:
        pid = pending.pop()
        found.append(pid)
        pending.extend(children.get(pid, []))
    return found


def rss_bytes(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/statm") as handle:
            return int(handle.read().split()[1]) * _PAGE
    except (OSError, ValueError, IndexError):
        return 0


def pss_bytes(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/smaps_rollup") as handle:
            for line in handle:
                if line.startswith("Pss:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError):
        pass
    return 0


def cpu_seconds(pids: list[int]) -> float:
    total = 0.0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/stat") as handle:
                total += parse_stat(handle.read())[1]
        except (OSError, ValueError):
            continue
    return total


@dataclass(slots=True)
class Peak:
    rss_bytes: int = 0
    pss_bytes: int = 0
    processes: int = 0
    samples: int = 0

    def as_dict(self) -> dict[str, float | int]:
        return {
            "peak_rss_mib": round(self.rss_bytes / 2**20, 1),
            "peak_pss_mib": round(self.pss_bytes / 2**20, 1),
            "processes": self.processes,
            "samples": self.samples,
        }


class Sampler:
    """Samples a tree's total RSS and PSS in a thread until stopped."""

    # PSS walks every mapping of a process (under its mmap lock): read it at
    # a tenth of the rate of RSS, which is a counter.
    PSS_EVERY = 10

    def __init__(self, root: int, interval: float = 0.05) -> None:
        self.root = root
        self.interval = interval
        self.peak = Peak()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> Sampler:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        pids = tree(self.root)
        refreshed = time.monotonic()
        while not self._stop.is_set():
            if time.monotonic() - refreshed > 1.0:  # workers may be replaced
                pids, refreshed = tree(self.root), time.monotonic()
            rss = sum(rss_bytes(pid) for pid in pids)
            peak = self.peak
            if peak.samples % self.PSS_EVERY == 0 or rss > peak.rss_bytes:
                peak.pss_bytes = max(peak.pss_bytes, sum(pss_bytes(pid) for pid in pids))
            peak.samples += 1
            if rss > peak.rss_bytes:
                peak.rss_bytes, peak.processes = rss, len(pids)
            self._stop.wait(self.interval)
