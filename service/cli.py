"""The ``image-factory`` command: validate settings, then serve."""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Sequence

from aiohttp import web

from .settings import Settings, SettingsError


def main(argv: Sequence[str] | None = None) -> int:
    try:
        settings = Settings.from_sources(sys.argv[1:] if argv is None else argv, os.environ)
    except SettingsError as error:
        print(f"image-factory: {error}", file=sys.stderr)
        return 2
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    # Deferred: importing the app loads libvips, which bad settings never need.
    from .app import create_app  # noqa: PLC0415

    if settings.print_examples:
        _print_examples(settings)
    web.run_app(
        create_app(settings),
        host=settings.host,
        port=settings.port,
        # A flood of connections queues rather than being refused (NOTES.md).
        backlog=1024,
        access_log=None,
        print=None if settings.print_examples else print,
    )
    return 0


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
    "w=200",
    "h=200&format=avif",
    "scalex=800&encoding=webp",
)
