"""Answers for requests that aiohttp refuses before any handler runs.

A malformed request line, an unknown method, a header over 8 KiB, a
smuggling attempt (``Content-Length`` with ``Transfer-Encoding``): aiohttp's
parser answers those itself, in plain text that quotes the request back,
without an ``X-Request-Id``, before any middleware sees them. The contract
wants every error as one-line JSON with a request id, and ``405`` for any
method but GET and HEAD; this gives the parser's answers that shape.

aiohttp has no hook for them, so ``install`` replaces
``RequestHandler.handle_error`` (keeping its refusal to answer twice on a
connection that already sent a response); tests/test_errors.py fails if an
aiohttp upgrade routes around it. A refused request is the client's fault:
it is logged at debug level (aiohttp logged each with a traceback at error
level, a megabyte a second under a flood of them), a 5xx still with its
traceback.
"""

from __future__ import annotations

import uuid

from aiohttp import web, web_protocol
from aiohttp.http_exceptions import (
    BadHttpMethod,
    BadStatusLine,
    InvalidHeader,
    InvalidURLError,
    LineTooLong,
)

from ..middleware import SERVED_METHODS, error_response
from ..state import REQUEST_ID

ALLOWED_METHODS = ", ".join(SERVED_METHODS)

# Most specific first: BadHttpMethod is a BadStatusLine.
_REASONS: tuple[tuple[type[Exception], str], ...] = (
    (LineTooLong, "the request line or a header is too long"),
    (InvalidHeader, "a request header is malformed"),
    (InvalidURLError, "the request target is not a valid URL"),
    (BadStatusLine, "the request line is not valid HTTP/1.1"),
)


def install() -> None:
    """Make the parser's answers JSON (idempotent; once per process)."""
    web_protocol.RequestHandler.handle_error = _handle_error  # type: ignore[method-assign]


def _handle_error(
    self: web_protocol.RequestHandler,
    request: web.BaseRequest,
    status: int = 500,
    exc: BaseException | None = None,
    message: str | None = None,
) -> web.StreamResponse:
    if status >= 500:
        self.log_exception("Error handling request from %s", request.remote, exc_info=exc)
    else:
        self.logger.debug("refused a request from %s: %r", request.remote, exc)
    if request.writer.output_size > 0:
        # As aiohttp's own: part of a response went out, the stream is broken.
        raise ConnectionError("a response was already being sent")
    response = answer_for(status, exc)
    # The parser's refusals never reach our middleware; a 5xx after it may.
    response.headers["X-Request-Id"] = request.get(REQUEST_ID) or uuid.uuid4().hex
    response.force_close()  # as aiohttp's own: the stream may be out of step
    return response


def answer_for(status: int, exc: BaseException | None) -> web.Response:
    """The JSON answer for a request the parser refused with ``status``."""
    if isinstance(exc, BadHttpMethod) and "HTTPS" in exc.message:
        # aiohttp's name for a TLS handshake sent to this plain HTTP port
        response = error_response(400, "this port speaks plain HTTP, not HTTPS")
    elif isinstance(exc, BadHttpMethod):
        response = error_response(405, f"only {ALLOWED_METHODS} are served")
        response.headers["Allow"] = ALLOWED_METHODS
    elif status >= 500:
        response = error_response(status, "internal error")
    else:
        reason = next((text for kind, text in _REASONS if isinstance(exc, kind)), None)
        response = error_response(status, reason or "the request is not valid HTTP")
    return response
