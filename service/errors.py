"""Errors that carry their HTTP status and a message that is safe to show.

    ServiceError (500, never raised on purpose: a bug)
    ├── BadRequest (400)            a parameter is malformed, unknown or repeated
    ├── Unauthorized (401)          an admin request without its bearer token
    ├── Forbidden (403)             a signature, or an admin token, missing or wrong
    ├── NotFound (404)              no such original, or a path that leaves the root
    ├── UnprocessableImage (422)    the original cannot be decoded or is refused
    │   └── SourceTooLarge (422)    over the pixel, byte or frame limits
    ├── BadGateway (502)            an origin failed: another status, DNS, connection
    ├── Overloaded (503)            the render queue is full
    │   └── OriginalReplaced (503)  the original changed mid-request: retry
    ├── OriginTimeout (504)         an origin did not answer, or sent too slowly
    └── RenderTimeout (504)         a render ran past its deadline

The message is one line for the client; detail for operators goes to the log.
"""

from __future__ import annotations


class ServiceError(Exception):
    """Base of every error the service answers with a status of its own."""

    status: int = 500

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class BadRequest(ServiceError):
    status = 400


class NotFound(ServiceError):
    status = 404

    def __init__(self, message: str = "no such image") -> None:
        super().__init__(message)


class Unauthorized(ServiceError):
    """Answered with ``WWW-Authenticate``: the credentials it asks for."""

    status = 401
    challenge = 'Bearer realm="image-factory admin"'


class UnprocessableImage(ServiceError):
    status = 422


class SourceTooLarge(UnprocessableImage):
    pass


class Forbidden(ServiceError):
    status = 403


class Overloaded(ServiceError):
    status = 503
    retry_after_seconds = 1


class OriginalReplaced(Overloaded):
    """The original changed between keying the request and opening it."""


class BadGateway(ServiceError):
    status = 502


class OriginTimeout(ServiceError):
    status = 504


class RenderTimeout(ServiceError):
    status = 504
