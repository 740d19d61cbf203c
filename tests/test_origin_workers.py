"""Remote originals in the real service process, with several workers."""

from __future__ import annotations

import asyncio
import subprocess
from pathlib import Path

import aiohttp

from .origin_server import Origin
from .serving import running_service
from .waiting import eventually_async

PHOTO = "rocket.jpg"


async def test_workers_share_one_download_and_log_the_origin(
    tmp_path: Path, origin: Origin
) -> None:
    """Concurrent requests spread over two workers make one origin request,
    and each access-log line names the origin."""
    origin.hold = asyncio.Event()
    arguments = ["--workers", "2", "--originals", origin.url("/files/")]
    arguments += ["--cache-dir", str(tmp_path / "cache")]
    with running_service(*arguments, stderr=subprocess.PIPE) as service:
        # Separate connections, so the kernel spreads them over both workers.
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(force_close=True)) as http:

            async def get(width: int) -> int:
                async with http.get(f"{service.base}/picture/{PHOTO}?w={width}") as response:
                    await response.read()
                    return response.status

            requests = [asyncio.ensure_future(get(40 + i)) for i in range(16)]
            await eventually_async(
                lambda: bool(origin.log.requests), 20, message="the origin was never asked"
            )
            origin.hold.set()
            statuses = await asyncio.gather(*requests)
        assert statuses == [200] * 16
        assert origin.log.count(f"/files/{PHOTO}") == 1
        service.process.terminate()
        _, stderr = service.process.communicate(timeout=60)
    access_lines = [line for line in stderr.decode().splitlines() if f"/picture/{PHOTO}" in line]
    assert len(access_lines) == 16
    assert all("origin=default" in line for line in access_lines)
