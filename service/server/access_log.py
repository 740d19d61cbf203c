"""One access-log line per request, written after the response went out."""

from __future__ import annotations

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
