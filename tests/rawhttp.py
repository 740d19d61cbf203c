"""Send a request line exactly as written (no client-side normalisation)."""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass


@dataclass
class RawResponse:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> dict[str, object]:
        parsed: dict[str, object] = json.loads(self.body)
        return parsed


async def raw_request(
    host: str, port: int, target: str, method: str = "GET", headers: dict[str, str] | None = None
) -> RawResponse:
    lines = [f"{method} {target} HTTP/1.1", f"Host: {host}:{port}", "Connection: close"]
    lines += [f"{name}: {value}" for name, value in (headers or {}).items()]
    return await raw_exchange(host, port, ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1"))


async def raw_exchange(host: str, port: int, request: bytes) -> RawResponse:
    """Send ``request``, byte for byte, and read the answer to the end."""
    reader, writer = await asyncio.open_connection(host, port)
    writer.write(request)
    await writer.drain()
    data = await reader.read()
    writer.close()
    await writer.wait_closed()
    head, _, body = data.partition(b"\r\n\r\n")
    status_line, *header_lines = head.decode("latin-1").split("\r\n")
    parsed = {}
    for line in header_lines:
        name, _, value = line.partition(":")
        parsed[name.strip().lower()] = value.strip()
    return RawResponse(int(status_line.split()[1]), parsed, body)
