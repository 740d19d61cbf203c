"""--fallback-image: an image instead of a 404 or 422, through the real server."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from .conftest import CORPUS, SAMPLES, Client, MakeClient, decode
from .serving import ROOT

FALLBACK = SAMPLES / "chelsea.png"


@pytest.fixture
async def fallback_client(make_client: MakeClient, originals: Path) -> MakeClient:
    async def make(**overrides: object) -> Client:
        return await make_client(fallback_image=str(FALLBACK), **overrides)

    return make


async def test_a_missing_original_is_answered_with_the_fallback(
    fallback_client: MakeClient,
) -> None:
    """A 404 keeps its status, with the fallback at the requested size and format."""
    client = await fallback_client()
    response = await client.get("/picture/missing.jpg?w=80&format=webp")
    assert response.status == 404
    assert response.headers["X-Fallback"] == "1"
    assert response.headers["Content-Type"] == "image/webp"
    assert response.headers["Cache-Control"] == (
        "public, max-age=60, stale-while-revalidate=60, stale-if-error=604800"
    )
    assert decode(await response.read()).width == 80


async def test_a_broken_original_is_answered_with_the_fallback(
    fallback_client: MakeClient,
) -> None:
    """A 422 (an original that fails in its pixels) keeps its status, with the fallback."""
    client = await fallback_client()
    response = await client.get("/picture/heic_hevc.heif?w=40&format=png")
    assert response.status == 422
    assert response.headers["X-Fallback"] == "1"
    assert decode(await response.read()).size[0] == 40


async def test_the_fallback_status_may_be_200(fallback_client: MakeClient) -> None:
    """--fallback-status 200 answers the fallback with a 200."""
    client = await fallback_client(fallback_status=200)
    response = await client.get("/picture/missing.jpg?w=50")
    assert response.status == 200
    assert response.headers["X-Fallback"] == "1"


async def test_the_fallback_is_cached_under_its_own_key(
    fallback_client: MakeClient, originals: Path
) -> None:
    """The fallback render is a cache hit the second time, and a real image
    that appears later has another ETag: a client holding the fallback's is
    not answered 304."""
    client = await fallback_client()
    first = await client.get("/picture/later.jpg?w=60&format=png")
    second = await client.get("/picture/later.jpg?w=60&format=png")
    assert second.headers["X-Cache"] == "HIT"
    assert second.headers["ETag"] == first.headers["ETag"]
    shutil.copy(SAMPLES / "rocket.jpg", originals / "later.jpg")
    real = await client.get(
        "/picture/later.jpg?w=60&format=png", headers={"If-None-Match": first.headers["ETag"]}
    )
    assert real.status == 200
    assert "X-Fallback" not in real.headers
    assert real.headers["ETag"] != first.headers["ETag"]


async def test_one_fallback_render_serves_every_missing_path(fallback_client: MakeClient) -> None:
    """Missing originals asked at one size and format share one fallback entry."""
    client = await fallback_client()
    one = await client.get("/picture/a.jpg?w=70&format=png")
    other = await client.get("/picture/b/c.jpg?w=70&format=png")
    assert other.headers["ETag"] == one.headers["ETag"]
    assert other.headers["X-Cache"] == "HIT"


async def test_operations_meant_for_the_original_do_not_apply_to_the_fallback(
    fallback_client: MakeClient,
) -> None:
    """A crop (of the missing original) is not applied to the fallback; its size is."""
    client = await fallback_client()
    response = await client.get("/picture/missing.jpg?crop=0,0,10,10&w=90&format=png")
    assert response.status == 404
    assert decode(await response.read()).width == 90


@pytest.mark.parametrize(
    ("target", "status"),
    [("/picture/missing.jpg?w=abc", 400), ("/picture/missing.jpg?s=bad", 403)],
)
async def test_400_and_403_keep_their_json_errors(
    fallback_client: MakeClient, target: str, status: int
) -> None:
    """Only 404 and 422 get the fallback: a bad parameter or signature stays a JSON error."""
    client = await fallback_client(signing_keys=("secret",) if status == 403 else ())
    response = await client.get(target)
    assert response.status == status
    assert response.headers["Content-Type"].startswith("application/json")
    assert "X-Fallback" not in response.headers


@pytest.mark.parametrize(
    "bad",
    [SAMPLES / "SOURCES.md", CORPUS / "heic_hevc.heif", Path("/no/such/file.png")],
)
def test_a_fallback_image_that_does_not_render_is_refused_at_start(bad: Path) -> None:
    """Not an image, one that fails in its pixels, or none at all: exit 2 with one line."""
    finished = subprocess.run(
        [sys.executable, "-m", "service", "--port", "0", "--fallback-image", str(bad)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert finished.returncode == 2
    lines = finished.stderr.strip().splitlines()
    assert len(lines) == 1, finished.stderr
    assert "--fallback-image" in lines[0]
