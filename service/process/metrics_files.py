"""Where the workers' metric files live: in memory when the machine allows.

prometheus-client's multiprocess mode writes every counter and histogram
update into a shared mapping of a file in ``PROMETHEUS_MULTIPROC_DIR``. On
a disk filesystem (ext4 here) the kernel writes those pages back every few
seconds, and the next update to a page written back faults, waiting on the
filesystem's journal, behind the cache's own writes, with the GIL held:
under uncached load a third of one worker's GIL time was spent there
(py-spy, GIL samples: 518 of 1,562 in ``MmapedDict.write_value``, all on
the event loop; 18 of 492 with the files in ``/dev/shm``). tmpfs pages are never written
back, so nothing waits. ``/dev/shm`` is used when it is a writable
directory with room; otherwise the temporary directory (a tmpfs in the
container).
"""

from __future__ import annotations

import os
import tempfile

SHARED_MEMORY = "/dev/shm"  # noqa: S108 - mkdtemp makes a private (0700), unguessable directory
# A worker's files are sparse, a few pages each: room for many workers
# and a margin, since a mapping written past a full tmpfs is a SIGBUS.
_ROOM_BYTES = 16 * 2**20
_PREFIX = "image-factory-metrics-"


def new_metrics_directory(shared_memory: str = SHARED_MEMORY) -> str:
    """A new, empty directory for one start's metric files."""
    return tempfile.mkdtemp(prefix=_PREFIX, dir=_in_memory(shared_memory))


def _in_memory(directory: str) -> str | None:
    try:
        stats = os.statvfs(directory)
    except OSError:
        return None
    if not os.access(directory, os.W_OK | os.X_OK):
        return None
    return directory if stats.f_bavail * stats.f_frsize >= _ROOM_BYTES else None
