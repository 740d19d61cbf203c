"""``image-factory srcset PATH``: what ``GET /srcset/PATH`` answers, from
the command line, for a page's build step or a template.

It runs the service's own application in this process, on a loopback port
of its own for the one request, with the same settings (flags and
``IMAGE_FACTORY_*`` variables) as serving: the answer is the endpoint's,
never a second implementation of it, and its URLs are signed with the
same key.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections.abc import Mapping, Sequence
from urllib.parse import quote

import aiohttp
from aiohttp import web

from .settings import Settings, SettingsError
from .signing import sign_url


def srcset_command(arguments: Sequence[str], environ: Mapping[str, str]) -> int:
    parser = argparse.ArgumentParser(
        prog="image-factory srcset",
        description="Print, as JSON, the srcset, sizes, placeholder and <img> of an original, "
        "as GET /srcset/PATH answers them. Any other flag is a service flag (--originals, "
        "--widths, --signing-key, ...), or comes from IMAGE_FACTORY_* variables.",
    )
    parser.add_argument("path", help="the original as /picture names it, e.g. photos/cat.jpg")
    parser.add_argument(
        "--query",
        default="",
        help="image parameters, sizes and alt, e.g. 'format=webp&sizes=50vw&alt=A cat'",
    )
    args, service_flags = parser.parse_known_args(arguments)
    try:
        settings = Settings.from_sources(service_flags, environ)
    except SettingsError as error:
        print(f"image-factory srcset: {error}", file=sys.stderr)
        return 2
    target = "/srcset/" + quote(args.path.lstrip("/"))
    if args.query:
        target += "?" + quote(args.query, safe="=&,:;()/")
    if settings.signing_keys:
        target = sign_url(target, settings.signing_keys[0])
    status, answer = asyncio.run(_ask(settings, target))
    if status != 200:
        print(f"image-factory srcset: {status}: {answer.get('error', answer)}", file=sys.stderr)
        return 1
    print(json.dumps(answer, indent=2))
    return 0


async def _ask(settings: Settings, target: str) -> tuple[int, dict[str, object]]:
    # Deferred: the rest of the CLI never loads aiohttp's server or libvips.
    from .server.app import create_app  # noqa: PLC0415

    runner = web.AppRunner(create_app(settings), access_log=None)
    await runner.setup()
    try:
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = runner.addresses[0][1]
        async with (
            aiohttp.ClientSession() as session,
            session.get(f"http://127.0.0.1:{port}{target}") as response,
        ):
            answer: dict[str, object] = await response.json()
            return response.status, answer
    finally:
        await runner.cleanup()
