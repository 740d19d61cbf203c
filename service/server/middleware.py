"""Request ids and the mapping of errors to JSON responses."""

from __future__ import annotations

import logging
import random
import re
import time

from aiohttp import web
from aiohttp.typedefs import Handler, Middleware
from prometheus_client import Counter

from ..errors import Overloaded, ServiceError, Unauthorized
from ..metrics import Metrics
from .state import REQUEST_ID

log = logging.getLogger(__name__)

SERVED_METHODS = ("GET", "HEAD")
# Ids as tracing systems and proxies make them (UUIDs, braced GUIDs, "a/b"
# paths, base64) are echoed; markup and quotes, which would reach log viewers
# and text logs unescaped, and runaway lengths are replaced by our own.
_SAFE_REQUEST_ID = re.compile(r"[^\x00-\x1f\x7f-\U0010ffff<>\"'`\\]{1,200}")


def error_response(status: int, message: str) -> web.Response:
    response = web.json_response({"status": status, "error": message}, status=status)
    if status >= 500:
        response.headers["Cache-Control"] = "no-store"
    return response


def new_request_id() -> str:
    """32 random hex digits, the shape of a uuid4's hex. An id names a
    request in logs and traces and guards nothing, so it comes from the
    process's PRNG: ``uuid4`` reads the kernel's random source (a syscall:
    6-8 us against 1-2 us, timed on a busy 2-core machine)."""
    return f"{random.getrandbits(128):032x}"


@web.middleware
async def request_ids(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Echo a well-formed X-Request-Id (printable ASCII without markup or
    quotes, up to 200 characters), or make one; every response has it."""
    sent = request.headers.get("X-Request-Id", "")
    request_id = sent if _SAFE_REQUEST_ID.fullmatch(sent) else new_request_id()
    request[REQUEST_ID] = request_id
    try:
        response = await handler(request)
    except web.HTTPException as error:
        error.headers["X-Request-Id"] = request_id
        raise
    response.headers["X-Request-Id"] = request_id
    return response


def count_requests(metrics: Metrics) -> Middleware:
    """Count every answer by status, and time it (to the response headers)."""
    by_status: dict[int, Counter] = {}  # each status's child: labels() takes a lock

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        started = time.perf_counter()
        status = 500
        try:
            response = await handler(request)
            status = response.status
            return response
        except web.HTTPException as error:
            status = error.status
            raise
        finally:
            counter = by_status.get(status)
            if counter is None:
                counter = by_status[status] = metrics.requests.labels(status=str(status))
            counter.inc()
            metrics.request_duration.observe(time.perf_counter() - started)

    return middleware


@web.middleware
async def json_errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Our errors and aiohttp's (404 route, 405) become one-line JSON bodies."""
    try:
        return await handler(request)
    except ServiceError as error:
        response = error_response(error.status, error.message)
        if isinstance(error, Overloaded):
            response.headers["Retry-After"] = str(error.retry_after_seconds)
        if isinstance(error, Unauthorized):
            response.headers["WWW-Authenticate"] = error.challenge
        return response
    except web.HTTPException as error:
        if error.status < 400:
            raise
        if error.status == 404 and request.method not in SERVED_METHODS:
            # No route matched (CONNECT's target is a host:port, OPTIONS may
            # be "*"): still a method we serve nowhere.
            response = error_response(405, "method not allowed")
            response.headers["Allow"] = ", ".join(SERVED_METHODS)
            return response
        response = error_response(error.status, error.reason.lower())
        if "Allow" in error.headers:
            response.headers["Allow"] = error.headers["Allow"]
        return response
    except Exception:
        # A bug: log the traceback for us, never show it to the client.
        log.exception("unhandled error for %s %s", request.method, request.path)
        return error_response(500, "internal error")
