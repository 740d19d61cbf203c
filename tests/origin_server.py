"""A real HTTP origin for the tests: an aiohttp server on loopback.

It serves the files of a directory with an ``ETag`` and ``Last-Modified``
and answers conditional requests, records every request it gets (path and
headers), and has routes for what origins do wrong: redirects, bodies that
trickle, lie about their length or come gzipped, and error statuses.
"""

from __future__ import annotations

import asyncio
import gzip
import hashlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from email.utils import formatdate
from pathlib import Path

from aiohttp import web
from aiohttp.test_utils import TestServer
from aiohttp.typedefs import Handler
from multidict import CIMultiDictProxy


@dataclass
class OriginLog:
    """What the origin was asked, in order."""

    requests: list[tuple[str, CIMultiDictProxy[str]]] = field(default_factory=list)

    def paths(self) -> list[str]:
        return [path for path, _ in self.requests]

    def count(self, path: str) -> int:
        return self.paths().count(path)


@dataclass
class Origin:
    """A running origin: its base URL, its files and what it was asked."""

    server: TestServer
    root: Path
    log: OriginLog
    # Tunables a test flips while the origin runs.
    failing: bool = False  # answer 500 to every file request
    hold: asyncio.Event | None = None  # file requests wait for it
    away: str = ""  # where /away/<name> redirects to
    truncating: bool = False  # file bodies stop halfway, the connection closed

    @property
    def base(self) -> str:
        return str(self.server.make_url("/"))

    def url(self, path: str) -> str:
        return str(self.server.make_url(path))


def _etag(data: bytes) -> str:
    return '"' + hashlib.sha256(data).hexdigest()[:16] + '"'


def build_origin_app(origin: Origin) -> web.Application:
    app = web.Application()

    @web.middleware
    async def record(request: web.Request, handler: Handler) -> web.StreamResponse:
        origin.log.requests.append((request.path_qs, request.headers))
        return await handler(request)

    app.middlewares.append(record)

    async def files(request: web.Request) -> web.StreamResponse:
        if origin.hold is not None:
            await origin.hold.wait()
        if origin.failing:
            return web.Response(status=500, text="origin is down")
        path = origin.root / request.match_info["name"]
        if not path.is_file():
            return web.Response(status=404)
        data = path.read_bytes()
        etag = _etag(data)
        headers = {
            "ETag": etag,
            "Last-Modified": formatdate(path.stat().st_mtime, usegmt=True),
            "Content-Type": "application/octet-stream",
        }
        if origin.truncating:
            return await _cut_short(request, data)
        if request.headers.get("If-None-Match") == etag:
            return web.Response(status=304, headers=headers)
        return web.Response(body=data, headers=headers)

    async def odd_validators(request: web.Request) -> web.Response:
        """Validators that are not ASCII, as a broken or hostile origin sends."""
        data = (origin.root / request.match_info["name"]).read_bytes()
        headers = {"ETag": '"caf\u00e9"', "Last-Modified": "jeudi \u00e9t\u00e9"}
        return web.Response(body=data, headers=headers)

    async def no_validators(request: web.Request) -> web.Response:
        data = (origin.root / request.match_info["name"]).read_bytes()
        return web.Response(body=data)

    async def redirect(request: web.Request) -> web.Response:
        """/redirect/<n>/<name>: n more hops, then the file."""
        hops = int(request.match_info["hops"])
        name = request.match_info["name"]
        target = f"/redirect/{hops - 1}/{name}" if hops > 1 else f"/files/{name}"
        raise web.HTTPFound(target)

    async def redirect_away(request: web.Request) -> web.Response:
        """/away/<name>: wherever the test says (``Origin.away``)."""
        raise web.HTTPFound(origin.away)

    async def trickle(request: web.Request) -> web.StreamResponse:
        """A body that arrives a few bytes at a time, slower than any timeout."""
        data = (origin.root / request.match_info["name"]).read_bytes()
        response = web.StreamResponse(headers={"Content-Length": str(len(data))})
        await response.prepare(request)
        for start in range(0, len(data), 16):
            await response.write(data[start : start + 16])
            await asyncio.sleep(0.5)
        return response

    async def lying_length(request: web.Request) -> web.StreamResponse:
        """Content-Length says twice the bytes that come, then the connection ends."""
        data = (origin.root / request.match_info["name"]).read_bytes()
        return await _cut_short(request, data + data)

    async def gzipped(request: web.Request) -> web.Response:
        data = gzip.compress((origin.root / request.match_info["name"]).read_bytes())
        return web.Response(body=data, headers={"Content-Encoding": "gzip"})

    async def gzip_file(request: web.Request) -> web.Response:
        """A .gz file served as bytes: compressed, with no Content-Encoding."""
        data = gzip.compress((origin.root / request.match_info["name"]).read_bytes())
        return web.Response(body=data)

    async def status(request: web.Request) -> web.Response:
        return web.Response(status=int(request.match_info["code"]), text="no")

    async def huge_declared(request: web.Request) -> web.StreamResponse:
        """Declares a body larger than any limit; sends only its start."""
        response = web.StreamResponse(headers={"Content-Length": str(10**12)})
        await response.prepare(request)
        await response.write(b"\xff\xd8\xff" + b"\0" * 1024)
        return response

    async def endless(request: web.Request) -> web.StreamResponse:
        """A chunked JPEG-looking body that never ends."""
        response = web.StreamResponse()
        response.enable_chunked_encoding()
        await response.prepare(request)
        await response.write(b"\xff\xd8\xff\xe0" + b"\0" * 60000)
        while True:
            await response.write(b"\0" * 65536)

    app.router.add_get("/files/{name}", files)
    app.router.add_get("/bare/{name}", no_validators)
    app.router.add_get("/odd/{name}", odd_validators)
    app.router.add_get("/redirect/{hops}/{name}", redirect)
    app.router.add_get("/away/{name}", redirect_away)
    app.router.add_get("/trickle/{name}", trickle)
    app.router.add_get("/lying/{name}", lying_length)
    app.router.add_get("/gzip/{name}", gzipped)
    app.router.add_get("/gzfile/{name}", gzip_file)
    app.router.add_get("/status/{code}/{name}", status)
    app.router.add_get("/huge/{name}", huge_declared)
    app.router.add_get("/endless/{name}", endless)
    return app


async def _cut_short(request: web.Request, data: bytes) -> web.StreamResponse:
    """Declare all of ``data``, send half, and close the connection."""
    response = web.StreamResponse(headers={"Content-Length": str(len(data))})
    await response.prepare(request)
    await response.write(data[: len(data) // 2])
    assert request.transport is not None
    request.transport.close()
    return response


async def start_origin(root: Path, host: str = "127.0.0.1") -> AsyncIterator[Origin]:
    """Start an origin over ``root`` on loopback; stop it afterwards."""
    origin = Origin(server=None, root=root, log=OriginLog())  # type: ignore[arg-type]
    server = TestServer(build_origin_app(origin), host=host)
    origin.server = server
    await server.start_server()
    try:
        yield origin
    finally:
        await server.close()
