"""Hostile input and overload: limits, loaders, timeouts, signatures."""

from __future__ import annotations

import asyncio
import http.server
import os
import resource
import socket
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web_protocol
from PIL import Image

from service.render.jpeg_markers import SCAN_CHUNK_BYTES, jpeg_scans
from service.server.patches.slow_clients import missing_attributes
from service.server.state import METRICS, RENDERS
from service.signing import origin_form, sign_url, signature, split_signature, verify

from .conftest import Client, MakeClient, decode
from .hostile import hostile_corpus
from .rawhttp import raw_request
from .serving import peak_rss_mb, reset_peak_rss, rss_mb, running_service
from .waiting import eventually_async

ROOT = Path(__file__).parent.parent


async def test_hostile_corpus_gets_its_statuses_fast(
    originals: Path, make_client: MakeClient
) -> None:
    """Bombs are refused from their headers, without decoding or allocating."""
    expected = hostile_corpus(originals / "hostile")
    client = await make_client()
    reset_peak_rss()
    # The test process' own RSS is every earlier test's (numba, libvips'
    # caches): about 1.5 GB by here in a full run, so the bound is on the rise.
    start_mb = rss_mb(os.getpid())
    for name, status in sorted(expected.items()):
        started = time.monotonic()
        response = await client.get(f"/picture/hostile/{name}?w=100")
        elapsed = time.monotonic() - started
        assert response.status == status, (name, await response.text())
        assert elapsed < 5, (name, elapsed)  # a decode of any bomb would take far longer
    rise_mb = peak_rss_mb(os.getpid()) - start_mb
    assert rise_mb < 500  # 50,000² RGB alone would be 7.5 GB


async def test_source_byte_limit(originals: Path, make_client: MakeClient) -> None:
    client = await make_client(max_source_bytes=100_000)
    response = await client.get("/picture/retina.jpg?w=10")  # 270 kB
    assert response.status == 422
    assert "bytes" in (await response.json())["error"]


def progressive_jpeg(path: Path, extra_scans: int, before_first_scan: bytes = b"") -> None:
    """A real progressive JPEG (10 scans) with ``extra_scans`` empty scans
    appended, as a scan flood is: libjpeg would decode them all before the
    first pixel, out of reach of the render's deadline. ``before_first_scan``
    goes in front of its first scan (libjpeg skips junk and fill bytes)."""
    image = Image.effect_noise((64, 64), 40).convert("RGB")
    image.save(path, "JPEG", progressive=True, quality=80)
    data = path.read_bytes()
    assert data.endswith(b"\xff\xd9")
    first_scan = data.index(b"\xff\xda")
    data = data[:first_scan] + before_first_scan + data[first_scan:]
    scan = b"\xff\xda\x00\x08\x01\x01\x00\x01\x01\x00" + b"\x00"
    path.write_bytes(data[:-2] + scan * extra_scans + b"\xff\xd9")


@pytest.mark.parametrize(
    "before_first_scan",
    [b"", b"junk", b"\xff" * 70_000, b"\xff\xd0", b"\xff\xfe\x00\x04\xff\xda"],
    ids=["plain", "junk", "fill", "restart-marker", "comment-with-the-marker"],
)
async def test_a_jpeg_in_hundreds_of_scans_is_refused_from_its_markers(
    client: Client, originals: Path, before_first_scan: bytes
) -> None:
    progressive_jpeg(originals / "flood.jpg", extra_scans=300, before_first_scan=before_first_scan)
    refused = await client.get("/picture/flood.jpg?w=32")
    assert refused.status == 422
    assert "scans" in (await refused.json())["error"]
    progressive_jpeg(originals / "plain.jpg", extra_scans=0)
    served = await client.get("/picture/plain.jpg?w=32")
    assert served.status == 200
    assert decode(await served.read()).size == (32, 32)


def test_scans_are_counted_past_the_header_segments(tmp_path: Path) -> None:
    """A comment (or ICC profile, or EXIF thumbnail) may hold the marker's
    bytes: only what follows the first scan counts."""
    path = tmp_path / "commented.jpg"
    image = Image.effect_noise((64, 64), 40).convert("RGB")
    image.save(path, "JPEG", progressive=True, comment=b"\xff\xda" * 50)
    descriptor = os.open(path, os.O_RDONLY)
    try:
        assert jpeg_scans(descriptor) == 10  # Pillow's (libjpeg's) default script
    finally:
        os.close(descriptor)


def test_a_scan_marker_across_two_reads_is_counted_once(tmp_path: Path) -> None:
    """The file is read in chunks: a marker whose 0xFF ends one chunk and
    whose 0xDA begins the next is one scan, as are those within."""
    chunk = SCAN_CHUNK_BYTES
    body = bytearray(b"\x00" * (2 * chunk))
    body[chunk - 1 : chunk + 1] = b"\xff\xda"  # 2 bytes of SOI come first
    body[100:102] = b"\xff\xda"
    body[chunk + 100 : chunk + 102] = b"\xff\xda"
    path = tmp_path / "split.jpg"
    path.write_bytes(b"\xff\xd8" + bytes(body))  # junk after SOI: counted from there
    descriptor = os.open(path, os.O_RDONLY)
    try:
        assert jpeg_scans(descriptor) == 3
        assert jpeg_scans(descriptor, stop_after=0) == 1  # stopped after the first chunk
    finally:
        os.close(descriptor)


async def test_pixel_limit_counts_frames(make_client: MakeClient) -> None:
    """Animated: width x height x frames processed; the still output needs one."""
    client = await make_client(max_source_pixels=245 * 245 * 10)
    animated = await client.get("/picture/webp_animated_42f.webp?format=webp")
    assert animated.status == 422
    first_frame = await client.get("/picture/webp_animated_42f.webp?format=png")
    assert first_frame.status == 200


async def test_source_limit_refusals_are_counted_apart_from_broken_files(
    make_client: MakeClient, originals: Path
) -> None:
    """rejected_total{reason="source_limit"} counts what the limits refused
    (here frames x pixels), once per request; a broken file is a 422 too,
    but not a refusal of the service's limits."""
    (originals / "broken.png").write_bytes(b"this is not a png\n")
    client = await make_client(max_source_pixels=245 * 245 * 10)
    for width in (40, 41):
        response = await client.get(f"/picture/webp_animated_42f.webp?format=webp&w={width}")
        assert response.status == 422
    assert (await client.get("/picture/broken.png?w=40")).status == 422
    registry = client.app[METRICS].registry
    refused = registry.get_sample_value("image_factory_rejected_total", {"reason": "source_limit"})
    assert refused == 2
    assert registry.get_sample_value("image_factory_requests_total", {"status": "422"}) == 3


def svg_with_references(port: int, secret: Path) -> bytes:
    return f"""<svg xmlns="http://www.w3.org/2000/svg" xmlns:xlink="http://www.w3.org/1999/xlink"
 width="200" height="100">
  <rect width="200" height="100" fill="#ffffff"/>
  <image x="0" y="0" width="100" height="100" xlink:href="file://{secret}"/>
  <image x="100" y="0" width="100" height="100" href="http://127.0.0.1:{port}/red.png"/>
  <use href="http://127.0.0.1:{port}/shapes.svg#red"/>
  <script>fetch("http://127.0.0.1:{port}/script")</script>
</svg>""".encode()


def svg_with_entity(port: int) -> bytes:
    return f"""<?xml version="1.0"?>
<!DOCTYPE svg [ <!ENTITY ext SYSTEM "http://127.0.0.1:{port}/entity"> ]>
<svg xmlns="http://www.w3.org/2000/svg" width="200" height="100">
  <text x="10" y="50">&ext;</text>
</svg>""".encode()


async def test_svg_when_enabled_follows_no_reference(
    originals: Path, tmp_path: Path, make_client: MakeClient
) -> None:
    """--enable-svg rasterises, but no file, network or entity reference is
    loaded, and scripts do not run."""
    red = tmp_path / "red.png"
    Image.new("RGB", (100, 100), (255, 0, 0)).save(red)
    connections: list[str] = []

    class Recorder(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            connections.append(self.path)
            self.send_response(404)
            self.end_headers()

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = http.server.HTTPServer(("127.0.0.1", 0), Recorder)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        (originals / "refs.svg").write_bytes(svg_with_references(server.server_port, red))
        (originals / "entity.svg").write_bytes(svg_with_entity(server.server_port))
        client = await make_client(enable_svg=True)
        response = await client.get("/picture/refs.svg?format=png")
        assert response.status == 200, await response.text()
        image = decode(await response.read()).convert("RGB")
        reddish = [
            pixel
            for pixel in image.get_flattened_data()
            if pixel[0] > 200 and pixel[1] < 80  # type: ignore[index]
        ]
        assert reddish == []  # neither the file nor the URL was drawn
        entity = await client.get("/picture/entity.svg?format=png")
        assert entity.status in (200, 422)  # refused or rendered without it
        plain = await client.get("/picture/svg_logo.svg?w=300")
        assert plain.status == 200
        assert decode(await plain.read()).width == 300  # rasterised at the size asked
    finally:
        server.shutdown()
        server.server_close()
        thread.join()
    assert connections == []


async def test_svg_stays_refused_without_the_flag(client: Client) -> None:
    assert (await client.get("/picture/svg_logo.svg")).status == 422


# -- time limits ---------------------------------------------------------


async def test_a_render_past_its_deadline_is_a_504_and_frees_its_slot(
    make_client: MakeClient,
) -> None:
    """A 4K AVIF cannot be made in 50 ms: 504 with no-store, then the slot
    is returned once libvips stops, and the service serves normally."""
    client = await make_client(render_timeout=0.05, concurrency=1, queue=0)
    response = await client.get("/picture/jpeg_ultrahdr_gainmap.jpg?format=avif")
    assert response.status == 504
    assert response.headers["Cache-Control"] == "no-store"
    renders = client.app[RENDERS]
    await eventually_async(
        lambda: renders.admitted == 0, 30, message="the slot was not returned after the 504"
    )
    assert renders.admitted == 0
    small = await client.get("/picture/png_rgba_small.png?w=10")
    assert small.status == 200


async def test_queue_time_does_not_count_against_the_limit(make_client: MakeClient) -> None:
    """While the only render thread is held past the limit (its request gets
    a 504), a queued render waits, then still gets its whole time."""
    client = await make_client(render_timeout=1.0, concurrency=1, queue=4)
    renders = client.app[RENDERS]
    gate = threading.Event()
    held = threading.Event()

    def hold_first() -> None:
        if not held.is_set():
            held.set()
            gate.wait(60)

    renders.before_render = hold_first
    first = asyncio.ensure_future(client.get("/picture/rocket.jpg?w=100"))
    # The first render owns the thread before the second asks.
    await eventually_async(held.is_set, 30, message="the first render never started")
    second = asyncio.ensure_future(client.get("/picture/rocket.jpg?w=101"))
    first_response = await first  # answered 504 at its deadline, thread still held
    assert first_response.status == 504
    assert not second.done()  # queued behind the held thread, past 1 s already
    gate.set()
    second_response = await second
    assert second_response.status == 200  # its time started when its render did


# -- overload ------------------------------------------------------------


def test_a_flood_of_1000_connections_gets_only_200_or_503(tmp_path: Path, originals: Path) -> None:
    """1,000 concurrent uncached requests on loopback: only 200/503 (with
    Retry-After), bounded RSS, and normal service right after."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, min(hard, 4096)), hard))
    arguments = ("--originals", str(originals), "--cache-dir", str(tmp_path / "cache"))
    with running_service(*arguments, "--concurrency", "2", "--queue", "16") as running:
        statuses = asyncio.run(flood(running.base, 1000))
        assert set(statuses) <= {200, 503}, statuses  # no If-None-Match sent: never a 304
        assert statuses[200] > 0
        assert statuses[503] > 0
        (worker,) = running.workers()
        rss = peak_rss_mb(worker)
        assert rss < 800, rss  # measured ~100 MB here
        after = asyncio.run(flood(running.base, 1, offset=5000))
        assert after == Counter({200: 1})


async def flood(base: str, count: int, offset: int = 0) -> Counter[int]:
    connector = aiohttp.TCPConnector(limit=count, force_close=True)
    timeout = aiohttp.ClientTimeout(total=120)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:

        async def one(index: int) -> int:
            width = 50 + (index + offset) % 1500
            async with session.get(f"{base}/picture/retina.jpg?w={width}") as response:
                await response.read()
                if response.status == 503:
                    assert response.headers["Retry-After"]
                return response.status

        return Counter(await asyncio.gather(*(one(i) for i in range(count))))


# -- slow clients --------------------------------------------------------

HEAD_TIMEOUT = 0.5


def _closed_within(connection: socket.socket, seconds: float) -> bool:
    """Whether the server closes ``connection`` within ``seconds``
    (anything it sends first is read and dropped)."""
    connection.settimeout(seconds)
    try:
        while connection.recv(4096):
            pass
    except TimeoutError:
        return False
    except ConnectionResetError:
        pass
    return True


def test_a_request_head_must_arrive_whole_within_the_header_timeout() -> None:
    """Slowloris: a connection that sends nothing, or trickles its headers a
    byte at a time, is closed after --header-timeout, not after aiohttp's 75 s
    keep-alive. A connection idle after a response keeps the 75 s, and so
    does one whose body came apart from its head."""
    with running_service("--header-timeout", str(HEAD_TIMEOUT)) as running:
        address = ("127.0.0.1", running.port)
        with socket.create_connection(address) as silent:
            assert _closed_within(silent, 30)
        with socket.create_connection(address) as trickling:
            head = b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Padding: " + b"a" * 200
            closed = False
            # One byte every 20 ms: the head would take nine deadlines. A
            # timer that restarted with each byte would never close it.
            for byte in head:
                try:
                    trickling.sendall(bytes([byte]))
                except (BrokenPipeError, ConnectionResetError):
                    closed = True
                    break
                if _closed_within(trickling, 0.02):
                    closed = True
                    break
            assert closed
        with socket.create_connection(address) as kept:
            for _ in range(2):
                kept.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
                assert b"200 OK" in kept.recv(4096)
                # Idle between requests for four deadlines: still open.
                assert not _closed_within(kept, 4 * HEAD_TIMEOUT)
        with socket.create_connection(address) as bodied:
            bodied.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            bodied.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\n")
            assert b"200 OK" in bodied.recv(4096)
            bodied.sendall(b"hello")  # the body, after the answer: not a head
            assert not _closed_within(bodied, 4 * HEAD_TIMEOUT)
            bodied.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
            assert b"200 OK" in bodied.recv(4096)


def test_the_head_deadline_reads_only_what_this_aiohttp_has() -> None:
    """install() falls back to aiohttp's behaviour, with a warning, when an
    upgrade drops what the deadline reads; this aiohttp has all of it."""
    assert missing_attributes(web_protocol.RequestHandler) == []

    class Bare:
        __slots__ = ("_loop",)

    assert missing_attributes(Bare) == ["_request_count", "_waiter"]


# -- signed URLs ---------------------------------------------------------

KEYS = ("new-key", "old-key")


@pytest.fixture
async def signed_client(make_client: MakeClient) -> Client:
    return await make_client(signing_keys=KEYS)


async def test_signed_urls_are_served_with_any_current_key(signed_client: Client) -> None:
    for key in KEYS:
        url = sign_url("/picture/rocket.jpg?w=100&format=webp", key)
        response = await signed_client.get(url)
        assert response.status == 200, await response.text()


@pytest.mark.parametrize(
    "target",
    [
        "/picture/rocket.jpg?w=100",  # no signature
        "/picture/rocket.jpg?w=100&s=AAAA",  # a wrong one
        "/picture/missing.jpg?w=100&s=AAAA",  # 403 even for a missing file
        "/picture/rocket.jpg?w=abc&s=AAAA",  # and before parameters are parsed
    ],
)
async def test_bad_signatures_are_403_before_anything_else(
    signed_client: Client, target: str
) -> None:
    response = await signed_client.get(target)
    assert response.status == 403
    assert (await response.json())["status"] == 403


async def test_a_signature_does_not_carry_over_to_other_parameters(signed_client: Client) -> None:
    url = sign_url("/picture/rocket.jpg?w=100", KEYS[0])
    tampered = url.replace("w=100", "w=1000")
    assert (await signed_client.get(tampered)).status == 403
    moved = url.replace("?w=100&s=", "?s=").replace("/picture", "/picture") + "&w=100"
    assert (await signed_client.get(moved)).status == 403  # s must be last
    other_key = sign_url("/picture/rocket.jpg?w=100", "retired-key")
    assert (await signed_client.get(other_key)).status == 403


async def test_without_a_key_s_is_ignored(client: Client) -> None:
    assert (await client.get("/picture/rocket.jpg?w=50&s=anything")).status == 200


def test_signature_is_over_the_raw_target() -> None:
    """Percent-encoding is signed as sent, and the path alone when nothing remains."""
    assert split_signature("/picture/a%20b.jpg?w=1&s=x") == ("/picture/a%20b.jpg?w=1", "x")
    assert split_signature("/picture/a.jpg?s=x") == ("/picture/a.jpg", "x")
    assert split_signature("/picture/a.jpg?s=x&w=1") == ("/picture/a.jpg?s=x&w=1", None)
    signed = sign_url("http://cdn.example/picture/a%20b.jpg?w=1", "k")
    assert signed.startswith("http://cdn.example/picture/a%20b.jpg?w=1&s=")
    assert verify(signed.removeprefix("http://cdn.example"), ["k"])
    assert not verify(signed.removeprefix("http://cdn.example").replace("%20", "+"), ["k"])
    assert signature("k", "/p") == signature("k", "/p")


def test_absolute_form_targets_verify_like_their_origin_form() -> None:
    assert origin_form("http://cdn.example:8080/picture/a%20b.jpg?w=1&s=x") == (
        "/picture/a%20b.jpg?w=1&s=x"
    )
    assert origin_form("HTTPS://cdn.example/p") == "/p"
    assert origin_form("http://cdn.example?w=1") == "/?w=1"
    assert origin_form("http://cdn.example") == "/"
    assert origin_form("/picture/http://x/a.jpg") == "/picture/http://x/a.jpg"  # origin form
    assert origin_form("/p?u=http://x/") == "/p?u=http://x/"


async def test_a_signed_url_in_absolute_form_is_served(signed_client: Client) -> None:
    """HTTP/1.1 servers must accept ``GET http://host/path``; its signature
    is over the path and query, as for the origin form."""
    server = signed_client.server
    target = sign_url("/picture/rocket.jpg?w=100", KEYS[0])
    absolute = f"http://{server.host}:{server.port}{target}"
    response = await raw_request(str(server.host), int(server.port or 0), absolute)
    assert response.status == 200, response.body
    assert response.headers["content-type"] == "image/jpeg"
    tampered = await raw_request(
        str(server.host), int(server.port or 0), absolute.replace("w=100", "w=101")
    )
    assert tampered.status == 403


def test_sign_command_prints_a_signed_url() -> None:
    env = {**os.environ, "IMAGE_FACTORY_SIGNING_KEY": "first,second"}
    result = subprocess.run(
        [sys.executable, "-m", "service", "sign", "/picture/rocket.jpg?w=100"],
        capture_output=True,
        text=True,
        check=True,
        env=env,
        cwd=ROOT,
    )
    printed = result.stdout.strip()
    assert printed == sign_url("/picture/rocket.jpg?w=100", "first")
    assert verify(printed, ["first"])
