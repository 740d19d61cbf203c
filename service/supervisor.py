"""``--workers N``: N processes serving one port, sharing one cache.

Each worker is a separate process that binds the port with SO_REUSEPORT, so
the kernel spreads connections over them with no proxy in between; they share
the disk cache through its SQLite index. Workers are started with ``spawn``
(never ``fork``: libvips' threads do not survive a fork), and one that dies
is replaced. SIGTERM or SIGINT stops them all.
"""

from __future__ import annotations

import logging
import multiprocessing
import signal
import time
from multiprocessing.connection import wait
from multiprocessing.process import BaseProcess
from types import FrameType

from .settings import Settings

log = logging.getLogger(__name__)

_STOP_GRACE_SECONDS = 30.0
# A worker that dies this soon after starting is failing, not crashing once:
# pause before replacing it so a broken configuration does not spin.
_RESTART_BACKOFF_SECONDS = 1.0


def serve_worker(settings: Settings) -> None:
    """The body of one worker process."""
    from .cli import configure_logging, serve  # noqa: PLC0415 - runs in the child

    configure_logging(settings)
    serve(settings, reuse_port=True)


def supervise(settings: Settings) -> int:
    context = multiprocessing.get_context("spawn")
    stopping = False

    def stop(signum: int, frame: FrameType | None) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)

    def start() -> BaseProcess:
        process = context.Process(target=serve_worker, args=(settings,), daemon=False)
        process.start()
        return process

    workers = [start() for _ in range(settings.workers)]
    log.info("started %d workers: %s", len(workers), [w.pid for w in workers])
    started_at = {worker.pid: time.monotonic() for worker in workers}
    while not stopping:
        wait([worker.sentinel for worker in workers], timeout=0.5)
        for index, worker in enumerate(workers):
            if worker.is_alive() or stopping:
                continue
            log.warning("worker %s exited with %s; replacing it", worker.pid, worker.exitcode)
            if time.monotonic() - started_at.get(worker.pid, 0.0) < _RESTART_BACKOFF_SECONDS:
                time.sleep(_RESTART_BACKOFF_SECONDS)
            workers[index] = start()
            started_at[workers[index].pid] = time.monotonic()
    for worker in workers:
        worker.terminate()  # SIGTERM: aiohttp shuts down gracefully
    deadline = time.monotonic() + _STOP_GRACE_SECONDS
    for worker in workers:
        worker.join(max(0.0, deadline - time.monotonic()))
        if worker.is_alive():
            worker.kill()
            worker.join()
    return 0
