"""The ``image-factory`` command: validate settings, then serve."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import resource
import signal
import socket
import sys
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

from .allocator import reexec_with_tuned_malloc
from .render_tokens import TokenClient
from .settings import Settings, SettingsError
from .signing import sign_url
from .supervisor import become_supervisor, join_supervisor

if TYPE_CHECKING:
    from aiohttp import web

# In-flight renders (at most --render-timeout, 20 s) may finish this long
# after accepting stops; with the 3 s drain, under Kubernetes' default 30 s.
SHUTDOWN_GRACE_SECONDS = 22.0


def main(argv: Sequence[str] | None = None) -> int:
    arguments = list(sys.argv[1:] if argv is None else argv)
    if arguments[:1] == ["sign"]:
        return sign_command(arguments[1:], os.environ)
    if arguments[:1] == ["loadtest"]:
        # Imported here: serving never loads the load-test client.
        from .loadtest import loadtest_command  # noqa: PLC0415

        return loadtest_command(arguments[1:])
    try:
        settings = Settings.from_sources(arguments, os.environ)
    except SettingsError as error:
        print(f"image-factory: {error}", file=sys.stderr)
        return 2
    # Before anything is printed or started: the process is replaced once.
    reexec_with_tuned_malloc(arguments)
    configure_logging(settings)
    tokens = join_supervisor(os.environ)
    if tokens is not None:  # started by a supervisor: one of --workers
        serve(settings, reuse_port=True, tokens=tokens)
        return 0
    problem = listen_problem(settings.host, settings.port, reuse_port=settings.workers > 1)
    if problem is not None:
        print(f"image-factory: {problem}", file=sys.stderr)
        return 2 if problem.startswith("--host") else 1
    if settings.print_examples:
        _print_examples(settings)
    if settings.workers > 1:
        become_supervisor(
            settings.workers,
            settings.total_concurrency,
            settings.drain_seconds,
            settings.log_format,
            arguments,
        )
    serve(settings, reuse_port=False)
    return 0


def sign_command(arguments: Sequence[str], environ: Mapping[str, str]) -> int:
    """``image-factory sign URL``: print the URL with its signature."""
    parser = argparse.ArgumentParser(
        prog="image-factory sign",
        description="Print URL with its s= signature. The key comes from --signing-key or "
        "IMAGE_FACTORY_SIGNING_KEY; with several (comma-separated), the first signs.",
    )
    parser.add_argument("url", help="a full URL or a path such as /picture/a.jpg?w=100")
    parser.add_argument("--signing-key", default=None)
    args = parser.parse_args(arguments)
    keys = args.signing_key or environ.get("IMAGE_FACTORY_SIGNING_KEY", "")
    key = keys.split(",")[0].strip()
    if not key:
        print(
            "image-factory sign: no key: pass --signing-key or set IMAGE_FACTORY_SIGNING_KEY",
            file=sys.stderr,
        )
        return 2
    print(sign_url(args.url, key))
    return 0


def listen_problem(host: str, port: int, *, reuse_port: bool) -> str | None:
    """Why the service could not listen on ``host:port`` (a name that does
    not resolve, a port in use, an address not on this machine), found by
    binding throwaway sockets as aiohttp will; None when it can. Without it
    those errors surface as a traceback from deep inside aiohttp, and with
    ``--workers`` as workers that die and are replaced forever."""
    try:
        addresses = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except (socket.gaierror, UnicodeError) as error:
        reason = error.strerror if isinstance(error, socket.gaierror) else "not a valid name"
        return f"--host: cannot resolve {host!r} ({reason})"
    for family, kind, protocol, _, address in addresses:
        try:
            probe = socket.socket(family, kind, protocol)
        except OSError:
            continue  # a family this kernel lacks (IPv6 off): asyncio skips it too
        with probe:
            # The options asyncio's create_server sets, so the probe fails
            # exactly when the real bind would.
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if reuse_port:
                probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
            if family == socket.AF_INET6:
                probe.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            try:
                probe.bind(address)
            except OSError as error:
                return f"cannot listen on {host}:{port}: {error.strerror or error}"
    return None


def raise_open_file_limit() -> None:
    """Each connection is a descriptor: allow as many as the hard limit, so a
    flood of connections is answered (503 when busy) rather than refused."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def configure_logging(settings: Settings) -> None:
    from .logs import configure_logging as configure  # noqa: PLC0415

    configure(settings.log_format)


def serve(settings: Settings, *, reuse_port: bool, tokens: TokenClient | None = None) -> None:
    """Run one serving process until SIGTERM or SIGINT; ``tokens`` are the
    supervisor's shared render slots when this process is one of its workers."""
    # Deferred: the app loads libvips and aiohttp, which bad settings never
    # need and a supervisor process never uses.
    from aiohttp import web  # noqa: PLC0415

    from .access_log import ACCESS_LOGGER, AccessLogger  # noqa: PLC0415
    from .app import create_app  # noqa: PLC0415
    from .slow_clients import install as close_slow_clients  # noqa: PLC0415

    raise_open_file_limit()
    close_slow_clients(settings.header_timeout)

    logging.getLogger(__name__).info(
        "serving %s on http://%s:%d", settings.originals, settings.host, settings.port
    )
    app = create_app(settings, tokens)
    drain_on_sigterm(app)
    web.run_app(
        app,
        host=settings.host,
        port=settings.port,
        reuse_port=reuse_port,
        # A flood of connections queues rather than being refused (NOTES.md).
        backlog=1024,
        # SIGTERM: drain, stop accepting, let in-flight renders finish (their
        # results still fill the cache), then exit 0.
        shutdown_timeout=SHUTDOWN_GRACE_SECONDS,
        access_log=logging.getLogger(ACCESS_LOGGER),
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

    from aiohttp.web_runner import GracefulExit  # noqa: PLC0415 - served processes only

    from .handlers import LIFECYCLE, SETTINGS  # noqa: PLC0415

    log = logging.getLogger(__name__)

    async def install(app: web.Application) -> None:
        # on_startup runs after aiohttp installed its handlers: these
        # replace them.
        loop = asyncio.get_running_loop()
        lifecycle = app[LIFECYCLE]
        seconds = app[SETTINGS].drain_seconds

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


def _print_examples(settings: Settings) -> None:
    base = f"http://{settings.host}:{settings.port}"
    images = sorted(
        name
        for name in os.listdir(settings.originals)
        if name.lower().endswith(_EXAMPLE_SUFFIXES)
        and os.path.isfile(os.path.join(settings.originals, name))
    )
    print(f"Image Factory serving {settings.originals} on {base}", flush=True)
    for name, query in zip(images, _EXAMPLE_QUERIES, strict=False):
        print(f"  {base}/picture/{name}?{query}", flush=True)
    print(f"  {base}/healthz", flush=True)


_EXAMPLE_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp", ".gif", ".avif")
_EXAMPLE_QUERIES = (
    "scalex=300&encoding=webp",
    "w=200&h=200&fit=cover",
    "scalex=800&encoding=webp",
    "h=200&format=avif",
)
