"""glibc malloc settings for a process that renders images.

A render allocates and frees tens of megabytes of pixel and coefficient
buffers. Untuned, glibc keeps them: its mmap threshold rises to the largest
buffer freed so far (so later ones come from the heap and fragment it) and
each render thread gets its own arena. Measured with the benchmark suite (2
workers, 16 connections over the photo mix; docs/benchmarks-journal.md, 2026-11-25):

| glibc setting                                 | peak RSS of the tree | CPU per request |
|-----------------------------------------------|----------------------|-----------------|
| untuned except 2 arenas (the previous default)| 480 MiB              | 75.5 ms         |
| 1 arena                                       | 383 MiB              | 74.4 ms         |
| 1 arena, buffers >= 1 MiB mmapped             | ~300 MiB             | 85.0 ms         |
| the same, mmapped buffers on huge pages       | 299 MiB              | 76.2 ms         |

Mapping big buffers returns them to the kernel when freed, but a fresh
mapping costs a page fault per 4 KiB page; with transparent huge pages
(``madvise`` mode is the kernel default) it costs one per 2 MiB, and the CPU
cost disappears. ``glibc.malloc.hugetlb`` can only be set before the process
starts (``GLIBC_TUNABLES``), so the service re-executes itself once with it.
An operator's own allocator settings always win.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping, Sequence

TUNABLES = "glibc.malloc.arena_max=1:glibc.malloc.mmap_threshold=1048576:glibc.malloc.hugetlb=1"

# Any of these means someone chose the allocator's settings already.
_OPERATOR_SETTINGS = ("GLIBC_TUNABLES", "MALLOC_ARENA_MAX", "MALLOC_MMAP_THRESHOLD_")
_OTHER_ALLOCATORS = ("jemalloc", "tcmalloc", "mimalloc")


def is_glibc() -> bool:
    try:
        return os.confstr("CS_GNU_LIBC_VERSION") is not None
    except (ValueError, OSError):
        return False


def tuned_environment(environ: Mapping[str, str], *, glibc: bool) -> dict[str, str] | None:
    """The environment to re-execute with, or None when there is nothing to
    do: not glibc, another allocator preloaded, or settings already chosen."""
    if not glibc or any(name in environ for name in _OPERATOR_SETTINGS):
        return None
    preloaded = environ.get("LD_PRELOAD", "")
    if any(name in preloaded for name in _OTHER_ALLOCATORS):
        return None
    return {**environ, "GLIBC_TUNABLES": TUNABLES}


def reexec_with_tuned_malloc(arguments: Sequence[str], module: str = "service") -> None:
    """Replace this process (same PID) by ``python -m MODULE ARGUMENTS``
    with the tuned allocator; return only if no re-execution is needed.
    (The benchmarks that measure the service in process use it too.)"""
    environment = tuned_environment(os.environ, glibc=is_glibc())
    if environment is None or not sys.executable:
        return
    sys.stdout.flush()
    sys.stderr.flush()
    os.execve(sys.executable, [sys.executable, "-m", module, *arguments], environment)  # noqa: S606
