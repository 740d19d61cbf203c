"""/info/<path>: an original's facts as JSON, end to end on loopback with a
real originals directory, a real disk cache and real origins."""

from __future__ import annotations

import asyncio
import base64
import io
import json
import re
import threading
from functools import partial
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from service.formats import OutputFormat
from service.origins.addresses import parse_networks
from service.origins.hosts import HostPatterns
from service.render import HeaderFacts, libvips_version
from service.render.info import format_name
from service.server.app import create_app
from service.server.state import RENDERS
from service.settings import Settings
from service.signing import sign_url

from .conftest import (
    CORPUS,
    SAMPLES,
    Client,
    CorpusImage,
    MakeClient,
    corpus_images,
    original_has_alpha,
    renders_total,
    upright_size,
)
from .origin_server import Origin
from .waiting import eventually_async

GATE_SECONDS = 30

VECTORS = json.loads((Path(__file__).parent / "vectors" / "hash_vectors.json").read_text())
FIELDS = {
    "width",
    "height",
    "format",
    "has_alpha",
    "frames",
    "bytes",
    "thumbhash",
    "blurhash",
    "dominant",
    "placeholder",
}


async def _info(client: Client, name: str) -> dict[str, Any]:
    response = await client.get(f"/info/{name}")
    assert response.status == 200, await response.text()
    document: dict[str, Any] = await response.json()
    return document


async def test_info_answers_every_field_as_json(client: Client) -> None:
    """A photo's document: its size, format, alpha, frames, bytes, hashes and colour."""
    response = await client.get("/info/rocket.jpg")
    assert response.status == 200
    assert response.headers["Content-Type"] == "application/json"
    document = await response.json()
    assert set(document) == FIELDS
    assert (document["width"], document["height"]) == (640, 427)
    assert document["format"] == "jpeg"
    assert document["has_alpha"] is False
    assert document["frames"] == 1
    assert document["bytes"] == (SAMPLES / "rocket.jpg").stat().st_size
    assert len(base64.b64decode(document["thumbhash"], validate=True)) >= 5
    assert len(document["blurhash"]) == 28  # 4x3 components
    assert re.fullmatch(r"#[0-9a-f]{6}", document["dominant"])


@pytest.mark.parametrize("orientation", range(1, 9))
@pytest.mark.parametrize("shape", ["landscape", "portrait"])
async def test_sizes_are_upright_for_every_exif_orientation(
    client: Client, shape: str, orientation: int
) -> None:
    """Orientations 5-8 are stored sideways: /info gives the size as displayed."""
    name = f"exif_{shape}_{orientation}.jpg"
    document = await _info(client, name)
    size = (document["width"], document["height"])
    assert size == ((1800, 1200) if shape == "landscape" else (1200, 1800))
    assert size == upright_size(CORPUS / name)


@pytest.mark.parametrize(
    ("name", "size"),
    [
        ("jpeg_progressive_orient6.jpg", (231, 308)),
        ("jpeg_2x1_orient8.jpg", (1, 2)),
        ("tiff_g4_orient6.tif", (590, 88)),
        ("webp_exif_orient6.webp", (128, 128)),
    ],
)
async def test_other_oriented_originals_are_upright(
    client: Client, name: str, size: tuple[int, int]
) -> None:
    """EXIF orientation counts in every format that carries it."""
    document = await _info(client, name)
    assert (document["width"], document["height"]) == size == upright_size(CORPUS / name)


@pytest.mark.parametrize(
    ("name", "frames"),
    [
        ("gif_animated_5f.gif", 5),
        ("gif_animated_31f.gif", 31),
        ("gif_animated_dispose_previous.gif", 3),
        ("webp_animated_42f.webp", 42),
        ("webp_animated_99f_tall.webp", 99),
        ("gif_interlaced_trns.gif", 1),
        ("tiff_subsampled_rgba.tif", 1),
    ],
)
async def test_frames_count_an_animations_pages(client: Client, name: str, frames: int) -> None:
    """Animated GIF and WebP give their frame count, with the size of one frame."""
    document = await _info(client, name)
    assert document["frames"] == frames
    assert (document["width"], document["height"]) == upright_size(CORPUS / name)


@pytest.mark.parametrize(
    ("name", "alpha"),
    [
        ("png_rgba_small.png", True),
        ("png_palette_trns.png", True),
        ("png_16bit_grey_trns.png", True),
        ("avif_alpha.avif", True),
        ("webp_animated_42f.webp", True),
        ("png_palette.png", False),
        ("jpeg_cmyk.jpg", False),
        ("jpeg_grayscale.jpg", False),
    ],
)
async def test_has_alpha_is_the_originals(client: Client, name: str, alpha: bool) -> None:
    """has_alpha says whether the original has an alpha channel."""
    document = await _info(client, name)
    assert document["has_alpha"] is alpha is original_has_alpha(CORPUS / name)


@pytest.mark.parametrize(
    ("name", "format_name"),
    [
        ("rocket.jpg", "jpeg"),
        ("jpeg_ultrahdr_gainmap.jpg", "jpeg"),
        ("chelsea.png", "png"),
        ("webp_exif_orient6.webp", "webp"),
        ("gif_animated_5f.gif", "gif"),
        ("avif_alpha.avif", "avif"),
        ("tiff_1bit_256x4.tif", "tiff"),
    ],
)
async def test_format_is_the_originals(client: Client, name: str, format_name: str) -> None:
    """format names the original's format as its loader reads it."""
    assert (await _info(client, name))["format"] == format_name


async def test_svg_is_named_svg_where_svg_is_on(make_client: MakeClient) -> None:
    """With --enable-svg, an SVG's document says svg, at its own size."""
    client = await make_client(enable_svg=True)
    document = await _info(client, "svg_logo.svg")
    assert (document["format"], document["width"], document["height"]) == ("svg", 736, 552)


_SOURCED = [vector for vector in VECTORS["vectors"] if vector["source"] != "synthetic"]


@pytest.mark.skipif(
    libvips_version() != VECTORS["libvips"],
    reason="the vectors' pixels were rendered by another libvips: regenerate them",
)
@pytest.mark.parametrize("vector", _SOURCED, ids=lambda vector: str(vector["name"]))
async def test_hashes_are_the_reference_encoders(client: Client, vector: dict[str, Any]) -> None:
    """/info's ThumbHash and BlurHash are what the reference JS encoders give
    for the pixels of its render (tests/vectors/)."""
    document = await _info(client, Path(vector["source"]).name)
    assert document["thumbhash"] == vector["thumbhash"]
    assert document["blurhash"] == vector["blurhash"]


_IMAGES = [*corpus_images(), *(CorpusImage(p.name, "", 0, 0) for p in sorted(SAMPLES.glob("*.*")))]


@pytest.mark.parametrize("image", _IMAGES, ids=lambda image: image.name)
async def test_the_placeholder_is_a_small_decodable_image(
    make_client: MakeClient, image: CorpusImage
) -> None:
    """Every test image that /info accepts has a placeholder data URI of at
    most 600 bytes: a WebP of at most 32 px with the original's aspect."""
    client = await make_client(enable_svg=True)
    response = await client.get(f"/info/{image.name}")
    if response.status == 422:
        assert image.may_be_refused or image.name.endswith((".md", ".tsv")), await response.text()
        return
    assert response.status == 200, await response.text()
    document = await response.json()
    uri = document["placeholder"]
    assert len(uri.encode()) <= 600
    prefix = "data:image/webp;base64,"
    assert uri.startswith(prefix)
    with Image.open(io.BytesIO(base64.b64decode(uri[len(prefix) :], validate=True))) as shown:
        shown.load()
        assert max(shown.size) <= 32
        if min(document["width"], document["height"]) >= 32:
            ratio = document["width"] / document["height"]
            assert shown.size[0] / shown.size[1] == pytest.approx(ratio, rel=0.25)


async def _cache_hits(client: Client) -> float:
    text = await (await client.get("/metrics")).text()
    found = re.search(r"^image_factory_cache_hits_total (\S+)$", text, re.MULTILINE)
    assert found is not None
    return float(found.group(1))


async def test_a_second_call_is_a_cache_hit(client: Client) -> None:
    """The document is cached like a variant: the second call reads it back."""
    first = await client.get("/info/chelsea.png")
    assert first.headers["X-Cache"] == "MISS"
    hits = await _cache_hits(client)
    second = await client.get("/info/chelsea.png")
    assert second.headers["X-Cache"] == "HIT"
    assert await second.read() == await first.read()
    assert await _cache_hits(client) == hits + 1


async def test_the_cached_document_survives_a_restart(make_client: MakeClient) -> None:
    """It is in the disk cache, not in memory: a new app on the same cache hits."""
    assert (await (await make_client()).get("/info/chelsea.png")).headers["X-Cache"] == "MISS"
    assert (await (await make_client()).get("/info/chelsea.png")).headers["X-Cache"] == "HIT"


async def test_the_document_is_apart_from_the_pictures(client: Client) -> None:
    """/info and /picture of one original are two entries, neither served for the other."""
    assert (await client.get("/picture/rocket.jpg")).headers["X-Cache"] == "MISS"
    response = await client.get("/info/rocket.jpg")
    assert response.headers["X-Cache"] == "MISS"
    assert response.headers["Content-Type"] == "application/json"
    assert (await client.get("/picture/rocket.jpg")).headers["Content-Type"] == "image/jpeg"


async def test_if_none_match_is_a_304(client: Client) -> None:
    """The ETag comes from the key; naming it again is answered 304, with no body."""
    first = await client.get("/info/rocket.jpg")
    etag = first.headers["ETag"]
    assert re.fullmatch(r'"[0-9a-f]{32}"', etag)
    again = await client.get("/info/rocket.jpg", headers={"If-None-Match": etag})
    assert again.status == 304
    assert again.headers["ETag"] == etag
    assert await again.read() == b""
    assert (await client.get("/picture/rocket.jpg")).headers["ETag"] != etag


async def test_cache_control_is_the_pictures(make_client: MakeClient) -> None:
    """Cache-Control and the CDN tags are /picture's, with the configured max-age."""
    client = await make_client(max_age=1234)
    info = await client.get("/info/rocket.jpg")
    picture = await client.get("/picture/rocket.jpg")
    assert info.headers["Cache-Control"] == picture.headers["Cache-Control"]
    assert info.headers["Cache-Control"].startswith("public, max-age=1234, ")
    assert info.headers["Cache-Tag"] == picture.headers["Cache-Tag"]
    assert info.headers["Surrogate-Key"] == picture.headers["Surrogate-Key"]


async def test_a_rewritten_original_gets_a_new_document(client: Client, originals: Path) -> None:
    """The key is the original's identity: a new file is a new document."""
    path = originals / "rocket.jpg"
    first = await _info(client, "rocket.jpg")
    path.write_bytes((SAMPLES / "chelsea.png").read_bytes())
    response = await client.get("/info/rocket.jpg")
    assert response.headers["X-Cache"] == "MISS"
    document = await response.json()
    assert (document["format"], document["width"]) == ("png", 451)
    assert document["thumbhash"] != first["thumbhash"]


async def test_a_missing_original_is_a_404(client: Client) -> None:
    """No such file: 404, in JSON."""
    response = await client.get("/info/no-such-image.jpg")
    assert response.status == 404
    assert (await response.json())["status"] == 404


async def test_a_file_that_is_no_image_is_a_422(client: Client) -> None:
    """A text file is refused as /picture refuses it."""
    response = await client.get("/info/MANIFEST.tsv")
    assert response.status == 422
    assert "not an image" in (await response.json())["error"]


async def test_an_original_over_a_source_limit_is_a_422(make_client: MakeClient) -> None:
    """The pixel limit applies to /info as to /picture."""
    client = await make_client(max_source_pixels=10_000)
    response = await client.get("/info/rocket.jpg")
    assert response.status == 422
    assert "over the limit" in (await response.json())["error"]


async def test_an_unknown_parameter_is_a_400(client: Client) -> None:
    """/info takes no options: any other parameter is refused with a one-line reason."""
    response = await client.get("/info/rocket.jpg?w=100")
    assert response.status == 400
    error = (await response.json())["error"]
    assert "'w'" in error
    assert "\n" not in error


async def test_a_url_beside_a_path_is_a_400(client: Client) -> None:
    """url names a ?url= source: with a path it is one parameter too many."""
    response = await client.get("/info/rocket.jpg?url=http://127.0.0.1/a.jpg")
    assert response.status == 400
    assert "url without a path" in (await response.json())["error"]


async def test_head_gives_the_headers_without_the_document(client: Client) -> None:
    """HEAD answers as GET does, with no body."""
    response = await client.head("/info/rocket.jpg")
    assert response.status == 200
    assert response.headers["Content-Type"] == "application/json"
    assert await response.read() == b""


async def test_a_document_past_the_render_deadline_is_a_504(make_client: MakeClient) -> None:
    """The render's deadline holds: a 12 MP AVIF (no shrink-on-load) cannot
    be described in 50 ms, and its slot is returned for the next request."""
    client = await make_client(render_timeout=0.05, concurrency=1, queue=0)
    response = await client.get("/info/avif_p3_orient6.avif")
    assert response.status == 504
    renders = client.app[RENDERS]
    await eventually_async(lambda: renders.admitted == 0, GATE_SECONDS)
    assert (await client.get("/picture/png_rgba_small.png?w=10")).status == 200


async def test_the_signature_twice_is_a_400(client: Client) -> None:
    """s, like any parameter, may be given once."""
    assert (await client.get("/info/rocket.jpg?s=a&s=b")).status == 400


async def test_signing_on_refuses_a_bad_signature(make_client: MakeClient) -> None:
    """With signing on, /info is signed as /picture is: a wrong s is a 403,
    even for a missing file, and a right one is served."""
    client = await make_client(signing_keys=("secret",))
    assert (await client.get("/info/rocket.jpg")).status == 403
    assert (await client.get("/info/rocket.jpg?s=AAAA")).status == 403
    assert (await client.get("/info/nothing.jpg?s=AAAA")).status == 403
    response = await client.get(sign_url("/info/rocket.jpg", "secret"))
    assert response.status == 200
    assert (await response.json())["width"] == 640


async def test_a_picture_signature_does_not_sign_info(make_client: MakeClient) -> None:
    """The signature covers the path: /picture's does not open /info."""
    client = await make_client(signing_keys=("secret",))
    signed = sign_url("/picture/rocket.jpg", "secret")
    assert (await client.get(signed)).status == 200
    assert (await client.get(signed.replace("/picture/", "/info/"))).status == 403


async def test_a_remote_original_is_described(
    aiohttp_client: MakeClient, remote_settings: Settings, origin: Origin
) -> None:
    """From an HTTP origin: fetched once, described, then served from the cache."""
    client = await aiohttp_client(create_app(remote_settings))
    first = await client.get("/info/files/rocket.jpg")
    assert first.status == 200, await first.text()
    document = await first.json()
    assert (document["width"], document["height"], document["format"]) == (640, 427, "jpeg")
    assert document["bytes"] == (SAMPLES / "rocket.jpg").stat().st_size
    second = await client.get("/info/files/rocket.jpg")
    assert second.headers["X-Cache"] == "HIT"
    assert await second.json() == document
    assert origin.log.count("/files/rocket.jpg") == 1


async def test_a_remote_file_that_is_no_image_is_a_422(
    aiohttp_client: MakeClient, remote_settings: Settings
) -> None:
    """A remote text file is refused as a local one is."""
    client = await aiohttp_client(create_app(remote_settings))
    assert (await client.get("/info/files/notes.txt")).status == 422


async def test_a_url_source_is_described(
    aiohttp_client: MakeClient, tmp_path: Path, origin: Origin
) -> None:
    """/info?url= works where URL sources are on, as /picture?url= does."""
    settings = Settings(
        originals=str(SAMPLES),
        cache_dir=str(tmp_path / "cache"),
        concurrency=2,
        origin_timeout=2.0,
        origin_connect_timeout=1.0,
        url_sources=HostPatterns.parse(f"127.0.0.1:{origin.server.port}"),
        url_sources_allow_networks=parse_networks("127.0.0.1/32"),
    )
    client = await aiohttp_client(create_app(settings))
    response = await client.get("/info", params={"url": origin.url("/files/chelsea.png")})
    assert response.status == 200, await response.text()
    assert (await response.json())["width"] == 451
    extra = await client.get("/info", params={"url": origin.url("/files/a.png"), "w": "1"})
    assert extra.status == 400


async def test_url_sources_are_off_by_default(client: Client) -> None:
    """Without --url-sources, /info?url= is a 404, as /picture?url= is."""
    response = await client.get("/info", params={"url": "http://127.0.0.1:1/a.jpg"})
    assert response.status == 404


def _hold(gate: threading.Event) -> None:
    gate.wait(GATE_SECONDS)


async def test_concurrent_calls_compute_once(client: Client) -> None:
    """Ten concurrent calls for one missing document share one render."""
    gate = threading.Event()
    renders = client.app[RENDERS]
    renders.before_render = partial(_hold, gate)
    before = renders_total(client)
    calls = [asyncio.ensure_future(client.get("/info/retina.jpg")) for _ in range(10)]
    await eventually_async(
        lambda: renders.waiting == 9, GATE_SECONDS, message="9 calls never waited"
    )
    gate.set()
    responses = await asyncio.gather(*calls)
    assert {response.status for response in responses} == {200}
    assert len({await response.read() for response in responses}) == 1
    assert renders_total(client) == before + 1


async def test_info_takes_a_render_slot(make_client: MakeClient) -> None:
    """The document is computed in a render slot: with the only slot taken
    and no queue, /info is refused 503 as a render would be."""
    client = await make_client(concurrency=1, queue=0)
    gate = threading.Event()
    renders = client.app[RENDERS]
    renders.before_render = partial(_hold, gate)
    picture = asyncio.ensure_future(client.get("/picture/rocket.jpg?w=50"))
    await eventually_async(lambda: renders.admitted == 1, GATE_SECONDS)
    refused = await client.get("/info/chelsea.png")
    assert refused.status == 503
    gate.set()
    assert (await picture).status == 200
    assert (await client.get("/info/chelsea.png")).status == 200


@pytest.mark.parametrize(
    ("loader", "own_format", "name"),
    [
        ("heifload_source", OutputFormat.AVIF, "avif"),
        ("heifload_source", OutputFormat.JPEG, "heif"),  # HEIC: read, never written
        ("uhdrload_source", OutputFormat.JPEG, "jpeg"),
        ("tiffload_source", OutputFormat.PNG, "tiff"),
        ("svgload_source", OutputFormat.PNG, "svg"),
    ],
)
def test_format_names_tell_heif_and_avif_apart(
    loader: str, own_format: OutputFormat, name: str
) -> None:
    """heifload reads AVIF and HEIC: the name follows the compression (which
    own_format records); Ultra HDR is a JPEG. (The corpus's HEIC cannot be
    decoded here, so it has no end-to-end test.)"""
    facts = HeaderFacts(
        loader=loader,
        width=10,
        height=10,
        pages=1,
        has_alpha=False,
        orientation=1,
        own_format=own_format,
        needs_colour_management=False,
        drawn=False,
        decode_bytes=0,
        pixel_bytes=0,
        jpeg_scans=None,
    )
    assert format_name(facts) == name
