"""Regenerate docs/examples/responsive.html: ``python docs/make_responsive_page.py``.

The page a template would write: for each bundled sample, ``/srcset``'s
``html`` as is, inside a plain layout. No JavaScript: the browser picks a
candidate for its viewport and DPR, loads it lazily and has its size
reserved. Its ``<base>`` points at ``make run``'s service, so the page shows
its images when opened from disk while ``make run`` is going (a page served
by the image host itself would need no ``<base>``).
"""

from __future__ import annotations

import asyncio
import html
import tempfile
from pathlib import Path

from aiohttp.test_utils import TestClient, TestServer

from service.server.app import create_app
from service.settings import Settings, bundled_samples

PAGE = Path(__file__).parent / "examples" / "responsive.html"
SERVICE = "http://127.0.0.1:8080/"
# (sample, its srcset's query: the image parameters, sizes and alt)
IMAGES = [
    ("retina.jpg", "format=auto&sizes=(min-width: 900px) 50vw, 100vw&alt=A retina, photographed"),
    (
        "chelsea.png",
        "format=auto&w=4&h=3&fit=cover&sizes=(min-width: 900px) 25vw, 50vw&alt=Chelsea",
    ),
    ("rocket.jpg", "format=auto&sizes=(min-width: 900px) 25vw, 50vw&alt=A rocket launch"),
]


async def main() -> None:
    with tempfile.TemporaryDirectory() as cache:
        settings = Settings(originals=bundled_samples(), cache_dir=cache)
        async with TestClient(TestServer(create_app(settings))) as client:
            figures = []
            for name, query in IMAGES:
                response = await client.get(f"/srcset/{name}", params=_pairs(query))
                response.raise_for_status()
                answer = await response.json()
                caption = html.escape(f"/srcset/{name}?{query}")
                figures.append(
                    f"<figure>\n{answer['html']}\n<figcaption>{caption}</figcaption>\n</figure>"
                )
    PAGE.write_text(_TEMPLATE.format(base=SERVICE, figures="\n".join(figures)))
    print(f"wrote {PAGE}")


def _pairs(query: str) -> list[tuple[str, str]]:
    return [tuple(item.split("=", 1)) for item in query.split("&")]  # type: ignore[misc]


_TEMPLATE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Image Factory: a responsive page</title>
<base href="{base}">
<style>
body {{ font-family: sans-serif; max-width: 1200px; margin: 2em auto; padding: 0 1em; }}
figure {{ margin: 0 0 2em; }}
img {{ max-width: 100%; height: auto; }}
figcaption {{ font-size: small; color: #555; word-break: break-all; }}
</style>
</head>
<body>
<h1>A responsive page</h1>
<p>Each image below is the <code>html</code> of <code>/srcset</code>, written out as is.</p>
{figures}
</body>
</html>
"""

if __name__ == "__main__":
    asyncio.run(main())
