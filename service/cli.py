"""The ``image-factory`` command: serve (validate settings, then listen or
supervise), or one of its subcommands: ``sign``, ``poison``, ``purge``,
``srcset`` and ``loadtest``."""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable, Mapping, Sequence

from .cache import CacheUnavailable
from .errors import BadRequest
from .process.allocator import reexec_with_tuned_malloc
from .process.crashes import CrashLog
from .process.supervisor import Supervised, become_supervisor, join_supervisor
from .purge import PurgeTarget, purge_directories
from .server.fallback import check_fallback
from .server.listen import ListenError, bind_listeners
from .settings import Settings, SettingsError
from .signing import sign_url


def main(argv: Sequence[str] | None = None) -> int:
    arguments = list(sys.argv[1:] if argv is None else argv)
    subcommand = _SUBCOMMANDS.get(arguments[0]) if arguments else None
    if subcommand is not None:
        return subcommand(arguments[1:], os.environ)
    try:
        settings = Settings.from_sources(arguments, os.environ)
    except SettingsError as error:
        print(f"image-factory: {error}", file=sys.stderr)
        return 2
    # Before anything is printed or started: the process is replaced once.
    reexec_with_tuned_malloc(arguments)
    configure_logging(settings)
    supervised = join_supervisor(os.environ)
    if supervised is not None:  # a worker of the supervisor
        _serve(settings, supervised)
        return 0
    return _supervise(settings, arguments)


def _supervise(settings: Settings, arguments: Sequence[str]) -> int:
    """Check what needs a render, bind, and supervise the workers."""
    refusal = check_fallback(settings)  # a render: what the settings could not tell
    if refusal is not None:
        print(f"image-factory: {refusal}", file=sys.stderr)
        return 2
    try:
        # One worker inherits the supervisor's sockets; several bind their
        # own with SO_REUSEPORT (server/listen.py says why).
        listeners = bind_listeners(
            settings.host, settings.port, probe_reuse_port=settings.workers > 1
        )
    except ListenError as error:
        print(f"image-factory: {error.message}", file=sys.stderr)
        return error.status
    if settings.print_examples:
        _print_examples(settings)
    # Always supervised, one worker included: a crash costs a worker, never
    # the port (process/supervisor.py).
    become_supervisor(
        settings.workers,
        settings.total_concurrency,
        settings.drain_seconds,
        settings.log_format,
        listeners=listeners,
        cache_dir=settings.cache_dir,
        poison_ttl=settings.poison_ttl,
        arguments=arguments,
    )


def _loadtest(arguments: Sequence[str], environ: Mapping[str, str]) -> int:
    # Imported here: serving never loads the load-test client.
    from .loadtest import loadtest_command  # noqa: PLC0415

    return loadtest_command(arguments)


def _srcset(arguments: Sequence[str], environ: Mapping[str, str]) -> int:
    from .srcset_command import srcset_command  # noqa: PLC0415

    return srcset_command(arguments, environ)


def poison_command(arguments: Sequence[str], environ: Mapping[str, str]) -> int:
    """``image-factory poison list|clear [PATH]``: the originals that were in
    flight when a worker crashed, and lifting the refusal of one or all."""
    parser = argparse.ArgumentParser(
        prog="image-factory poison",
        description="Originals in flight at a worker's crash: one crash within --poison-ttl "
        "makes an original render alone, two refuse it (422). The cache directory comes from "
        "--cache-dir or IMAGE_FACTORY_CACHE_DIR, as for serving.",
    )
    parser.add_argument("action", choices=("list", "clear"))
    parser.add_argument("path", nargs="?", help="with clear: only this original's record")
    parser.add_argument("--cache-dir", default=None)
    args = parser.parse_args(arguments)
    try:
        settings = Settings.from_sources(
            [] if args.cache_dir is None else ["--cache-dir", args.cache_dir], environ
        )
    except SettingsError as error:
        print(f"image-factory poison: {error}", file=sys.stderr)
        return 2
    log = CrashLog(settings.cache_dir, settings.poison_ttl)
    if args.action == "clear":
        print(f"cleared {log.clear(args.path)}")
        return 0
    for suspect in log.suspects():
        state = "refused" if len(suspect.crashes) >= 2 else "renders alone"
        print(f"{suspect.path}\t{len(suspect.crashes)} crash(es)\t{state}")
    return 0


def purge_command(arguments: Sequence[str], environ: Mapping[str, str]) -> int:
    """``image-factory purge PATH`` (or ``--prefix PREFIX``): remove what was
    made from the originals, in the cache directory itself, and tell the
    running workers (service/purge.py). Prints the report as JSON, as the
    endpoint answers it."""
    parser = argparse.ArgumentParser(
        prog="image-factory purge",
        description="Remove every variant and downloaded copy of an original (PATH, as the URL "
        "names it after /picture/, or a ?url= source's URL), or of every original whose name "
        "starts with --prefix; running workers drop their memos at once. Prints what was "
        "removed, as JSON, with the CDN tags to purge next. The directories come from "
        "--cache-dir and --source-cache-dir or their IMAGE_FACTORY_* variables, as for serving.",
    )
    parser.add_argument("path", nargs="?", help="the original, e.g. photos/cat.jpg")
    parser.add_argument("--prefix", default=None, help="every original under it, e.g. photos/")
    parser.add_argument("--cache-dir", default=None)
    parser.add_argument("--source-cache-dir", default=None)
    args = parser.parse_args(arguments)
    flags: list[str] = []
    if args.cache_dir is not None:
        flags += ["--cache-dir", args.cache_dir]
    if args.source_cache_dir is not None:
        flags += ["--source-cache-dir", args.source_cache_dir]
    try:
        settings = Settings.from_sources(flags, environ)
    except SettingsError as error:
        print(f"image-factory purge: {error}", file=sys.stderr)
        return 2
    fields = {"path": args.path} if args.path is not None else {}
    if args.prefix is not None:
        fields["prefix"] = args.prefix
    try:
        target = PurgeTarget.from_fields(fields)
        report = purge_directories(
            target, settings.cache_dir, settings.sources_directory, settings.mezzanine_directory
        )
    except BadRequest as error:
        print(f"image-factory purge: {error.message}", file=sys.stderr)
        return 2
    except CacheUnavailable as error:
        print(f"image-factory purge: the cache cannot be purged now: {error}", file=sys.stderr)
        return 1
    print(json.dumps(report.to_json()))
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


def _serve(settings: Settings, supervised: Supervised) -> None:
    # Deferred: serving loads aiohttp and libvips, which bad settings never
    # need and a supervisor process never uses.
    from .server.serve import serve  # noqa: PLC0415

    serve(settings, supervised.listeners, supervised.tokens)


def configure_logging(settings: Settings) -> None:
    from .logs import configure_logging as configure  # noqa: PLC0415

    configure(settings.log_format)


def _print_examples(settings: Settings) -> None:
    base = f"http://{settings.host}:{settings.port}"
    if not os.path.isdir(settings.originals):  # a remote origin: nothing to list
        print(f"Image Factory serving {settings.originals} on {base}", flush=True)
        print(f"  {base}/healthz", flush=True)
        return
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

_SUBCOMMANDS: dict[str, Callable[[Sequence[str], Mapping[str, str]], int]] = {
    "sign": sign_command,
    "poison": poison_command,
    "purge": purge_command,
    "loadtest": _loadtest,
    "srcset": _srcset,
}
