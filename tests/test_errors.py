"""The contract's error table: every row, through the real server."""

from __future__ import annotations

import gc
import os
from pathlib import Path

import pytest
import pyvips

from service.formats import OutputFormat
from service.overlays import load_overlays
from service.render import (
    OutputWriteError,
    RenderPolicy,
    RenderRequest,
    read_facts,
    render,
)

from .conftest import Client, MakeClient
from .rawhttp import RawResponse, raw_exchange, raw_request


async def send(client: Client, target: str, method: str = "GET") -> RawResponse:
    assert client.server.host is not None
    assert client.server.port is not None
    return await raw_request(client.server.host, client.server.port, target, method)


def assert_json_error(response: RawResponse, status: int, *mentions: str) -> None:
    assert response.status == status, response.body
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    assert body["status"] == status
    message = str(body["error"])
    assert "\n" not in message
    assert "Traceback" not in message
    for mention in mentions:
        assert mention in message, message
    assert response.headers.get("x-request-id")


BAD_PARAMETERS = [
    ("scalex=NaN", "scalex"),
    ("scalex=nan", "scalex"),
    ("w=inf", "w"),
    ("w=Infinity", "w"),
    ("w=-1", "w"),
    ("w=%2B5", "w"),  # +5: a sign
    ("w=abc", "w"),
    ("w=1e309", "w"),
    ("w=1e3", "w"),
    ("w=0x10", "w"),
    ("w=1_000", "w"),
    ("w=%20800", "w"),  # leading space
    ("w=%D9%A1%D9%A0", "w"),  # Arabic-Indic digits, which int() accepts
    ("w=", "w"),
    ("w=0", "w"),
    ("w=0.4", "w"),  # rounds to 0
    ("scaley=4097", "scaley"),  # beyond --max-output-size
    ("h=2049&dpr=2", "h"),  # beyond it after dpr
    ("h=" + "9" * 400, "h"),
    ("encoding=bmp", "encoding"),
    ("format=tiff", "format"),
    ("format=jpeg%5Bshrink%3D8%5D", "format"),  # a libvips option string
    ("q=0", "q"),
    ("q=101", "q"),
    ("q=80.5", "q"),
    ("quality=-5", "quality"),
    ("dpr=5", "dpr"),
    ("dpr=0.5", "dpr"),
    ("bg=red", "bg"),
    ("bg=fffff", "bg"),
    ("w=10&w=20", "w"),
    ("w=10&scalex=20", "scalex"),
    ("format=png&encoding=png", "encoding"),
    ("size=10", "size"),
    ("W=10", "W"),
    # The operations' grammar.
    ("crop=1,2,3", "crop"),
    ("crop=1,2,3,4,5", "crop"),
    ("crop=-1,0,5,5", "crop"),
    ("crop=0,0,0,5", "crop"),
    ("crop=0,0,5,0", "crop"),
    ("crop=0.5,0,5,5", "crop"),
    ("crop=0,0,5,1e3", "crop"),
    ("crop=0%2C0%2C5", "crop"),
    ("crop=1000000,0,5,5", "crop"),  # beyond any original's side
    ("crop=", "crop"),
    ("crop=0,0,5,5&crop=0,0,5,5", "crop"),
    ("rotate=45", "rotate"),
    ("rotate=-90", "rotate"),
    ("rotate=360", "rotate"),
    ("rotate=90.0", "rotate"),
    ("rotate=", "rotate"),
    ("rotate=90&rotate=90", "rotate"),
    ("flip=x", "flip"),
    ("flip=hh", "flip"),
    ("flip=", "flip"),
    ("flip=h&flip=v", "flip"),
    ("fp=1.5,0", "fp"),
    ("fp=0.5", "fp"),
    ("fp=0.5,0.5,0.5", "fp"),
    ("fp=-0.1,0.5", "fp"),
    ("fp=0.5,1.001", "fp"),
    ("fp=0.1234,0.5", "fp"),  # four decimals: equal points must be equal keys
    ("fp=nan,0", "fp"),
    ("fp=50%25,50%25", "fp"),
    ("fp=0.5,0.5&fp=0.5,0.5", "fp"),
    ("w=100&h=100&fit=cover&fp=0.5,0.5&gravity=north", "fp"),
    ("fp=0.5,0.5&gravity=centre", "fp"),  # even without cover: both place the crop
    ("overlay=", "overlay"),
    ("overlay=a%20b", "overlay"),
    ("overlay=..%2Flogo", "overlay"),
    ("overlay=" + "x" * 65, "overlay"),
    ("overlay=logo", "overlay"),  # unknown: this server has no --overlays
    ("overlay=a&overlay=a", "overlay"),
]


@pytest.mark.parametrize(("query", "name"), BAD_PARAMETERS)
async def test_malformed_parameter_is_a_400_naming_it(
    client: Client, query: str, name: str
) -> None:
    """Each malformed, out-of-range, duplicated or unknown parameter is a 400."""
    response = await send(client, f"/picture/retina.jpg?{query}")
    assert_json_error(response, 400, name)


# The filters' grammar: malformed, out of range (blur 0.3-50 and sharpen
# 0.3-10 before dpr, trim 1-100), duplicated.
BAD_FILTER_PARAMETERS = [
    ("blur=abc", "blur"),
    ("blur=", "blur"),
    ("blur=-1", "blur"),
    ("blur=1e1", "blur"),
    ("blur=1.234", "blur"),  # two decimals at most
    ("blur=0.2", "blur"),
    ("blur=51", "blur"),
    ("blur=30&dpr=2", "blur"),  # 60 output pixels
    ("sharpen=6&dpr=2", "sharpen"),
    ("blur=nan", "blur"),
    ("sharpen=0x1", "sharpen"),
    ("sharpen=0.2", "sharpen"),
    ("sharpen=11", "sharpen"),
    ("sharpen=%2B1", "sharpen"),
    ("trim=abc", "trim"),
    ("trim=", "trim"),
    ("trim=0", "trim"),
    ("trim=101", "trim"),
    ("trim=1.5", "trim"),
    ("trim=-5", "trim"),
    ("trim=1e1", "trim"),
    ("blur=1&blur=2", "blur"),
    ("sharpen=1&sharpen=1", "sharpen"),
    ("trim=5&trim=6", "trim"),
    ("w=100&trim=10&trim=10", "trim"),
]


@pytest.mark.parametrize(("query", "name"), BAD_FILTER_PARAMETERS)
async def test_a_malformed_filter_is_a_400_naming_it(client: Client, query: str, name: str) -> None:
    """blur, sharpen and trim: each malformed, out-of-range or duplicated form is a 400."""
    response = await send(client, f"/picture/retina.jpg?{query}")
    assert_json_error(response, 400, name)


FILTER_PRESETS = """
[soft]
w = 100
blur = 2
sharpen = 1
trim = 10
"""


@pytest.fixture
async def presets_only(tmp_path: Path, make_client: MakeClient) -> Client:
    from service.settings import Settings  # noqa: PLC0415

    presets = tmp_path / "filters.toml"
    presets.write_text(FILTER_PRESETS)
    settings = Settings.from_sources(["--presets", str(presets), "--presets-only"], {})
    return await make_client(presets=settings.presets, presets_only=True)


@pytest.mark.parametrize(
    ("query", "name"),
    [
        ("blur=2", "blur"),
        ("sharpen=1", "sharpen"),
        ("trim=10", "trim"),
        ("preset=soft&trim=20", "trim"),
        ("preset=soft&blur=3", "blur"),
    ],
)
async def test_presets_only_refuses_ad_hoc_filters(
    presets_only: Client, query: str, name: str
) -> None:
    """Under --presets-only the filters come from presets alone, like q and bg."""
    response = await send(presets_only, f"/picture/retina.jpg?{query}")
    assert_json_error(response, 400, f"only presets set {name} here")


async def test_presets_only_serves_filters_through_a_preset(presets_only: Client) -> None:
    response = await send(presets_only, "/picture/retina.jpg?preset=soft")
    assert response.status == 200, response.body


OVERLAY_REFUSALS = [
    # (settings, query, mention)
    ("overlays", "overlay=blue", "not defined"),
    ("overlays", "overlay=Red", "not defined"),  # names are case-sensitive
    ("overlays", "overlay=red&overlay=red", "given twice"),
    ("presets-only", "overlay=red", "only presets"),
    ("presets-only", "preset=thumb&overlay=red", "only presets"),
    ("default", "overlay=red", "--default-overlay"),
    ("default", "overlay=none", "--default-overlay"),
    ("default", "preset=thumb&overlay=red", "--default-overlay"),
]


@pytest.mark.parametrize(("configuration", "query", "mention"), OVERLAY_REFUSALS)
async def test_overlay_refusals_are_400s(
    make_client: MakeClient, tmp_path: Path, configuration: str, query: str, mention: str
) -> None:
    """overlay=: unknown names, repeats, and choosing one where presets or
    --default-overlay decide are 400s with a one-line reason."""
    red = pyvips.Image.black(8, 4, bands=3).new_from_image([255, 0, 0]).cast("uchar")
    red.copy(interpretation="srgb").write_to_file(str(tmp_path / "red.png"))
    (tmp_path / "overlays.toml").write_text('[red]\nimage = "red.png"\nwidth = 0.2\n')
    overrides: dict[str, object] = {
        "overlays": load_overlays(str(tmp_path / "overlays.toml")),
        "presets": {"thumb": (("w", "100"),)},
    }
    if configuration == "presets-only":
        overrides["presets_only"] = True
    if configuration == "default":
        overrides["default_overlay"] = "red"
    client = await make_client(**overrides)
    response = await send(client, f"/picture/retina.jpg?{query}")
    assert_json_error(response, 400, "overlay", mention)


NOT_FOUND_TARGETS = [
    "/picture/missing.jpg",
    "/picture/../service/samples/retina.jpg",
    "/picture/%2e%2e/outside.jpg",
    "/picture/%2E%2E%2Foutside.jpg",
    "/picture/sub/..%2f..%2foutside.jpg",
    "/picture/%2Fetc%2Fpasswd",
    "/picture//etc/passwd",
    "/picture/escape-link.jpg",  # symlink to a file outside the root
    "/picture/escape-dir/outside.jpg",  # symlinked directory outside the root
    "/picture/sub",  # a directory
    "/picture/.hidden.jpg",
    "/picture/sub/.hidden.jpg",
    "/picture/fifo.jpg",
    "/picture/retina.jpg%00.png",
    "/picture/nul%00",
]


@pytest.fixture
def tricky_originals(originals: Path, tmp_path: Path) -> Path:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "outside.jpg").write_bytes((originals / "retina.jpg").read_bytes())
    (originals / "escape-link.jpg").symlink_to(outside / "outside.jpg")
    (originals / "escape-dir").symlink_to(outside)
    (originals / "sub").mkdir()
    (originals / ".hidden.jpg").write_bytes((originals / "retina.jpg").read_bytes())
    (originals / "sub" / ".hidden.jpg").write_bytes((originals / "retina.jpg").read_bytes())
    os.mkfifo(originals / "fifo.jpg")
    (originals / "inside-link.jpg").symlink_to(originals / "rocket.jpg")
    return originals


@pytest.mark.parametrize("target", NOT_FOUND_TARGETS)
async def test_paths_outside_the_originals_are_404(
    tricky_originals: Path, make_client: MakeClient, target: str
) -> None:
    """Missing files and every escape from the root answer 404, never content."""
    client = await make_client()
    response = await send(client, target)
    assert_json_error(response, 404)


async def test_symlink_inside_the_root_is_served(
    tricky_originals: Path, make_client: MakeClient
) -> None:
    """A symlink that stays inside the originals directory is an ordinary original."""
    client = await make_client()
    response = await client.get("/picture/inside-link.jpg?w=50")
    assert response.status == 200


@pytest.mark.parametrize("method", ["POST", "PUT", "DELETE", "PATCH"])
async def test_other_methods_are_405(client: Client, method: str) -> None:
    """Only GET and HEAD are served."""
    response = await send(client, "/picture/retina.jpg", method=method)
    assert_json_error(response, 405)
    assert "GET" in response.headers["allow"]


@pytest.mark.parametrize(
    ("method", "target"),
    [
        ("FOO", "/picture/retina.jpg"),  # not a method aiohttp's parser knows
        ("CONNECT", "/picture/retina.jpg"),
        ("OPTIONS", "*"),
        ("POST", "/nothing-here"),
    ],
)
async def test_unknown_and_routeless_methods_are_405(
    client: Client, method: str, target: str
) -> None:
    response = await send(client, target, method=method)
    assert_json_error(response, 405)
    assert response.headers["allow"].replace(" ", "") == "GET,HEAD"


async def raw_bytes(client: Client, data: bytes) -> RawResponse:
    assert client.server.host is not None
    assert client.server.port is not None
    return await raw_exchange(client.server.host, client.server.port, data)


@pytest.mark.parametrize(
    ("request_bytes", "mention"),
    [
        (b"GET /picture/retina.jpg?w=" + b"1" * 9000 + b" HTTP/1.1\r\nHost: x\r\n\r\n", "too long"),
        (b"GET /picture/retina.jpg HTTP/1.1\r\nX-Big: " + b"a" * 9000 + b"\r\n\r\n", "too long"),
        (b"GET /picture/retina.jpg HTTP/1.1\r\nBad Header: 1\r\n\r\n", "not valid HTTP"),
        (b"GET /pic\x00ture HTTP/1.1\r\nHost: x\r\n\r\n", "not a valid URL"),
        (
            b"POST /picture/retina.jpg HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\n"
            b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
            "",
        ),
        (b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\r\n\r\n", ""),  # TLS to HTTP
    ],
)
async def test_what_the_http_parser_refuses_is_a_json_error_too(
    client: Client, request_bytes: bytes, mention: str
) -> None:
    """Refused before any handler runs, and still one-line JSON with a
    request id, never aiohttp's plain text quoting the request back."""
    response = await raw_bytes(client, request_bytes)
    assert 400 <= response.status < 500
    assert_json_error(response, response.status, mention)
    assert b"aaaa" not in response.body
    assert b"1111" not in response.body


async def test_head_has_the_headers_and_no_body(client: Client) -> None:
    """HEAD answers as GET would, without the body."""
    get = await client.get("/picture/retina.jpg?w=100")
    head = await client.head("/picture/retina.jpg?w=100")
    assert head.status == 200
    assert await head.read() == b""
    assert head.headers["Content-Length"] == get.headers["Content-Length"]
    assert head.headers["Content-Type"] == "image/jpeg"


UNPROCESSABLE = {
    "empty.png": b"",
    "text.png": b"this is a text file, not a png\n",
    "matrix.png": b"2 2\n1 2\n3 4\n",  # libvips' matrix format: must not load
    "random.jpg": bytes(range(256)) * 64,
    "csv.jpg": b"1,2,3\n4,5,6\n",
}


@pytest.mark.parametrize("name", sorted(UNPROCESSABLE))
async def test_undecodable_originals_are_422(
    originals: Path, make_client: MakeClient, name: str
) -> None:
    """Non-images, whatever their extension says, are a 422."""
    (originals / name).write_bytes(UNPROCESSABLE[name])
    client = await make_client()
    response = await send(client, f"/picture/{name}?w=50")
    assert_json_error(response, 422)


@pytest.mark.parametrize(("source", "cut"), [("retina.jpg", 0.5), ("chelsea.png", 0.6)])
async def test_truncated_originals_are_422_not_grey(
    originals: Path, make_client: MakeClient, source: str, cut: float
) -> None:
    """A truncated JPEG or PNG is an error, not a half-grey image."""
    data = (originals / source).read_bytes()
    name = "truncated-" + source
    (originals / name).write_bytes(data[: int(len(data) * cut)])
    client = await make_client()
    response = await send(client, f"/picture/{name}?w=50")
    assert_json_error(response, 422)


@pytest.mark.parametrize("kind", ["truncated", "not an image"])
async def test_failed_renders_do_not_keep_the_original_open(
    originals: Path, make_client: MakeClient, kind: str
) -> None:
    """A failed render closes libvips' handles on the original at once.
    Before, the exception's traceback (and those it chains) kept the
    pipeline's images, and the descriptors their sources hold, alive until
    Python's cycle collector happened to run: a stream of corrupt originals
    piled up descriptors."""
    data = (originals / "retina.jpg").read_bytes()
    cut = originals / "cut-for-descriptors.jpg"
    cut.write_bytes(data[: len(data) // 2] if kind == "truncated" else b"<html>" * 100)
    client = await make_client()
    gc.collect()
    gc.disable()  # what is closed must be closed by reference counting
    try:
        for width in range(60, 80):
            assert_json_error(await send(client, f"/picture/{cut.name}?w={width}"), 422)
        still_open = _descriptors_of(cut)
    finally:
        gc.enable()
    assert still_open == []


def test_a_full_disk_does_not_keep_the_original_open(originals: Path) -> None:
    """The cache's disk failing mid-write (here /dev/full) is an
    OutputWriteError, and the original is closed at once all the same (the
    writer kept the OSError with its traceback, a cycle through the failed
    render's frames: 50 such renders left most of their descriptors open)."""
    policy = RenderPolicy(
        quality={OutputFormat.JPEG: 80, OutputFormat.WEBP: 80, OutputFormat.AVIF: 60},
        max_output_size=300,
        max_source_pixels=10**8,
        avif_effort=0,
        timeout_seconds=60.0,
    )
    request = RenderRequest(
        width=300, height=None, format=OutputFormat.PNG, background=(255, 255, 255, 255)
    )
    original = originals / "retina.jpg"
    gc.collect()
    gc.disable()
    try:
        for _ in range(50):
            source = os.open(original, os.O_RDONLY)
            full = os.open("/dev/full", os.O_WRONLY)
            try:
                facts = read_facts(source, allow_svg=False)
                with pytest.raises(OutputWriteError):
                    render(policy, request, facts, source, full)
            finally:
                os.close(source)
                os.close(full)
        still_open = _descriptors_of(original)
    finally:
        gc.enable()
    assert still_open == []


def _descriptors_of(path: Path) -> list[str]:
    target = path.resolve()
    return [entry for entry in os.listdir("/proc/self/fd") if _points_to(entry, target)]


def _points_to(descriptor: str, path: Path) -> bool:
    try:
        return os.readlink(f"/proc/self/fd/{descriptor}") == str(path)
    except OSError:  # closed since the listing
        return False


async def test_svg_is_refused_by_default(client: Client) -> None:
    """SVG is off unless enabled: a 422, detected from content."""
    response = await send(client, "/picture/svg_logo.svg?w=50")
    assert_json_error(response, 422)


async def test_late_failing_decoder_never_sends_a_200(client: Client) -> None:
    """HEIC opens but fails mid-decode: the answer is a clean 422."""
    response = await send(client, "/picture/heic_hevc.heif?w=50")
    assert_json_error(response, 422)


async def test_a_decoder_failing_mid_pixels_is_named_not_the_saver(client: Client) -> None:
    """OJPEG TIFFs fail only when their strips are read, inside the PNG
    save; the reason is the decoder's, not "unable to write to target"."""
    response = await send(client, "/picture/tiff_oldjpeg_strip.tif?w=50&format=png")
    assert_json_error(response, 422, "Old-style JPEG")
    assert "target" not in str(response.json()["error"])


async def test_a_decoder_message_that_is_not_utf8_is_a_422_and_leaves_no_trace(
    client: Client, originals: Path
) -> None:
    """libheif quotes a corrupt box's name, raw bytes and all; pyvips could not
    decode that message and left it in libvips' error buffer, so this file
    and every later failure of any request were 500s."""
    avif = bytearray((originals / "avif_irot1.avif").read_bytes())
    avif[avif.index(b"imir")] = 0x80
    (originals / "poison.avif").write_bytes(bytes(avif))
    truncated = (originals / "retina.jpg").read_bytes()
    (originals / "cut.jpg").write_bytes(truncated[: len(truncated) // 2])
    for attempt in range(2):
        assert_json_error(await send(client, f"/picture/poison.avif?w={90 + attempt}"), 422)
        assert_json_error(await send(client, f"/picture/cut.jpg?w={90 + attempt}"), 422)
    fine = await send(client, "/picture/avif_irot1.avif?w=40")
    assert fine.status == 200


async def test_unknown_route_is_a_json_404(client: Client) -> None:
    response = await send(client, "/nothing-here")
    assert_json_error(response, 404)


async def test_refusals_leave_the_cache_intact(client: Client, originals: Path) -> None:
    """Bad requests do not disturb a cached entry."""
    first = await client.get("/picture/retina.jpg?w=120")
    body = await first.read()
    for target in ("/picture/retina.jpg?w=abc", "/picture/../x", "/picture/svg_logo.svg"):
        await send(client, target)
    again = await client.get("/picture/retina.jpg?w=120")
    assert again.headers["X-Cache"] == "HIT"
    assert await again.read() == body


async def test_refused_requests_leave_no_traceback_in_the_log(
    client: Client, caplog: pytest.LogCaptureFixture
) -> None:
    """A flood of malformed requests must not flood the log with tracebacks."""
    response = await raw_bytes(client, b"GET /picture/retina.jpg HTTP/1.1\r\nBad Header: 1\r\n\r\n")
    assert response.status == 400
    assert not [record for record in caplog.records if record.exc_info]
    assert not [record for record in caplog.records if record.levelname == "ERROR"]
