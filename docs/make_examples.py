"""Regenerate the documentation's pictures: ``python docs/make_examples.py``.

Each picture is fetched from the real service (in-process, on loopback, with
a throwaway cache), and written as served, so the pictures are what a user
gets for those URLs: the README's examples (``EXAMPLES``) and those of
docs/operations.md (``OPERATIONS``).

The service serves a temporary copy of the bundled samples, to which
``DERIVED`` adds originals that are themselves the service's answers for
the samples: none of the samples has a uniform border for ``trim`` to
remove, so one is padded first. Every picture is thus made from the
samples alone, the same bytes on every run.
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

# Originals made from the samples before the examples (file name in the
# served directory, URL path and query): chelsea in a uniform grey band
# above and below, lossless, for trim.
DERIVED = [
    ("chelsea-padded.png", "/picture/chelsea.png?w=300&h=300&fit=pad&bg=2b2b2b&format=png"),
]

# docs/operations.md: one picture or more per operation.
OPERATIONS = [
    ("crop-250x250-w200.jpg", "/picture/chelsea.png?crop=110,50,250,250&w=200&format=jpeg"),
    ("rotate-90-w200.jpg", "/picture/chelsea.png?rotate=90&w=200&format=jpeg"),
    ("flip-h-w300.jpg", "/picture/chelsea.png?flip=h&w=300&format=jpeg"),
    ("cover-150x200.jpg", "/picture/chelsea.png?w=150&h=200&fit=cover&format=jpeg"),
    (
        "cover-150x200-fp.jpg",
        "/picture/chelsea.png?w=150&h=200&fit=cover&fp=0.7,0.4&format=jpeg",
    ),
    ("padded-300x300.jpg", "/picture/chelsea-padded.png?format=jpeg"),
    ("trim-10.jpg", "/picture/chelsea-padded.png?trim=10&format=jpeg"),
    ("blur-3-w300.jpg", "/picture/chelsea.png?w=300&blur=3&format=jpeg"),
    ("sharpen-1.5-w300.jpg", "/picture/chelsea.png?w=300&sharpen=1.5&format=jpeg"),
    (
        "crop-rotate-90-w200.jpg",
        "/picture/chelsea.png?crop=110,50,250,250&rotate=90&w=200&format=jpeg",
    ),
]


async def fetch(client: TestClient, url: str) -> bytes:
    response = await client.get(url)
    response.raise_for_status()
    return await response.read()


def copy_samples(directory: Path) -> None:
    """The bundled samples' pictures, copied into ``directory``."""
    for sample in Path(bundled_samples()).iterdir():
        if sample.suffix in (".jpg", ".png"):
            shutil.copyfile(sample, directory / sample.name)


async def main(originals: Path) -> None:
    with tempfile.TemporaryDirectory() as cache:
        # No mezzanine: with it, a picture would depend on which of the same
        # original's were asked before it (each from the original directly).
        settings = Settings(
            originals=str(originals), cache_dir=cache, concurrency=2, mezzanine=False
        )
        async with TestClient(TestServer(create_app(settings))) as client:
            for name, url in DERIVED:
                (originals / name).write_bytes(await fetch(client, url))
                print(f"(original) {name}: {url}")
            for name, url in EXAMPLES + OPERATIONS:
                (HERE / name).write_bytes(await fetch(client, url))
                print(f"{name}: {url}")


if __name__ == "__main__":
    HERE.mkdir(exist_ok=True)
    # Only this script's pictures: responsive.html is make_responsive_page's.
    for stale in HERE.glob("*.jpg"):
        stale.unlink()
    with tempfile.TemporaryDirectory() as served:
        copy_samples(Path(served))
        asyncio.run(main(Path(served)))
