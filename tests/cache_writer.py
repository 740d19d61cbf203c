"""A process that writes cache entries forever, for the crash test.

Run as ``python -m tests.cache_writer DIR``; prints one line per commit.
Each payload is derived from its key, so a reader can tell a whole file
from a partial or mixed one.
"""

from __future__ import annotations

import os
import random
import sys

from service.cache import DiskCache
from service.formats import OutputFormat

from .cache_room import bound_for

KEYS = [f"{index:064x}" for index in range(40)]
# Room for entries; the bound adds the index's share (tests/cache_room.py).
ROOM = 200_000


def payload(key: str, size: int) -> bytes:
    return (b"\xff\xd8\xff\xe0" + key.encode() * (size // 64 + 1))[:size]


def main() -> None:
    cache = DiskCache(sys.argv[1], bound_for(ROOM))
    cache.open()
    # Reproducible choices for a test, not secrets.
    chooser = random.Random(int(sys.argv[2]) if len(sys.argv) > 2 else 0)  # noqa: S311
    written = 0
    while True:
        key = chooser.choice(KEYS)
        size = chooser.randint(1_000, 30_000)
        temp = cache.new_temp()
        data = payload(key, size)
        # Write in pieces so a kill can land in the middle of a file.
        for start in range(0, size, 4096):
            os.write(temp.descriptor, data[start : start + 4096])
        cache.commit(key, temp, OutputFormat.JPEG)
        written += 1
        print(f"committed {written}", flush=True)


if __name__ == "__main__":
    main()
