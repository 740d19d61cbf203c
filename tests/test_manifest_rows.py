"""Row by row, what MANIFEST.tsv says each tricky image must do."""

from __future__ import annotations

import io

import pytest
from PIL import Image, ImageChops, ImageStat

from .conftest import CORPUS, Client, corpus_images, decode

ALPHA_ROWS = sorted(
    image.name
    for image in corpus_images()
    if "alpha" in image.expected.lower() and "avifs" not in image.name
)
ANIMATED_ROWS = {
    "gif_animated_5f.gif": 5,
    "gif_animated_dispose_previous.gif": 3,
    "gif_animated_31f.gif": 31,
    "webp_animated_42f.webp": 42,
    "webp_animated_99f_tall.webp": 99,
}


async def get_image(client: Client, query: str) -> tuple[bytes, str]:
    response = await client.get(f"/picture/{query}")
    assert response.status == 200, await response.text()
    return await response.read(), response.content_type


def test_the_alpha_rows_were_found() -> None:
    assert len(ALPHA_ROWS) >= 7


@pytest.mark.parametrize("name", ALPHA_ROWS)
@pytest.mark.parametrize("output", ["png", "webp"])
async def test_alpha_is_preserved(client: Client, name: str, output: str) -> None:
    """Rows that say "alpha preserved": transparent pixels stay transparent."""
    body, _ = await get_image(client, f"{name}?format={output}")
    image = decode(body).convert("RGBA")
    extrema = image.getchannel("A").getextrema()
    assert isinstance(extrema[0], int)
    assert extrema[0] < 128


def timeline(data: bytes) -> tuple[int, int]:
    """(frames, total duration in ms) as stored. Pillow 13 does not report
    WebP frame durations, so libvips reads them."""
    import pyvips  # noqa: PLC0415

    image = pyvips.Image.new_from_buffer(data, "", n=-1)
    fields = image.get_fields()
    frames = int(image.get("n-pages")) if "n-pages" in fields else 1  # type: ignore[arg-type]
    delays: list[int] = image.get("delay") if "delay" in fields else []  # type: ignore[assignment]
    # Browsers play a GIF delay under 20 ms as 100 ms; encoders write it so.
    return frames, sum(delay if delay >= 20 else 100 for delay in delays)


@pytest.mark.parametrize(("name", "count"), sorted(ANIMATED_ROWS.items()))
async def test_animation_rows_keep_their_frames(client: Client, name: str, count: int) -> None:
    """Animated rows: still an animation of the same length at the same frame
    size, never one tall strip (encoders may merge identical neighbours)."""
    body, media_type = await get_image(client, f"{name}?format=webp")
    assert media_type == "image/webp"
    original_bytes = (CORPUS / name).read_bytes()
    assert Image.open(io.BytesIO(body)).size == Image.open(io.BytesIO(original_bytes)).size
    frames, duration = timeline(body)
    original_frames, original_duration = timeline(original_bytes)
    assert original_frames == count
    assert 1 < frames <= count
    assert duration == original_duration


def difference(first: Image.Image, second: Image.Image) -> float:
    return sum(ImageStat.Stat(ImageChops.difference(first, second)).mean) / 3


async def test_xyb_jpeg_looks_like_its_adobe_rgb_twin(client: Client) -> None:
    """jpeg_xyb_icc is only meaningful through its profile: colour-managed, it
    looks like jpeg_adobergb_icc (ignoring the profile gives wild colours)."""
    xyb = decode((await get_image(client, "jpeg_xyb_icc.jpg?format=png"))[0]).convert("RGB")
    adobe = decode((await get_image(client, "jpeg_adobergb_icc.jpg?format=png"))[0]).convert("RGB")
    assert difference(xyb, adobe) < 8
    raw = Image.open(CORPUS / "jpeg_xyb_icc.jpg").convert("RGB")
    assert difference(raw, adobe) > 3 * 8


async def test_huge_icc_profile_is_not_carried_over(client: Client) -> None:
    body, _ = await get_image(client, "jpeg_big_icc_progressive.jpg")
    assert len(body) < 100_000  # the original carries a 0.5 MB profile
    assert decode(body).info.get("icc_profile") is None


async def test_ultra_hdr_gives_one_sdr_image(client: Client) -> None:
    body, media_type = await get_image(client, "jpeg_ultrahdr_gainmap.jpg?w=384")
    image = decode(body)
    assert media_type == "image/jpeg"
    assert image.size == (384, 216)  # the gain map does not leak in


async def test_webp_with_svg_like_metadata_is_a_webp(client: Client) -> None:
    body, media_type = await get_image(client, "webp_looks_like_svg.webp?w=64")
    assert media_type == "image/webp"
    assert decode(body).size == (64, 64)


@pytest.mark.parametrize("query", ["w=1", "w=50", "h=4096", "w=3&h=3&fit=cover"])
async def test_one_pixel_original_never_breaks(client: Client, query: str) -> None:
    body, _ = await get_image(client, f"png_1x1_palette.png?{query}")
    assert decode(body).size == (1, 1)


async def test_extreme_aspect_never_gives_zero_pixels(client: Client) -> None:
    body, _ = await get_image(client, "tiff_1bit_256x4.tif?w=64")
    assert decode(body).size == (64, 1)
