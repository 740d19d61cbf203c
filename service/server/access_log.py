"""One access-log line per request, written after the response went out.

The lines of one turn of the event loop leave in one write: a write per
line, each a syscall, was about a twentieth of a cache hit's time in one
process (py-spy, c=16). Nothing is held longer than that turn (it is no
timed buffer, like nginx's ``access_log ... buffer= flush=``), and what is
pending when the loop stops is written as the process ends.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import TextIO

from aiohttp import web
from aiohttp.abc import AbstractAccessLogger

from .responses import DescriptorResponse
from .state import CACHE_STATUS, ORIGIN, RENDER_SECONDS, REQUEST_ID

ACCESS_LOGGER = "image_factory.access"


class AccessLogger(AbstractAccessLogger):
    """Written after the response went out, so bytes and duration are true."""

    def log(self, request: web.BaseRequest, response: web.StreamResponse, time: float) -> None:
        fields: dict[str, object] = {
            "request_id": request.get(REQUEST_ID, ""),
            "method": request.method,
            "path": request.path_qs,
            "status": response.status,
            # Body bytes: sendfile bypasses aiohttp's count, which also
            # includes the headers.
            "bytes": response.sent_bytes
            if isinstance(response, DescriptorResponse)
            else (response.content_length or 0),
            "duration_ms": round(time * 1000, 2),
            "cache": request.get(CACHE_STATUS, "-"),
            # The remote origin read from (its name, or "url"); "-" for local files.
            "origin": request.get(ORIGIN, "-"),
            "render_ms": round(request[RENDER_SECONDS] * 1000, 2)
            if RENDER_SECONDS in request
            else None,
            "remote": request.remote,
        }
        if self.log_format == "json":
            self.logger.info("access", extra={"fields": fields})
            return
        render = fields["render_ms"]
        self.logger.info(
            '%s "%s %s" %s %sB %.1fms cache=%s render=%s origin=%s id=%s',
            fields["remote"],
            fields["method"],
            fields["path"],
            fields["status"],
            fields["bytes"],
            fields["duration_ms"],
            fields["cache"],
            "-" if render is None else f"{render}ms",
            fields["origin"],
            fields["request_id"],
        )


class LoopBatchedStream:
    """A text stream for one logging handler: what is written during a turn
    of the event loop reaches ``target`` in one write at the end of it (at
    once when no loop runs)."""

    def __init__(self, target: TextIO) -> None:
        self._target = target
        self._pending: list[str] = []

    def write(self, text: str) -> int:
        self._pending.append(text)
        if len(self._pending) == 1:
            try:
                asyncio.get_running_loop().call_soon(self.drain)
            except RuntimeError:  # no loop: from a thread, or at exit
                self.drain()
        return len(text)

    def flush(self) -> None:
        """The handler's flush after each record: deferred to ``drain``."""

    def drain(self) -> None:
        """Write what is pending."""
        if not self._pending:
            return
        text = "".join(self._pending)
        self._pending.clear()
        with contextlib.suppress(OSError, ValueError):  # a closed stderr
            self._target.write(text)
            self._target.flush()


def batch_access_log(logger: logging.Logger, target: TextIO) -> LoopBatchedStream | None:
    """Give ``logger`` a handler of its own, with the root handler's format,
    that writes to ``target`` through a ``LoopBatchedStream``; None (and
    nothing changed) when the root logger has no handler to copy."""
    root = logging.getLogger()
    if not root.handlers:
        return None
    stream = LoopBatchedStream(target)
    handler = logging.StreamHandler(stream)
    handler.setFormatter(root.handlers[0].formatter)
    logger.handlers[:] = [handler]
    logger.propagate = False
    return stream
