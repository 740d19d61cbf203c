"""crop=x,y,w,h: a rectangle of the upright original, read before the fit."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
import pyvips
from PIL import Image, ImageChops, ImageStat

from service.formats import OutputFormat
from service.render import RenderRequest
from service.spec import Crop

from .conftest import Client, MakeClient, decode
from .load_spy import render_loads

RED, GREEN, BLUE, YELLOW = (255, 0, 0), (0, 255, 0), (0, 0, 255), (255, 255, 0)
# Mean absolute difference per channel (0-255) between two renders of one
# scene through JPEG: re-encoding noise is ~1-3, a crop 20 px off is > 10.
TOLERANCE = 8.0


def quadrants(path: Path) -> Image.Image:
    """400x300: red, green above; blue, yellow below; split at (200, 150)."""
    image = Image.new("RGB", (400, 300), RED)
    image.paste(GREEN, (200, 0, 400, 150))
    image.paste(BLUE, (0, 150, 200, 300))
    image.paste(YELLOW, (200, 150, 400, 300))
    image.save(path)
    return image


@pytest.fixture
def quadrants_png(originals: Path) -> Image.Image:
    return quadrants(originals / "quadrants.png")


async def render_png(client: Client, query: str) -> Image.Image:
    response = await client.get(f"/picture/{query}&format=png")
    assert response.status == 200, await response.text()
    return decode(await response.read()).convert("RGB")


def mean_difference(first: Image.Image, second: Image.Image) -> float:
    assert first.size == second.size
    return sum(ImageStat.Stat(ImageChops.difference(first, second)).mean) / 3


async def test_a_crop_is_exactly_the_original_pixels_of_its_rectangle(
    client: Client, quadrants_png: Image.Image
) -> None:
    """Without a size, the crop is the rectangle itself, pixel for pixel."""
    cropped = await render_png(client, "quadrants.png?crop=150,100,100,100")
    assert cropped.size == (100, 100)
    assert cropped.tobytes() == quadrants_png.crop((150, 100, 250, 200)).tobytes()


async def test_a_crop_is_resized_as_if_it_were_the_original(
    client: Client, quadrants_png: Image.Image
) -> None:
    """w applies to the crop: 200x200 around the centre into 100 px keeps
    the four colours, split at the middle."""
    cropped = await render_png(client, "quadrants.png?crop=100,50,200,200&w=100")
    assert cropped.size == (100, 100)
    for (x, y), colour in {(2, 2): RED, (97, 2): GREEN, (2, 97): BLUE, (97, 97): YELLOW}.items():
        assert cropped.getpixel((x, y)) == colour
    expected = quadrants_png.crop((100, 50, 300, 250)).resize((100, 100), Image.Resampling.LANCZOS)
    assert mean_difference(cropped, expected) < 1


@pytest.mark.parametrize(
    ("query", "size"),
    [
        ("crop=0,0,100,100&w=400", (100, 100)),  # never upscaled beyond the crop
        ("crop=0,0,200,100&w=100&h=100&fit=cover", (100, 100)),
        ("crop=0,0,200,100&w=100&h=100&fit=pad", (100, 100)),
        ("crop=0,0,200,100&w=100&h=100&fit=fill", (100, 100)),
        ("crop=0,0,200,100&w=100&h=100", (100, 50)),
        ("crop=0,0,200,100&w=400&h=400&fit=cover", (100, 100)),  # the box shrunk into the crop
    ],
)
async def test_the_fit_modes_apply_to_the_crop(
    client: Client, quadrants_png: Image.Image, query: str, size: tuple[int, int]
) -> None:
    image = await render_png(client, f"quadrants.png?{query}")
    assert image.size == size


async def test_cover_on_a_crop_keeps_its_middle(client: Client, quadrants_png: Image.Image) -> None:
    """The crop 0,100,400,100 is red-green above blue-yellow; a centred
    square window keeps the middle 100 px: all four colours."""
    image = await render_png(client, "quadrants.png?crop=0,100,400,100&w=100&h=100&fit=cover")
    assert image.size == (100, 100)
    assert mean_difference(image, quadrants_png.crop((150, 100, 250, 200))) < 1


async def test_a_crop_past_the_edges_is_clamped(client: Client, quadrants_png: Image.Image) -> None:
    """A rectangle that runs off the image keeps what lies inside it."""
    cropped = await render_png(client, "quadrants.png?crop=300,200,500,500")
    assert cropped.size == (100, 100)
    assert set(cropped.get_flattened_data()) == {YELLOW}


@pytest.mark.parametrize("crop", ["400,0,10,10", "0,300,10,10", "5000,5000,1,1"])
async def test_a_crop_wholly_outside_the_original_is_a_422(
    client: Client, quadrants_png: Image.Image, crop: str
) -> None:
    """Only the original's header can tell: a 422 with a one-line reason."""
    response = await client.get(f"/picture/quadrants.png?crop={crop}")
    assert response.status == 422
    body = await response.json()
    assert "outside the 400x300 original" in body["error"]
    assert "\n" not in body["error"]


async def test_a_crop_obeys_the_output_size_limit(
    make_client: MakeClient, quadrants_png: Image.Image
) -> None:
    client = await make_client(max_output_size=80)
    image = await render_png(client, "quadrants.png?crop=0,0,400,200")
    assert image.size == (80, 40)


@pytest.mark.parametrize("orientation", range(1, 9))
@pytest.mark.parametrize("kind", ["landscape", "portrait"])
async def test_a_crop_is_in_upright_coordinates_whatever_the_exif_orientation(
    client: Client, kind: str, orientation: int
) -> None:
    """The same rectangle of every orientation of one photo is the same
    picture: the crop is mapped to the stored pixels."""
    query = "crop=300,200,600,400&w=300"
    reference = await render_png(client, f"exif_{kind}_1.jpg?{query}")
    cropped = await render_png(client, f"exif_{kind}_{orientation}.jpg?{query}")
    assert cropped.size == (300, 200)
    assert mean_difference(cropped, reference) < TOLERANCE


async def test_the_crop_check_tells_a_shifted_crop(client: Client) -> None:
    """The tolerance is meaningful: a rectangle 20 px to the side is far off."""
    reference = await render_png(client, "exif_landscape_1.jpg?crop=300,200,600,400&w=300")
    shifted = await render_png(client, "exif_landscape_6.jpg?crop=320,200,600,400&w=300")
    assert mean_difference(shifted, reference) > TOLERANCE


@pytest.mark.parametrize("name", ["jpeg_progressive_orient6.jpg", "webp_exif_orient6.webp"])
async def test_a_crop_matches_pillows_upright_crop(client: Client, name: str) -> None:
    """Other oriented originals: Pillow's upright crop, resized alike."""
    from PIL import ImageOps  # noqa: PLC0415

    from .conftest import CORPUS  # noqa: PLC0415

    upright = ImageOps.exif_transpose(Image.open(CORPUS / name)).convert("RGB")
    box = (upright.width // 4, upright.height // 5, upright.width // 2, upright.height // 2)
    query = f"crop={box[0]},{box[1]},{box[2] - box[0]},{box[3] - box[1]}"
    cropped = await render_png(client, f"{name}?{query}")
    assert mean_difference(cropped, upright.crop(box)) < TOLERANCE


def animation(path: Path, colours: list[tuple[int, int, int]]) -> None:
    """An 80x60 GIF, one frame per colour: that colour on the right half,
    white on the left."""
    frames = []
    for colour in colours:
        frame = Image.new("RGB", (80, 60), (255, 255, 255))
        frame.paste(colour, (40, 0, 80, 60))
        frames.append(frame)
    frames[0].save(path, save_all=True, append_images=frames[1:], duration=50, loop=0)


def frames_of(body: bytes) -> list[Image.Image]:
    image = Image.open(io.BytesIO(body))
    shown = []
    for index in range(getattr(image, "n_frames", 1)):
        image.seek(index)
        shown.append(image.convert("RGB"))
    return shown


FRAME_COLOURS = [RED, GREEN, BLUE, YELLOW, (0, 255, 255)]


@pytest.mark.parametrize("output", ["gif", "webp"])
async def test_every_frame_of_an_animation_is_cropped(
    client: Client, originals: Path, output: str
) -> None:
    """The right half of each frame: the frame count is kept, each frame is
    its own colour alone."""
    animation(originals / "halves.gif", FRAME_COLOURS)
    response = await client.get(f"/picture/halves.gif?crop=40,0,40,60&w=20&format={output}")
    assert response.status == 200, await response.text()
    shown = frames_of(await response.read())
    assert len(shown) == len(FRAME_COLOURS)
    for frame, colour in zip(shown, FRAME_COLOURS, strict=True):
        assert frame.size == (20, 30)
        pixel = frame.getpixel((10, 15))
        assert isinstance(pixel, tuple)
        assert max(abs(a - b) for a, b in zip(pixel, colour, strict=True)) <= 8


# Cost: the pixels needed, not the original's.


@pytest.fixture(scope="module")
def big_jpeg(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 4000x3000 baseline JPEG of grey noise."""
    path = tmp_path_factory.mktemp("big") / "big.jpg"
    noise = pyvips.Image.gaussnoise(4000, 3000, mean=128, sigma=40).cast("uchar")
    noise.copy(interpretation="b-w").write_to_file(str(path), Q=80)
    return path


@pytest.mark.parametrize(
    ("crop", "width", "shrink"),
    [
        (Crop(0, 0, 3200, 2400), 200, 8),  # a large crop into a small output
        (Crop(1000, 1000, 1600, 1200), 200, 4),
        (Crop(2000, 2000, 400, 300), 100, 2),  # a small crop of a big JPEG
        (Crop(2000, 2000, 400, 300), 300, 1),  # needs every pixel of its rectangle
    ],
)
def test_a_crop_shrinks_on_load_as_far_as_its_own_output_allows(
    big_jpeg: Path, monkeypatch: pytest.MonkeyPatch, crop: Crop, width: int, shrink: int
) -> None:
    """libjpeg's shrink is chosen from the crop's reduction, not the
    original's: at least twice the output's pixels are decoded, no more
    than that needs."""
    request = RenderRequest(
        width=width,
        height=None,
        format=OutputFormat.JPEG,
        background=(255, 255, 255, 255),
        crop=crop,
    )
    loads = render_loads(big_jpeg, request, monkeypatch)
    assert [options for options in loads if "shrink=" in options] == [
        f"fail_on=truncated,shrink={shrink}"
    ]


@pytest.mark.parametrize(
    "name",
    [
        "jpeg_cmyk.jpg",
        "jpeg_adobergb_icc.jpg",
        "png_16bit_rgb.png",
        "png_palette_trns.png",
        "avif_p3_orient6.avif",
        "tiff_g4_orient6.tif",
    ],
)
async def test_a_crop_without_resize_is_the_plain_renders_pixels(client: Client, name: str) -> None:
    """Colour management, 16 bits, palettes, alpha and every loader's
    orientation: the crop is exactly that rectangle of the whole render."""
    whole = await client.get(f"/picture/{name}?format=png")
    cropped = await client.get(f"/picture/{name}?crop=5,5,40,30&format=png")
    assert cropped.status == 200, await cropped.text()
    expected = decode(await whole.read()).crop((5, 5, 45, 35))
    assert decode(await cropped.read()).tobytes() == expected.tobytes()


async def test_a_smart_cover_of_a_crop_looks_inside_the_crop(
    client: Client, originals: Path
) -> None:
    """gravity=attention on a crop finds the detail the crop holds: a grey
    picture with one 60x60 patch of red and yellow, which the centred window
    of the crop would miss, is kept whole."""
    image = Image.new("RGB", (600, 200), (128, 128, 128))
    image.paste(RED, (480, 70, 540, 130))
    image.paste(YELLOW, (500, 90, 520, 110))
    image.save(originals / "detail.png")
    smart = await render_png(
        client, "detail.png?crop=100,0,500,200&w=200&h=200&fit=cover&gravity=attention"
    )
    assert smart.size == (200, 200)
    assert sum(1 for pixel in smart.get_flattened_data() if pixel != (128, 128, 128)) == 60 * 60
