"""A response that sends an already-open file with sendfile (zero-copy).

aiohttp's ``FileResponse`` takes a path and opens it itself, which races with
eviction by another process, and it sets its own ETag from the file's mtime;
ours is the cache key's. This class sends the descriptor we already hold.
"""

from __future__ import annotations

import asyncio
import contextlib
import os

from aiohttp import web
from aiohttp.abc import AbstractStreamWriter
from aiohttp.helpers import must_be_empty_body
from multidict import CIMultiDict

_FALLBACK_CHUNK = 256 * 1024
# Up to this size the body is read (one pread, from the page cache) and sent
# with the headers in one write; above it, the headers go first, then the
# file by sendfile. On loopback each send is a costly syscall (it wakes the
# receiver): one instead of two made a 14 KB hit cheaper than sendfile's
# zero copy saves. sendfile blocks in the kernel for pages not in memory
# just as pread does, so neither is worse for the event loop.
INLINE_LIMIT = 64 * 1024


class DescriptorResponse(web.StreamResponse):
    """Sends ``size`` bytes of ``descriptor``; closes the descriptor after."""

    def __init__(
        self, descriptor: int, size: int, headers: CIMultiDict[str], *, status: int = 200
    ) -> None:
        super().__init__(status=status, headers=headers)
        self._file = os.fdopen(descriptor, "rb")
        self.content_length = size
        # A small body leaves with the headers (aiohttp's Response does the same).
        self._send_headers_immediately = size > INLINE_LIMIT
        # Body bytes that went out through sendfile, which aiohttp's own
        # ``body_length`` does not see (it counts what passes its writer).
        self.sent_bytes = 0

    async def prepare(self, request: web.BaseRequest) -> AbstractStreamWriter | None:
        try:
            writer = await super().prepare(request)
            count = self.content_length or 0
            if count and not must_be_empty_body(request.method, self.status):
                assert writer is not None
                await self._send(request, writer, count)
            return writer
        finally:
            self._file.close()

    async def _send(
        self, request: web.BaseRequest, writer: AbstractStreamWriter, count: int
    ) -> None:
        if count <= INLINE_LIMIT:
            body = os.pread(self._file.fileno(), count, 0)
            if len(body) != count:  # never a short body under our Content-Length
                raise ConnectionResetError("the cached file is shorter than recorded")
            await super().write_eof(body)
            self.sent_bytes = count
            return
        loop = asyncio.get_running_loop()
        transport = request.transport
        if transport is None:
            raise ConnectionResetError("connection lost")
        try:
            self.sent_bytes = await loop.sendfile(transport, self._file, 0, count)
        except NotImplementedError:  # e.g. TLS transports: copy in chunks
            offset = 0
            while offset < count:
                chunk = await loop.run_in_executor(
                    None,
                    os.pread,
                    self._file.fileno(),
                    min(_FALLBACK_CHUNK, count - offset),
                    offset,
                )
                if not chunk:
                    break
                await writer.write(chunk)
                offset += len(chunk)
            self.sent_bytes = offset
        await super().write_eof()

    async def write_eof(self, data: bytes = b"") -> None:
        # The body went out through sendfile; nothing more to write.
        with contextlib.suppress(ConnectionResetError):
            await super().write_eof(data)
