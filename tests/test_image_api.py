"""The full image API: fit modes, gravity, pad colours, dpr, animation,
colour management, presets."""

from __future__ import annotations

import io
import shutil
from pathlib import Path

import pytest
import pyvips
from PIL import Image, ImageChops, ImageDraw, ImageStat

from .conftest import Client, MakeClient, decode

ORIGINAL = (1800, 1200)  # exif_landscape_*.jpg, upright


def expected_box(width: int, height: int) -> tuple[int, int]:
    """Cover/fill/pad never upscale: a larger box shrinks, keeping its shape."""
    scale = min(1.0, ORIGINAL[0] / width, ORIGINAL[1] / height)
    return max(1, round(width * scale)), max(1, round(height * scale))


BOXES = [
    (300, 300),
    (400, 100),
    (100, 400),
    (1800, 1200),
    (1799, 1),
    (1, 1199),
    (4000, 400),
    (400, 4000),
    (4000, 4000),
    (1, 4000),
    (4000, 1),
    (1, 1),
    (1000, 999),
]


@pytest.mark.parametrize("fit", ["cover", "fill", "pad"])
@pytest.mark.parametrize(("width", "height"), BOXES)
async def test_fit_modes_give_the_exact_box(
    client: Client, fit: str, width: int, height: int
) -> None:
    """cover, fill and pad answer exactly the box (shrunk when larger than the original)."""
    response = await client.get(
        f"/picture/exif_landscape_6.jpg?w={width}&h={height}&fit={fit}&format=png"
    )
    assert response.status == 200, await response.text()
    assert decode(await response.read()).size == expected_box(width, height)


@pytest.mark.parametrize(("width", "height"), BOXES)
async def test_contain_fits_inside_and_keeps_the_aspect_ratio(
    client: Client, width: int, height: int
) -> None:
    response = await client.get(f"/picture/exif_landscape_1.jpg?w={width}&h={height}&fit=contain")
    image = decode(await response.read())
    scale = min(1.0, width / ORIGINAL[0], height / ORIGINAL[1])
    assert image.width <= min(width, ORIGINAL[0])
    assert image.height <= min(height, ORIGINAL[1])
    assert abs(image.width - ORIGINAL[0] * scale) <= 1
    assert abs(image.height - ORIGINAL[1] * scale) <= 1


def region_difference(first: Image.Image, second: Image.Image) -> float:
    return sum(ImageStat.Stat(ImageChops.difference(first, second)).mean) / 3


async def render(client: Client, query: str) -> Image.Image:
    response = await client.get(f"/picture/{query}")
    assert response.status == 200, await response.text()
    return decode(await response.read()).convert("RGB")


@pytest.mark.parametrize(
    ("gravity", "edge"),
    [("north", "top"), ("south", "bottom"), ("west", "left"), ("east", "right")],
)
async def test_compass_gravity_keeps_the_named_edge(
    client: Client, gravity: str, edge: str
) -> None:
    """A cover crop with gravity=north keeps the top of the picture, and so on,
    also for an original that needs EXIF rotation first."""
    full = await render(client, "exif_landscape_1.jpg?w=600&format=png")  # 600x400
    if edge in ("top", "bottom"):
        box, region = (
            (600, 100),
            (0, 0 if edge == "top" else 300, 600, 100 if edge == "top" else 400),
        )
    else:
        box, region = (
            (100, 400),
            (0 if edge == "left" else 500, 0, 100 if edge == "left" else 600, 400),
        )
    expected = full.crop(region)
    for name in ("exif_landscape_1.jpg", "exif_landscape_6.jpg"):
        cropped = await render(
            client, f"{name}?w={box[0]}&h={box[1]}&fit=cover&gravity={gravity}&format=png"
        )
        assert cropped.size == box
        assert region_difference(cropped, expected) < 8
    opposite = full.crop((600 - region[2], 400 - region[3], 600 - region[0], 400 - region[1]))
    assert region_difference(cropped, opposite) > 16  # the check can tell the edges apart


@pytest.mark.parametrize("gravity", ["attention", "entropy", "centre", "center"])
async def test_smart_and_centre_crops_give_the_box(client: Client, gravity: str) -> None:
    image = await render(client, f"retina.jpg?w=300&h=120&fit=cover&gravity={gravity}")
    assert image.size == (300, 120)


GREY = (128, 128, 128)
DETAIL = (480, 70, 540, 130)  # a 60x60 checkerboard, right of centre in a 600x200 grey


def off_centre_detail(path: Path) -> Image.Image:
    """A flat grey 600x200 picture whose only detail (saturated, edged
    squares) sits near its right end: a 200x200 cover crop of the centre
    holds none of it, one chosen by content must hold all of it."""
    image = Image.new("RGB", (600, 200), GREY)
    draw = ImageDraw.Draw(image)
    left, top, _, _ = DETAIL
    for column in range(6):
        for row in range(6):
            x, y = left + column * 10, top + row * 10
            colour = (255, 0, 0) if (column + row) % 2 else (255, 230, 0)
            draw.rectangle((x, y, x + 9, y + 9), fill=colour)
    image.save(path)
    return image


def detail_pixels(image: Image.Image) -> int:
    return sum(1 for pixel in image.get_flattened_data() if pixel != GREY)


@pytest.mark.parametrize("gravity", ["attention", "entropy"])
async def test_smart_crops_keep_the_detail_that_centre_cuts_off(
    client: Client, originals: Path, gravity: str
) -> None:
    """gravity=attention (and entropy) chooses the window by content: on a
    picture whose only detail is off-centre it keeps all of that detail,
    where gravity=centre keeps the middle, which is plain grey."""
    original = off_centre_detail(originals / "detail.png")
    query = "detail.png?w=200&h=200&fit=cover&format=png&gravity="
    centre = await render(client, query + "centre")
    smart = await render(client, query + gravity)
    assert centre.size == smart.size == (200, 200)
    assert region_difference(centre, original.crop((200, 0, 400, 200))) < 1  # the middle
    assert detail_pixels(centre) == 0
    whole_detail = detail_pixels(original.crop(DETAIL))
    assert whole_detail == 60 * 60
    assert detail_pixels(smart) == whole_detail  # all of it: no resampling at this height


async def test_pad_centres_on_the_bg_colour(client: Client) -> None:
    image = await render(client, "exif_landscape_1.jpg?w=300&h=300&fit=pad&bg=00ff00&format=png")
    assert image.size == (300, 300)
    assert image.getpixel((150, 5)) == (0, 255, 0)  # the band above the photo
    assert image.getpixel((150, 295)) == (0, 255, 0)
    assert image.getpixel((150, 150)) != (0, 255, 0)


async def test_pad_with_a_translucent_bg_keeps_alpha(client: Client) -> None:
    response = await client.get(
        "/picture/exif_landscape_1.jpg?w=300&h=300&fit=pad&bg=ff000040&format=webp"
    )
    image = decode(await response.read())
    assert image.mode == "RGBA"
    red, _green, _blue, alpha = image.getpixel((150, 5))  # type: ignore[misc]
    assert abs(alpha - 0x40) <= 2
    assert red > 200


@pytest.mark.parametrize(
    ("query", "mode"),
    [
        ("exif_landscape_1.jpg?w=300&h=300&fit=pad&format=png", "RGB"),  # opaque on white
        ("exif_landscape_1.jpg?w=300&h=300&fit=pad&bg=00ff00&format=webp", "RGB"),
        ("png_rgba_small.png?w=100&h=50&fit=pad&format=png", "RGBA"),  # alpha kept
        ("exif_landscape_1.jpg?w=300&h=300&fit=pad&bg=00ff0080&format=png", "RGBA"),
    ],
)
async def test_pad_adds_an_alpha_band_only_where_something_is_translucent(
    client: Client, query: str, mode: str
) -> None:
    response = await client.get(f"/picture/{query}")
    assert decode(await response.read()).mode == mode


async def test_grey_with_alpha_flattens_onto_a_coloured_bg_in_colour(client: Client) -> None:
    """The bg's red alone used to stand for a grey image's background:
    bg=00ffff flattened its transparent pixels onto black."""
    image = await render(client, "png_grey_alpha.png?format=jpeg&bg=00ffff")
    cyan = [
        (x, y)
        for x in range(0, image.width, 4)
        for y in range(0, image.height, 4)
        if _is_cyan(image.getpixel((x, y)))
    ]
    assert cyan


def _is_cyan(pixel: object) -> bool:
    assert isinstance(pixel, tuple)
    red, green, blue = pixel
    return bool(red < 40 and green > 200 and blue > 200)


async def test_pad_into_jpeg_uses_the_bg_colour_opaque(client: Client) -> None:
    image = await render(client, "png_rgba_small.png?w=100&h=50&fit=pad&bg=0000ff&format=jpeg")
    assert image.size == (100, 50)
    red, _green, blue = image.getpixel((0, 0))  # type: ignore[misc]
    assert blue > 230
    assert red < 25


async def test_dpr_multiplies_the_box(client: Client) -> None:
    one = await render(client, "retina.jpg?w=100&h=50&fit=cover")
    two = await render(client, "retina.jpg?w=100&h=50&fit=cover&dpr=2")
    assert one.size == (100, 50)
    assert two.size == (200, 100)


def frames(body: bytes) -> list[Image.Image]:
    image = Image.open(io.BytesIO(body))
    collected = []
    for index in range(getattr(image, "n_frames", 1)):
        image.seek(index)
        collected.append(image.convert("RGBA"))
    return collected


@pytest.mark.parametrize("output", ["gif", "webp"])
async def test_animations_stay_animated_and_every_frame_is_resized(
    client: Client, output: str
) -> None:
    response = await client.get(f"/picture/webp_animated_42f.webp?w=100&format={output}")
    assert response.content_type == f"image/{output}"
    shown = frames(await response.read())
    assert len(shown) > 1  # GIF may merge identical neighbours; still an animation
    assert {frame.size for frame in shown} == {(100, 100)}  # frames, not one tall strip


async def test_animation_into_a_still_format_is_the_first_frame(client: Client) -> None:
    still = decode(await (await client.get("/picture/gif_animated_5f.gif?w=85&format=png")).read())
    assert getattr(still, "n_frames", 1) == 1
    first = frames(await (await client.get("/picture/gif_animated_5f.gif?w=85&format=gif")).read())[
        0
    ]
    assert still.size == first.size == (85, 77)
    assert region_difference(on_white(still), on_white(first)) < 4


def on_white(image: Image.Image) -> Image.Image:
    """Composite onto white: transparent pixels' colour values mean nothing."""
    rgba = image.convert("RGBA")
    white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
    return Image.alpha_composite(white, rgba).convert("RGB")


async def test_animations_are_cut_to_max_frames(make_client: MakeClient) -> None:
    client = await make_client(max_frames=10)
    response = await client.get("/picture/webp_animated_99f_tall.webp?w=13&format=webp")
    shown = frames(await response.read())
    assert len(shown) == 10
    assert shown[0].size == (13, 169)


@pytest.mark.parametrize("fit", ["cover", "fill", "pad"])
async def test_fit_modes_shape_every_frame_of_an_animation(client: Client, fit: str) -> None:
    response = await client.get(f"/picture/gif_animated_31f.gif?w=90&h=60&fit={fit}&format=webp")
    shown = frames(await response.read())
    assert len(shown) > 1
    assert {frame.size for frame in shown} == {(90, 60)}


async def test_format_auto_never_picks_avif_for_an_animation(client: Client) -> None:
    accept = {"Accept": "image/avif,image/webp,*/*"}
    animated = await client.get("/picture/gif_animated_5f.gif?w=50&format=auto", headers=accept)
    assert animated.content_type == "image/webp"
    assert len(frames(await animated.read())) == 5
    only_avif = {"Accept": "image/avif,*/*"}
    kept = await client.get("/picture/gif_animated_5f.gif?w=50&format=auto", headers=only_avif)
    assert kept.content_type == "image/gif"
    still = await client.get("/picture/rocket.jpg?w=50&format=auto", headers=accept)
    assert still.content_type == "image/avif"


# sRGB patches inside each profile's gamut: a mid-grey and saturated colours
# (CMYK cannot hold a saturated blue, so it gets a softer one).
PATCHES = {
    "p3": ((128, 128, 128), (200, 40, 40), (40, 160, 60), (30, 60, 190)),
    "cmyk": ((128, 128, 128), (200, 40, 40), (40, 160, 60), (80, 100, 160)),
}


def tagged_patches(path: Path, profile: str) -> tuple[tuple[int, int, int], ...]:
    """An image of sRGB patches, converted into ``profile`` with it embedded."""
    patches = PATCHES[profile]
    tiles = [pyvips.Image.black(32, 32).new_from_image(list(colour)) for colour in patches]
    image = pyvips.Image.arrayjoin(tiles, across=4).copy(interpretation="srgb").cast("uchar")
    image.icc_transform(profile, input_profile="srgb", embedded=False).write_to_file(str(path))
    return patches


@pytest.mark.parametrize("profile", ["p3", "cmyk"])
async def test_embedded_profiles_come_out_in_srgb(
    originals: Path, make_client: MakeClient, profile: str
) -> None:
    """A mid-grey and saturated patches keep their sRGB values after a round
    trip through a wide-gamut (P3) or CMYK profile."""
    suffix = "png" if profile == "p3" else "jpg"
    patches = tagged_patches(originals / f"patches-{profile}.{suffix}", profile)
    client = await make_client()
    image = await render(client, f"patches-{profile}.{suffix}?format=png")
    tolerance = 4 if profile == "p3" else 10  # libvips' CMYK profile shifts grey by ~8
    for index, colour in enumerate(patches):
        got = image.getpixel((index * 32 + 16, 16))
        assert max(abs(a - b) for a, b in zip(got, colour, strict=True)) <= tolerance, (colour, got)  # type: ignore[arg-type]


async def test_ignoring_the_profile_would_be_caught(originals: Path) -> None:
    """The tolerance is meaningful: the P3 numbers read as sRGB are far off."""
    patches = tagged_patches(originals / "raw-p3.png", "p3")
    raw = Image.open(originals / "raw-p3.png").convert("RGB")
    red_as_stored = raw.getpixel((48, 16))
    assert max(abs(a - b) for a, b in zip(red_as_stored, patches[1], strict=True)) > 8  # type: ignore[arg-type]


async def test_cmyk_jpeg_is_not_inverted(client: Client) -> None:
    """The corpus' CMYK JPEG (red lettering on black, no profile) comes out
    with dark background and red letters, not as a negative."""
    image = await render(client, "jpeg_cmyk.jpg?format=png")
    background = image.getpixel((50, 90))
    assert max(background) < 60  # type: ignore[arg-type]
    reds = [
        pixel
        for pixel in image.get_flattened_data()
        if pixel[0] > 150 and pixel[1] < 80 and pixel[2] < 80  # type: ignore[index]
    ]
    assert len(reds) > 300  # the lettering


async def test_sixteen_bit_png_matches_its_eight_bit_twin(client: Client) -> None:
    """The 16-bit sample and the palette sample are one scene: same brightness."""
    deep = await render(client, "png_16bit_rgb.png?format=png")
    palette = await render(client, "png_palette.png?format=png")
    assert deep.size == palette.size
    assert region_difference(deep, palette) < 6


PRESETS = """
[thumb]
w = 120
h = 120
fit = "cover"

[hero]
w = 800
format = "webp"
q = 70

[turned]
crop = "0,0,400,200"
rotate = 90
flip = "v"
w = 50
"""


@pytest.fixture
def presets_file(tmp_path: Path) -> Path:
    path = tmp_path / "presets.toml"
    path.write_text(PRESETS)
    return path


async def test_presets_are_named_parameter_sets(
    presets_file: Path, make_client: MakeClient
) -> None:
    from service.settings import Settings  # noqa: PLC0415

    presets = Settings.from_sources(["--presets", str(presets_file)], {}).presets
    client = await make_client(presets=presets)
    thumb = await client.get("/picture/retina.jpg?preset=thumb")
    assert decode(await thumb.read()).size == (120, 120)
    hero = await client.get("/picture/retina.jpg?preset=hero&format=png")  # format overrides
    assert hero.content_type == "image/png"
    assert decode(await hero.read()).size == (800, 800)
    same = await client.get("/picture/retina.jpg?w=120&h=120&fit=cover")
    assert same.headers["ETag"] == thumb.headers["ETag"]  # resolved presets share the key
    mixed = await client.get("/picture/retina.jpg?preset=thumb&w=10")
    assert mixed.status == 400
    unknown = await client.get("/picture/retina.jpg?preset=nope")
    assert unknown.status == 400


async def test_presets_only_refuses_ad_hoc_sizes(
    presets_file: Path, make_client: MakeClient
) -> None:
    from service.settings import Settings  # noqa: PLC0415

    settings = Settings.from_sources(["--presets", str(presets_file), "--presets-only"], {})
    client = await make_client(presets=settings.presets, presets_only=True)
    assert (await client.get("/picture/retina.jpg?w=100")).status == 400
    assert (await client.get("/picture/retina.jpg?preset=thumb")).status == 200
    assert (await client.get("/picture/retina.jpg?format=webp")).status == 200
    assert (await client.get("/picture/retina.jpg?preset=thumb&format=png")).status == 200
    assert (await client.get("/picture/retina.jpg?preset=hero")).status == 200  # its own q


@pytest.mark.parametrize(
    "query",
    [
        "preset=thumb&q=31",
        "quality=31",
        "preset=thumb&bg=00ff00",
        "format=jpeg&bg=00ff00",
        "preset=thumb&crop=0,0,10,10",
        "rotate=90",
        "preset=hero&flip=h",
        "preset=thumb&fp=0.5,0.5",
    ],
)
async def test_presets_only_refuses_ad_hoc_quality_and_background(
    presets_file: Path, make_client: MakeClient, query: str
) -> None:
    """A free q or bg would mint a variant per value, the very thing
    presets-only stops; the 400 names the parameter as it was written."""
    from service.settings import Settings  # noqa: PLC0415

    settings = Settings.from_sources(["--presets", str(presets_file), "--presets-only"], {})
    client = await make_client(presets=settings.presets, presets_only=True)
    response = await client.get(f"/picture/chelsea.png?{query}")
    assert response.status == 400
    written = query.rsplit("&", 1)[-1].split("=", maxsplit=1)[0]
    assert (await response.json())["error"] == f"only presets set {written} here: use preset=<name>"


async def test_presets_only_takes_the_operations_from_a_preset(
    presets_file: Path, make_client: MakeClient
) -> None:
    """crop, rotate and flip are refused ad hoc, but a preset may set them:
    the crop 400x200, turned upright, 50 px wide."""
    from service.settings import Settings  # noqa: PLC0415

    settings = Settings.from_sources(["--presets", str(presets_file), "--presets-only"], {})
    client = await make_client(presets=settings.presets, presets_only=True)
    response = await client.get("/picture/retina.jpg?preset=turned")
    assert response.status == 200, await response.text()
    assert decode(await response.read()).size == (50, 100)


def test_a_bad_presets_file_is_a_start_up_error(tmp_path: Path) -> None:
    from service.settings import Settings, SettingsError  # noqa: PLC0415

    path = tmp_path / "bad.toml"
    path.write_text('[thumb]\nw = "huge"\n')
    with pytest.raises(SettingsError, match="thumb"):
        Settings.from_sources(["--presets", str(path)], {})


@pytest.fixture(scope="module")
def long_animation(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """100 flat-coloured frames of 1000x1000: a small file (made with
    Pillow, in a second), but every frame is a full decode."""
    images = [
        Image.new("RGB", (1000, 1000), (index * 2, 255 - index * 2, 64)) for index in range(100)
    ]
    path = tmp_path_factory.mktemp("animation") / "long.gif"
    images[0].save(path, save_all=True, append_images=images[1:], duration=40, loop=0)
    return path


@pytest.mark.parametrize(
    ("query", "size"),
    [("w=1&h=1&fit=cover", (1, 1)), ("w=40&h=20&fit=cover&gravity=north", (40, 20))],
)
async def test_an_animated_cover_stays_within_its_time_limit(
    make_client: MakeClient,
    originals: Path,
    long_animation: Path,
    query: str,
    size: tuple[int, int],
) -> None:
    """Shaping each frame with thumbnail_image(crop=) decoded the GIF from
    its first frame again for every frame, while the pipeline was still
    being built, where the deadline cannot stop it: 100 frames of 1000x1000
    took 29 s here and ran on long after the 504. Cropped lazily, they take
    about 1 s, well inside a 15 s limit (and a 504 fails this test)."""
    shutil.copy(long_animation, originals / "long.gif")
    client = await make_client(render_timeout=15.0)
    response = await client.get(f"/picture/long.gif?{query}")
    assert response.status == 200, await response.text()
    shown = frames(await response.read())
    assert len(shown) > 1  # GIF merges neighbours that quantise alike
    assert {frame.size for frame in shown} == {size}
    first = shown[0].convert("RGB").getpixel((0, 0))
    assert first == pytest.approx((0, 255, 64), abs=12)  # frame 0's colour comes first
