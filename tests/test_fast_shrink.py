"""How deep JPEGs shrink on load: by 2 from a 3x reduction by default
(libvips' thumbnail waits for 4x), and with --fast-shrink-on-load down to
the output size (as sharp's fastShrinkOnLoad)."""

from __future__ import annotations

from pathlib import Path

import pytest
import pyvips
from PIL import Image, ImageChops, ImageStat

from service.formats import OutputFormat
from service.render import FAST_DEPTH, SERVICE_DEPTH, RenderRequest
from service.server.app import output_settings, render_policy
from service.settings import Settings

from .conftest import MakeClient, decode
from .load_spy import render_loads

RED, GREEN, BLUE, YELLOW = (255, 0, 0), (0, 255, 0), (0, 0, 255), (255, 255, 0)
# Mean absolute difference per channel (0-255) between the two modes'
# renders of one scene: resampling and JPEG noise are ~1-3; a picture
# turned or shifted by a few pixels is far above.
TOLERANCE = 4.0


def quadrants_jpeg(path: Path, orientation: int = 1) -> None:
    """4000x3000 stored: red, green above; blue, yellow below; with an EXIF
    ``orientation``."""
    image = Image.new("RGB", (4000, 3000), RED)
    image.paste(GREEN, (2000, 0, 4000, 1500))
    image.paste(BLUE, (0, 1500, 2000, 3000))
    image.paste(YELLOW, (2000, 1500, 4000, 3000))
    exif = Image.Exif()
    exif[0x0112] = orientation
    image.save(path, quality=90, exif=exif)


@pytest.fixture
def quadrants(originals: Path) -> Path:
    quadrants_jpeg(originals / "quadrants.jpg")
    quadrants_jpeg(originals / "turned.jpg", orientation=6)
    return originals


def difference(first: Image.Image, second: Image.Image) -> float:
    assert first.size == second.size
    return sum(ImageStat.Stat(ImageChops.difference(first, second)).mean) / 3


@pytest.mark.parametrize(
    ("width", "shrink"),
    [(700, 4), (450, 8), (1500, 2)],  # 5.7x, 8.9x, 2.7x: libvips would take 2, 4, 1
)
def test_a_jpeg_shrinks_on_load_as_deep_as_its_output_allows(
    quadrants: Path, monkeypatch: pytest.MonkeyPatch, width: int, shrink: int
) -> None:
    request = RenderRequest(
        width=width, height=None, format=OutputFormat.JPEG, background=(255, 255, 255, 255)
    )
    path = quadrants / "quadrants.jpg"
    loads = render_loads(path, request, monkeypatch, depth=FAST_DEPTH)
    assert any(f"shrink={shrink}" in options for options in loads), loads
    exact = render_loads(path, request, monkeypatch)
    assert not any(f"shrink={shrink}" in options for options in exact), exact


@pytest.mark.parametrize(
    ("width", "halved"),
    # 3.1x, 3.8x: halved by the service; 2.9x: not halved; 6.7x, 8.9x:
    # libvips' thumbnail halves or quarters them itself.
    [(1300, True), (1050, True), (1400, False), (600, False), (450, False)],
)
def test_the_service_halves_a_jpeg_on_load_from_a_3x_reduction(
    quadrants: Path, monkeypatch: pytest.MonkeyPatch, width: int, halved: bool
) -> None:
    """Where libvips' thumbnail would shrink as deep, it renders (its loads
    are not seen); from 3x to 4x the service loads with shrink=2 itself."""
    request = RenderRequest(
        width=width, height=None, format=OutputFormat.JPEG, background=(255, 255, 255, 255)
    )
    # The header's load comes first; thumbnail_source's own loads are not seen.
    header, *pixels = render_loads(quadrants / "quadrants.jpg", request, monkeypatch)
    assert header == ""
    if halved:
        assert pixels == ["fail_on=truncated,shrink=2"]
    else:
        assert pixels == []  # thumbnail_source, at libvips' own depth


@pytest.mark.parametrize(
    ("query", "thumbnail"),
    [
        ("quadrants.jpg?w=1300", ("quadrants.jpg", 1300, 10**5, "none")),  # 3.1x
        ("turned.jpg?w=1000&h=800&fit=cover", ("turned.jpg", 1000, 800, "centre")),  # 3x
        # 3.98x, and a tie in the height's rounding, which thumbnail takes up
        ("quadrants.jpg?w=1006", ("quadrants.jpg", 1006, 10**5, "none")),
        ("turned.jpg?h=1006", ("turned.jpg", 10**5, 1006, "none")),
    ],
)
async def test_a_halved_render_is_libvips_thumbnails_size_and_picture(
    make_client: MakeClient,
    quadrants: Path,
    query: str,
    thumbnail: tuple[str, int, int, str],
) -> None:
    """The halved load gives thumbnail's picture: the same size, upright,
    within resampling noise of a full decode's."""
    client = await make_client()
    response = await client.get(f"/picture/{query}&format=png")
    assert response.status == 200
    ours = decode(await response.read()).convert("RGB")
    name, width, height, crop = thumbnail
    whole = pyvips.Image.thumbnail(
        str(quadrants / name), width, height=height, size="down", crop=crop
    )
    theirs = decode(whole.write_to_buffer(".png")).convert("RGB")
    assert difference(ours, theirs) < TOLERANCE


@pytest.mark.parametrize(
    "query",
    [
        "quadrants.jpg?w=700",
        "quadrants.jpg?w=300&h=300&fit=cover",
        "quadrants.jpg?w=300&h=300&fit=fill",
        "quadrants.jpg?w=300&h=300&fit=pad",
        "turned.jpg?w=500",  # EXIF orientation 6: upright, 500x667
        "turned.jpg?w=400&h=200&fit=cover&gravity=north",
    ],
)
async def test_fast_renders_are_the_exact_renders_size_and_picture(
    make_client: MakeClient, quadrants: Path, query: str
) -> None:
    exact_client = await make_client()
    fast_client = await make_client(fast_shrink_on_load=True)
    exact_response = await exact_client.get(f"/picture/{query}")
    fast_response = await fast_client.get(f"/picture/{query}")
    assert exact_response.status == fast_response.status == 200
    exact_body, fast_body = await exact_response.read(), await fast_response.read()
    assert exact_body != fast_body  # it took its own path
    exact, fast = decode(exact_body).convert("RGB"), decode(fast_body).convert("RGB")
    assert fast.size == exact.size
    assert difference(fast, exact) < TOLERANCE


async def test_turned_quadrants_keep_their_corners(
    make_client: MakeClient, quadrants: Path
) -> None:
    """Orientation 6 turns the stored picture a quarter clockwise: blue
    comes to the top left, red to the top right."""
    client = await make_client(fast_shrink_on_load=True)
    response = await client.get("/picture/turned.jpg?w=500&format=png")
    picture = decode(await response.read()).convert("RGB")
    assert picture.size == (500, 667)
    corners = {(5, 5): BLUE, (494, 5): RED, (5, 661): YELLOW, (494, 661): GREEN}
    for (x, y), colour in corners.items():
        pixel = picture.getpixel((x, y))
        assert isinstance(pixel, tuple)
        assert all(abs(a - b) < 10 for a, b in zip(pixel, colour, strict=True))


async def test_where_libvips_would_shrink_as_far_the_bytes_are_the_exact_ones(
    make_client: MakeClient, quadrants: Path
) -> None:
    """A 1.6x reduction: no DCT scaling either way, so one output."""
    exact_client = await make_client()
    fast_client = await make_client(fast_shrink_on_load=True)
    exact = await (await exact_client.get("/picture/quadrants.jpg?w=2500")).read()
    fast = await (await fast_client.get("/picture/quadrants.jpg?w=2500")).read()
    assert fast == exact


def test_fast_shrink_is_off_by_default_and_keys_only_its_own_outputs() -> None:
    """On, it is part of every cache key (outputs differ); off, the keys
    are those of a service that never had the option."""
    exact = Settings.from_sources([], {})
    fast = Settings.from_sources(["--fast-shrink-on-load"], {})
    assert exact.fast_shrink_on_load is False
    assert render_policy(exact).jpeg_shrink_depth is SERVICE_DEPTH
    assert render_policy(fast).jpeg_shrink_depth is FAST_DEPTH
    assert output_settings(fast) != output_settings(exact)
    assert "fast-shrink" not in output_settings(exact)
