"""The supervisor: ``--workers N`` processes serving one port, sharing one cache.

The service always runs supervised, one worker included: a worker that
crashes (a decoder's SIGSEGV, the kernel's OOM killer) costs its own
requests and is replaced within about a second, never the service. The
command binds the listening sockets before it becomes the supervisor
(``server/listen.py``); this process keeps them open and hands them to each
worker it starts, so the port stays bound and new connections wait in the
backlog while a worker is replaced. The workers accept from the same
sockets; they share the disk cache through its SQLite index and the CPUs
through render tokens (``render_tokens.py``) that this process hands out.
Workers are fresh interpreters (``python -m service`` with the same
arguments; never ``fork``: libvips' threads do not survive a fork). SIGTERM
or SIGINT stops them all gracefully.

A worker is told it is one by the descriptor of its end of a socketpair in
``WORKER_SOCKET_ENV``; when the supervisor disappears (even by SIGKILL) that
socket closes and the worker shuts itself down rather than linger unsupervised.

The process that validated the settings becomes the supervisor by
re-executing itself (same PID) as ``python -m service.process.supervisor``: this
module imports only the standard library, ``logs`` and ``render_tokens``,
so the supervisor holds ~17 MiB instead of the ~23 MiB of an interpreter
that has parsed settings, presets and signing keys (it does none of that).
"""

from __future__ import annotations

import glob
import logging
import os
import selectors
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import MutableMapping, Sequence
from dataclasses import dataclass
from types import FrameType
from typing import NoReturn

from ..logs import configure_logging
from .crashes import CrashLog
from .metrics_files import new_metrics_directory
from .render_tokens import TokenClient, TokenServer

# By name: the supervisor runs this module as __main__.
log = logging.getLogger("service.process.supervisor")

WORKER_SOCKET_ENV = "IMAGE_FACTORY_WORKER_SOCKET"
# The listening sockets' descriptors, comma-separated, in a worker.
LISTEN_FDS_ENV = "IMAGE_FACTORY_LISTEN_FDS"
# Where the workers keep their metrics for each other's scrapes (metrics.py):
# prometheus-client's own variable, read when it is first imported, so it is
# set in the workers' environment before they start.
METRICS_DIR_ENV = "PROMETHEUS_MULTIPROC_DIR"

# How long the workers may take to stop, beyond their drain: their shutdown
# grace (server/serve.py: 22 s, 32 s with remote origins) and a margin.
_STOP_GRACE_SECONDS = 45.0
# A worker that dies this soon after starting is failing, not crashing once:
# wait before replacing it so a broken configuration does not spin.
_RESTART_BACKOFF_SECONDS = 1.0
_POLL_SECONDS = 0.25
# How a worker dies when its code crashes or the kernel kills it (the OOM
# killer's SIGKILL): the supervisor itself only signals workers to stop them.
_CRASH_SIGNALS = frozenset(
    {signal.SIGSEGV, signal.SIGBUS, signal.SIGABRT, signal.SIGILL, signal.SIGFPE, signal.SIGKILL}
)


@dataclass(frozen=True, slots=True)
class Supervised:
    """What a worker gets from its supervisor: the shared render tokens and
    the listening sockets."""

    tokens: TokenClient
    listeners: list[socket.socket]


@dataclass(slots=True)
class _Worker:
    process: subprocess.Popen[bytes]
    connection: socket.socket
    started_at: float


class _Supervisor:
    def __init__(
        self,
        workers: int,
        tokens: int,
        drain_seconds: float,
        *,
        listeners: Sequence[int],
        crash_log: CrashLog,
        arguments: Sequence[str],
    ) -> None:
        self.command = [sys.executable, "-m", "service", *arguments]
        self.listeners = list(listeners)
        self.crash_log = crash_log
        self.tokens = TokenServer(tokens)
        self.drain_seconds = drain_seconds
        self.selector = selectors.DefaultSelector()
        self.workers: list[_Worker | None] = [None] * workers
        self.restart_at = [0.0] * workers
        self.stopping = False
        # Passed on to the workers: SIGTERM drains them, SIGINT stops at once.
        self.stop_signal = signal.SIGTERM
        # New at every start: counters begin at zero, as a restart's would.
        self.metrics_dir = new_metrics_directory()

    def start(self, slot: int) -> None:
        ours, theirs = socket.socketpair()
        environment = dict(os.environ)
        environment[WORKER_SOCKET_ENV] = str(theirs.fileno())
        environment[LISTEN_FDS_ENV] = ",".join(map(str, self.listeners))
        environment[METRICS_DIR_ENV] = self.metrics_dir
        try:
            process = subprocess.Popen(  # noqa: S603 - our interpreter, our own arguments
                self.command, env=environment, pass_fds=(theirs.fileno(), *self.listeners)
            )
        finally:
            theirs.close()
        self.tokens.add(ours)
        self.selector.register(ours, selectors.EVENT_READ, slot)
        self.workers[slot] = _Worker(process, ours, time.monotonic())

    def read(self, connection: socket.socket) -> None:
        try:
            data = connection.recv(4096)
        except OSError:
            data = b""
        if data:
            self.tokens.receive(connection, data)
        else:
            self.forget_connection(connection)

    def forget_connection(self, connection: socket.socket) -> None:
        if connection.fileno() < 0:
            return
        self.tokens.remove(connection)
        self.selector.unregister(connection)
        connection.close()

    def reap(self) -> None:
        """Notice dead workers: take back their tokens, schedule replacements."""
        now = time.monotonic()
        for slot, worker in enumerate(self.workers):
            if worker is None or worker.process.poll() is None:
                continue
            self.forget_connection(worker.connection)
            self.workers[slot] = None
            self.forget_gauges(worker.process.pid)
            self.blame(worker)
            if not self.stopping:
                log.warning(
                    "worker %s exited with %s; replacing it",
                    worker.process.pid,
                    worker.process.returncode,
                )
                failing_fast = now - worker.started_at < _RESTART_BACKOFF_SECONDS
                self.restart_at[slot] = now + (_RESTART_BACKOFF_SECONDS if failing_fast else 0.0)

    def blame(self, worker: _Worker) -> None:
        """A worker that crashed makes suspects of the originals it was
        rendering (crashes.py); any other exit blames nothing."""
        pid, status = worker.process.pid, worker.process.returncode
        crashed = not self.stopping and status < 0 and -status in _CRASH_SIGNALS
        try:
            if not crashed:
                self.crash_log.forget_worker(pid)
                return
            suspects = self.crash_log.record_crash(pid)
        except OSError as error:  # the cache directory is unusable: blame nobody
            log.warning("could not record the crash of worker %s: %s", pid, error)
            return
        log.warning(
            "worker %s crashed (signal %s) rendering %s",
            pid,
            signal.Signals(-status).name,
            ", ".join(f"{path} (request {request_id})" for path, request_id in suspects)
            or "nothing",
        )

    def close_listeners(self) -> None:
        """Our copies: the sockets close once the workers, which stop
        accepting after their drain, have closed theirs too."""
        for descriptor in self.listeners:
            os.close(descriptor)
        self.listeners = []

    def forget_gauges(self, pid: int) -> None:
        """A dead worker's gauges leave /metrics; its counters stay in the
        sums. (What prometheus-client's mark_process_dead does for the
        "live" gauge modes, without importing it here.)"""
        for path in glob.glob(os.path.join(self.metrics_dir, f"gauge_live*_{pid}.db")):
            os.remove(path)

    def serve_tokens(self, timeout: float) -> None:
        for key, _ in self.selector.select(timeout):
            assert isinstance(key.fileobj, socket.socket)
            self.read(key.fileobj)

    def alive(self) -> list[_Worker]:
        return [worker for worker in self.workers if worker is not None]

    def run(self) -> int:
        for slot in range(len(self.workers)):
            self.start(slot)
        log.info("started %d workers: %s", len(self.workers), [w.process.pid for w in self.alive()])
        while not self.stopping:
            self.serve_tokens(_POLL_SECONDS)
            self.reap()
            now = time.monotonic()
            for slot, worker in enumerate(self.workers):
                if worker is None and not self.stopping and now >= self.restart_at[slot]:
                    self.start(slot)
        # Keep granting tokens while the workers finish their in-flight
        # renders; a second signal (now SIGINT) is passed on too.
        sent: signal.Signals | None = None
        deadline = 0.0
        while True:
            if self.stop_signal != sent:
                sent = self.stop_signal
                for worker in self.alive():
                    worker.process.send_signal(sent)  # aiohttp shuts down gracefully
                self.close_listeners()
                drain = self.drain_seconds if sent == signal.SIGTERM else 0.0
                deadline = time.monotonic() + drain + _STOP_GRACE_SECONDS
            if not self.alive() or time.monotonic() >= deadline:
                break
            self.serve_tokens(_POLL_SECONDS)
            self.reap()
        for worker in self.alive():
            worker.process.kill()
            worker.process.wait()
        self.reap()
        shutil.rmtree(self.metrics_dir, ignore_errors=True)
        return 0


def join_supervisor(environ: MutableMapping[str, str]) -> Supervised | None:
    """In a worker: the render tokens and listening sockets of the
    supervisor that started this process (the variables are removed, so
    nothing started from here inherits them); None when no supervisor
    started it."""
    descriptor = environ.pop(WORKER_SOCKET_ENV, None)
    listening = environ.pop(LISTEN_FDS_ENV, "")
    if descriptor is None:
        return None
    os.set_inheritable(int(descriptor), False)
    connection = socket.socket(fileno=int(descriptor))
    listeners = [socket.socket(fileno=int(fd)) for fd in listening.split(",") if fd]
    for listener in listeners:
        listener.set_inheritable(False)

    def supervisor_gone() -> None:
        # Unsupervised, this worker would hold the port forever and never be
        # replaced: finish in-flight requests and exit, as on SIGTERM.
        log.warning("the supervisor is gone; shutting down")
        os.kill(os.getpid(), signal.SIGTERM)

    return Supervised(TokenClient(connection, supervisor_gone), listeners)


def become_supervisor(
    workers: int,
    tokens: int,
    drain_seconds: float,
    log_format: str,
    *,
    listeners: Sequence[socket.socket],
    cache_dir: str,
    poison_ttl: float,
    arguments: Sequence[str],
) -> NoReturn:
    """Replace this process (same PID, same environment, the listening
    sockets still open: they are inheritable) by the lean supervisor of
    ``workers`` processes started with ``arguments``."""
    sys.stdout.flush()
    sys.stderr.flush()
    descriptors = ",".join(str(listener.fileno()) for listener in listeners)
    command = [
        sys.executable, "-m", "service.process.supervisor",
        str(workers), str(tokens), repr(drain_seconds), log_format, descriptors,
        cache_dir, repr(poison_ttl),
    ]  # fmt: skip
    os.execv(sys.executable, [*command, "--", *arguments])  # noqa: S606 - our interpreter


def supervise(supervisor: _Supervisor) -> int:
    """Run ``supervisor``'s workers until SIGTERM/SIGINT."""

    def stop(signum: int, frame: FrameType | None) -> None:
        if supervisor.stopping:
            signum = signal.SIGINT  # asked twice: no more draining
        supervisor.stopping = True
        supervisor.stop_signal = signal.Signals(signum)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    return supervisor.run()


def main(argv: Sequence[str]) -> int:
    """``python -m service.process.supervisor WORKERS TOKENS DRAIN LOG_FORMAT FDS
    CACHE_DIR POISON_TTL -- ARGUMENTS``, as ``become_supervisor`` runs it with
    settings already validated and the listening sockets (FDS,
    comma-separated) bound."""
    workers, tokens, drain, log_format, descriptors, cache_dir, ttl, separator, *arguments = argv
    if separator != "--":
        usage = "WORKERS TOKENS DRAIN LOG_FORMAT FDS CACHE_DIR POISON_TTL -- ARGS"
        raise SystemExit(f"usage: python -m service.process.supervisor {usage}")
    configure_logging(log_format)
    listeners = [int(fd) for fd in descriptors.split(",") if fd]
    crash_log = CrashLog(cache_dir, float(ttl))
    return supervise(
        _Supervisor(
            int(workers),
            int(tokens),
            float(drain),
            listeners=listeners,
            crash_log=crash_log,
            arguments=arguments,
        )
    )


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
