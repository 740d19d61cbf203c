"""Regenerate the README's before/after pictures: ``python docs/make_examples.py``.

Each example is fetched from the real service (in-process, on loopback, with
a throwaway cache), and written as served, so the pictures are what a user
gets for those URLs.
"""

from __future__ import annotations

import asyncio
import shutil
import tempfile
from pathlib import Path

from aiohttp.test_utils import TestClient, TestServer

from service.server.app import create_app
from service.settings import Settings, bundled_samples

HERE = Path(__file__).parent / "examples"

# (file name to write, URL path and query)
EXAMPLES = [
    ("original-chelsea.jpg", "/picture/chelsea.png?w=300&format=jpeg"),
    ("contain-200x200.jpg", "/picture/chelsea.png?w=200&h=200&format=jpeg"),
    ("cover-200x200.jpg", "/picture/chelsea.png?w=200&h=200&fit=cover&format=jpeg"),
    (
        "cover-200x200-west.jpg",
        "/picture/chelsea.png?w=200&h=200&fit=cover&gravity=west&format=jpeg",
    ),
    (
        "cover-200x200-attention.jpg",
        "/picture/chelsea.png?w=200&h=200&fit=cover&gravity=attention&format=jpeg",
    ),
    ("fill-200x200.jpg", "/picture/chelsea.png?w=200&h=200&fit=fill&format=jpeg"),
    ("pad-200x200-bg.jpg", "/picture/chelsea.png?w=200&h=200&fit=pad&bg=2b2b2b&format=jpeg"),
    ("rocket-w120-dpr2.webp", "/picture/rocket.jpg?w=120&dpr=2&format=webp"),
    ("camera-h150-q30.jpg", "/picture/camera.png?h=150&format=jpeg&q=30"),
]


async def main() -> None:
    with tempfile.TemporaryDirectory() as cache:
        settings = Settings(originals=bundled_samples(), cache_dir=cache, concurrency=2)
        async with TestClient(TestServer(create_app(settings))) as client:
            for name, url in EXAMPLES:
                response = await client.get(url)
                response.raise_for_status()
                (HERE / name).write_bytes(await response.read())
                print(f"{name}: {url} -> {response.content_type}")


if __name__ == "__main__":
    HERE.mkdir(exist_ok=True)
    shutil.rmtree(HERE)
    HERE.mkdir()
    asyncio.run(main())
