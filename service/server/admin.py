"""``POST /admin/purge``: the purge of service/purge.py, over HTTP.

There only with ``--admin-token``: without it every method of the path is
a 404, as for any path that does not exist. The token is a bearer token
(``Authorization: Bearer <token>``): none is a 401 that says so
(``WWW-Authenticate: Bearer``), another token a 403. Tokens are compared
as SHA-256 digests in constant time, so neither their bytes nor their
length show in the time of an answer.
"""

from __future__ import annotations

import hashlib
import hmac

from aiohttp import web

from ..cache import CacheUnavailable
from ..errors import Forbidden, NotFound, Overloaded, Unauthorized
from ..purge import PurgeTarget, purge
from . import state

# Far more than any purge needs (a ?url= source's name may be 8 KB long).
_MAX_BODY_BYTES = 64 * 1024


async def purge_handler(request: web.Request) -> web.Response:
    app = request.app
    _authorize(request, state.settings(app).admin_token)
    target = PurgeTarget.from_json(await _body(request))
    renders = state.renders(app)
    sources = state.origins(app).sources
    try:
        report = await renders.to_thread(
            purge,
            target,
            renders.cache,
            None if sources is None else sources.cache,
            state.purge_stamp(app),
            None if renders.mezzanines is None else renders.mezzanines.cache,
        )
    except CacheUnavailable as error:
        raise Overloaded(f"the cache cannot be purged now: {error}") from None
    return web.json_response(report.to_json(), headers={"Cache-Control": "no-store"})


async def _body(request: web.Request) -> bytes:
    """The whole body, or 413 past ``_MAX_BODY_BYTES`` (``read(n)`` gives
    what has arrived, up to n: a body in several packets takes several)."""
    body = bytearray()
    while len(body) <= _MAX_BODY_BYTES:
        chunk = await request.content.read(_MAX_BODY_BYTES + 1 - len(body))
        if not chunk:
            return bytes(body)
        body += chunk
    raise web.HTTPRequestEntityTooLarge(
        max_size=_MAX_BODY_BYTES, actual_size=request.content_length or len(body)
    )


async def no_such_endpoint(request: web.Request) -> web.Response:
    """The purge path without ``--admin-token``: a 404 for every method."""
    raise NotFound("no such endpoint")


def _authorize(request: web.Request, token: str | None) -> None:
    if token is None:
        raise NotFound("no such endpoint")
    scheme, _, given = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not given.strip():
        raise Unauthorized("this endpoint needs Authorization: Bearer <the --admin-token>")
    expected = hashlib.sha256(token.encode()).digest()
    if not hmac.compare_digest(
        hashlib.sha256(given.strip().encode("utf-8", "surrogatepass")).digest(), expected
    ):
        raise Forbidden("the admin token is wrong")
