"""Run one serving process until a signal: the app, the listener, the drain.

Imported only by a process that serves (cli defers it): it loads aiohttp
and, through the app, libvips, which a supervisor never needs.
"""

from __future__ import annotations

import asyncio
import logging
import resource
import signal
import socket
import sys

from aiohttp import web
from aiohttp.web_runner import GracefulExit

from ..origins.config import DirectorySpec
from ..process.render_tokens import TokenClient
from ..settings import Settings
from . import state
from .access_log import ACCESS_LOGGER, AccessLogger, batch_access_log
from .app import create_app
from .listen import BACKLOG
from .patches.slow_clients import install as close_slow_clients

# How long in-flight requests may finish after accepting stops, beyond their
# own time limits.
_SHUTDOWN_MARGIN_SECONDS = 2.0

# How long a thread may hold the GIL while another waits for it (Python's
# default is 5 ms). A render thread takes the GIL back after every call into
# libvips while it builds its pipeline, and the event loop, busy with other
# requests, held it for up to the whole interval each time: the render's
# core idled meanwhile. At 0.2 ms one process served the uncached mix at
# 0.97x the req/s of two (0.94-0.95x at 5 ms), the same CPU per request.
SWITCH_INTERVAL_SECONDS = 0.0002


def shutdown_grace(settings: Settings) -> float:
    """A render (--render-timeout), and before it a download when any origin
    is remote (--origin-timeout), with a margin: 22 s for local originals
    (with the 3 s drain, under Kubernetes' default 30 s), 32 s by default
    with remote ones (docs/operating.md: raise terminationGracePeriodSeconds)."""
    remote = (
        settings.url_sources is not None
        or any(not isinstance(spec, DirectorySpec) for _, spec in settings.origins)
        or not isinstance(settings.originals_spec, DirectorySpec | None)
    )
    download = settings.origin_timeout if remote else 0.0
    return settings.render_timeout + download + _SHUTDOWN_MARGIN_SECONDS


def hand_the_gil_over_sooner() -> None:
    """Make a thread that holds the GIL give it up to a waiting one after
    ``SWITCH_INTERVAL_SECONDS`` (see there why)."""
    sys.setswitchinterval(SWITCH_INTERVAL_SECONDS)


def raise_open_file_limit() -> None:
    """Each connection is a descriptor: allow as many as the hard limit, so a
    flood of connections is answered (503 when busy) rather than refused."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def serve(settings: Settings, listeners: list[socket.socket], tokens: TokenClient) -> None:
    """Run one worker until SIGTERM or SIGINT, accepting on the supervisor's
    ``listeners``, or, with none (several workers), on its own SO_REUSEPORT
    sockets; ``tokens`` are the render slots shared by all workers."""
    hand_the_gil_over_sooner()
    raise_open_file_limit()
    close_slow_clients(settings.header_timeout)

    logging.getLogger(__name__).info(
        "serving %s on http://%s:%d", settings.originals, settings.host, settings.port
    )
    app = create_app(settings, tokens)
    drain_on_sigterm(app)
    access = logging.getLogger(ACCESS_LOGGER)
    batched = batch_access_log(access, sys.stderr)
    try:
        _run(app, settings, listeners, access)
    finally:
        if batched is not None:
            batched.drain()


def _run(
    app: web.Application,
    settings: Settings,
    listeners: list[socket.socket],
    access: logging.Logger,
) -> None:
    web.run_app(
        app,
        # Bound and listening already (server/listen.py), or bound here.
        sock=listeners or None,
        host=None if listeners else settings.host,
        port=None if listeners else settings.port,
        reuse_port=not listeners,
        # Also what asyncio passes to listen() again on the supervisor's
        # sockets: run_app's default, 128, would cut their backlog.
        backlog=BACKLOG,
        # SIGTERM: drain, stop accepting, let in-flight renders finish (their
        # results still fill the cache), then exit 0.
        shutdown_timeout=shutdown_grace(settings),
        access_log=access,
        access_log_class=AccessLogger,
        access_log_format=settings.log_format,
        print=None,
    )


def drain_on_sigterm(app: web.Application) -> None:
    """For a served process (never the tests' in-process apps): SIGTERM
    first makes /healthz answer 503 for ``--drain-seconds`` while every other
    request is served as before, then stops the server as aiohttp's own
    handler would. Without the drain, the listener closed at once and no
    load balancer could ever see the 503. SIGINT (an operator at a
    terminal; the supervisor's answer to a second SIGTERM) stops at once.

    Each stop happens once: a signal to the whole process group reaches a
    worker twice (straight and through the supervisor), and a second
    GracefulExit raised into aiohttp's cleanup would abandon in-flight
    requests and skip closing the cache."""

    log = logging.getLogger(__name__)

    async def install(app: web.Application) -> None:
        # on_startup runs after aiohttp installed its handlers: these
        # replace them.
        loop = asyncio.get_running_loop()
        lifecycle = state.lifecycle(app)
        seconds = state.settings(app).drain_seconds

        def stop() -> None:
            if lifecycle.stopping:
                return
            lifecycle.stopping = True
            raise GracefulExit()

        def on_sigterm() -> None:
            if lifecycle.draining or lifecycle.stopping:
                return
            if seconds <= 0:
                stop()
            lifecycle.draining = True
            log.info("SIGTERM: /healthz answers 503; accepting stops in %g s", seconds)
            loop.call_later(seconds, stop)

        loop.add_signal_handler(signal.SIGTERM, on_sigterm)
        loop.add_signal_handler(signal.SIGINT, stop)

    app.on_startup.append(install)
