"""Responses: their headers (caching, negotiation, request ids, health) and
what a plain request gets by default (size, metadata, colour, flattening)."""

from __future__ import annotations

import io
import re

import pytest
from PIL import Image, ImageChops, ImageCms, ImageStat

from .conftest import SAMPLES, Client, decode


async def test_second_request_is_a_cache_hit_with_the_same_bytes(client: Client) -> None:
    first = await client.get("/picture/retina.jpg?scalex=300&encoding=webp")
    second = await client.get("/picture/retina.jpg?w=300&format=webp")
    assert first.headers["X-Cache"] == "MISS"
    assert second.headers["X-Cache"] == "HIT"
    assert await first.read() == await second.read()
    assert first.headers["ETag"] == second.headers["ETag"]


async def test_etag_is_strong_and_if_none_match_gives_304(client: Client) -> None:
    response = await client.get("/picture/retina.jpg?w=200")
    etag = response.headers["ETag"]
    assert etag.startswith('"')
    assert not etag.startswith("W/")
    assert response.headers["Cache-Control"] == (
        "public, max-age=86400, stale-while-revalidate=86400, stale-if-error=604800"
    )
    again = await client.get("/picture/retina.jpg?w=200", headers={"If-None-Match": etag})
    assert again.status == 304
    assert await again.read() == b""
    assert again.headers["ETag"] == etag


async def test_different_variants_have_different_etags(client: Client) -> None:
    first = await client.get("/picture/retina.jpg?w=200")
    second = await client.get("/picture/retina.jpg?w=201")
    assert first.headers["ETag"] != second.headers["ETag"]


async def test_format_auto_negotiates_and_varies(client: Client) -> None:
    """AVIF when listed, else WebP, else the original's format; Vary: Accept."""
    cases = {
        "image/avif,image/webp,*/*": "image/avif",
        "image/webp,*/*": "image/webp",
        "image/*,*/*;q=0.8": "image/jpeg",
    }
    etags = set()
    for accept, expected in cases.items():
        response = await client.get(
            "/picture/rocket.jpg?w=100&format=auto", headers={"Accept": accept}
        )
        assert response.status == 200
        assert response.content_type == expected
        assert response.headers["Vary"] == "Accept"
        decode(await response.read())
        etags.add(response.headers["ETag"])
    assert len(etags) == 3  # each negotiated format is its own cache entry


async def test_explicit_format_does_not_vary(client: Client) -> None:
    response = await client.get("/picture/rocket.jpg?w=100&format=webp")
    assert "Vary" not in response.headers


@pytest.mark.parametrize(
    "sent",
    [
        "abc-123",
        "req/123",
        "{3F2504E0-4F89-11D3-9A0C-0305E82C3301}",
        "has space",
        "dHJhY2U+PQ==",
        "x" * 200,
    ],
)
async def test_request_id_is_echoed(client: Client, sent: str) -> None:
    echoed = await client.get("/healthz", headers={"X-Request-Id": sent})
    assert echoed.headers["X-Request-Id"] == sent


@pytest.mark.parametrize("sent", ["bad id <script>", 'a"b', "it's", "a\\b", "x" * 201, "caf\u00e9"])
async def test_request_id_is_made_when_unsafe_or_missing(client: Client, sent: str) -> None:
    replaced = await client.get("/healthz", headers={"X-Request-Id": sent})
    assert re.fullmatch("[0-9a-f]{32}", replaced.headers["X-Request-Id"])
    made = await client.get("/picture/missing.jpg")
    assert re.fullmatch("[0-9a-f]{32}", made.headers["X-Request-Id"])


async def test_healthz(client: Client) -> None:
    response = await client.get("/healthz")
    assert response.status == 200
    assert (await response.json())["status"] == "ok"


async def test_no_size_keeps_the_original_size(client: Client) -> None:
    response = await client.get("/picture/retina.jpg")
    assert decode(await response.read()).size == (1411, 1411)


async def test_no_size_is_capped_by_max_output_size(make_client: object) -> None:
    client = await make_client(max_output_size=500)  # type: ignore[operator]
    response = await client.get("/picture/retina.jpg")
    assert decode(await response.read()).size == (500, 500)


async def test_never_upscales(client: Client) -> None:
    response = await client.get("/picture/chelsea.png?w=4000&h=4000")
    assert decode(await response.read()).size == (451, 300)


async def test_width_alone_constrains_width_only(client: Client) -> None:
    response = await client.get("/picture/chelsea.png?w=200")
    assert decode(await response.read()).size == (200, 133)
    response = await client.get("/picture/chelsea.png?h=100")
    assert decode(await response.read()).size == (150, 100)


def red_difference(first: Image.Image, second: Image.Image) -> float:
    """Mean absolute difference of the red channels (0-255)."""
    return float(ImageStat.Stat(ImageChops.difference(first, second)).mean[0])


async def test_metadata_is_stripped_and_colour_is_srgb(client: Client) -> None:
    """rocket.jpg embeds an Adobe RGB (1998) profile: its pixels are
    converted to sRGB (as Pillow's LittleCMS converts them, not left as
    stored), then the profile and EXIF are dropped."""
    response = await client.get("/picture/rocket.jpg?w=300")
    image = decode(await response.read())
    assert image.info.get("icc_profile") is None
    assert "exif" not in image.info
    # The colours, on a lossless output: JPEG's own noise would blur the margin.
    lossless = decode(await (await client.get("/picture/rocket.jpg?w=300&format=png")).read())
    assert lossless.info.get("icc_profile") is None
    original = Image.open(SAMPLES / "rocket.jpg")
    adobe = ImageCms.ImageCmsProfile(io.BytesIO(original.info["icc_profile"]))
    converted = ImageCms.profileToProfile(
        original, adobe, ImageCms.createProfile("sRGB"), outputMode="RGB"
    )
    assert isinstance(converted, Image.Image)
    size = lossless.size
    expected = converted.resize(size, Image.Resampling.LANCZOS)
    as_stored = original.convert("RGB").resize(size, Image.Resampling.LANCZOS)
    got = lossless.convert("RGB")
    assert red_difference(got, expected) < 3  # measured 0.7
    assert red_difference(got, as_stored) > 8  # measured 12: the check tells them apart


async def test_alpha_is_flattened_onto_white_for_jpeg(client: Client) -> None:
    response = await client.get("/picture/png_rgba_small.png?format=jpeg")
    image = decode(await response.read()).convert("RGB")
    assert image.getpixel((0, 0)) == (255, 255, 255)  # a transparent corner
    kept = decode(await (await client.get("/picture/png_rgba_small.png?format=png")).read())
    assert kept.mode == "RGBA"
    assert kept.getpixel((0, 0))[3] == 0  # type: ignore[index]


async def test_bg_colours_the_flattened_background(client: Client) -> None:
    response = await client.get("/picture/png_rgba_small.png?format=jpeg&bg=ff0000")
    red, green, blue = decode(await response.read()).convert("RGB").getpixel((0, 0))  # type: ignore[misc]
    assert red > 240
    assert green < 15
    assert blue < 15


async def test_healthz_turns_503_once_shutdown_begins(client: Client) -> None:
    await client.app.shutdown()
    response = await client.get("/healthz")
    assert response.status == 503
    assert response.headers["Cache-Control"] == "no-store"
