"""Shared fixtures: a real app on loopback over a real originals directory
and a real disk cache in a temporary directory."""

from __future__ import annotations

import csv
import errno
import io
import ipaddress
import os
import shutil
import socket
import subprocess
import tempfile
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient
from hypothesis import settings as hypothesis_settings
from PIL import Image

from service.server.app import create_app
from service.server.state import METRICS
from service.settings import Settings

from .origin_server import Origin, start_origin

# Shared 2-core machines: per-example deadlines only measure the noise.
hypothesis_settings.register_profile("ci", deadline=None, print_blob=True)
hypothesis_settings.load_profile("ci")

TESTS = Path(__file__).parent
CORPUS = TESTS / "corpus" / "conformance"
SAMPLES = TESTS.parent / "service" / "samples"

Client = TestClient[web.Request, web.Application]
MakeClient = Callable[..., Awaitable[Client]]


@dataclass(frozen=True)
class CorpusImage:
    name: str
    expected: str
    width: int  # as stored, before orientation; per frame for animations
    height: int

    @property
    def path(self) -> Path:
        return CORPUS / self.name

    @property
    def may_be_refused(self) -> bool:
        """The manifest allows a clean 415/422 for this one."""
        return "415" in self.expected or "422" in self.expected


def corpus_images() -> list[CorpusImage]:
    with open(CORPUS / "MANIFEST.tsv", newline="") as handle:
        rows = list(csv.DictReader(handle, delimiter="\t"))
    return [
        CorpusImage(row["file"], row["expected behaviour"], int(row["width"]), int(row["height"]))
        for row in rows
    ]


def _loopback_only_getaddrinfo(real: Callable[..., Any]) -> Callable[..., Any]:
    """getaddrinfo for numeric hosts and ``localhost`` (from /etc/hosts) only:
    a test that would send a DNS query (a fetcher bug, a name a test did not
    mean to resolve) gets "no such name" instead of asking a server."""

    def resolve(host: object, *args: object, **kwargs: object) -> Any:  # noqa: ANN401
        name = host.decode() if isinstance(host, bytes) else host
        if name is None or not isinstance(name, str) or _resolves_locally(name):
            return real(host, *args, **kwargs)
        raise socket.gaierror(socket.EAI_NONAME, f"the tests resolve loopback names only: {name}")

    return resolve


def _resolves_locally(name: str) -> bool:
    if name.lower() == "localhost":
        return True
    try:
        socket.inet_aton(name)  # glibc reads these forms itself, without DNS
        return True
    except (OSError, ValueError):
        pass
    try:
        ipaddress.ip_address(name.partition("%")[0])
        return True
    except ValueError:
        return False


def _loopback_only_connect(real: Callable[..., Any]) -> Callable[..., Any]:
    """socket.connect that refuses any Internet address off this machine."""

    def connect(sock: socket.socket, address: Any) -> Any:  # noqa: ANN401
        if sock.family in (socket.AF_INET, socket.AF_INET6):
            host = str(address[0]).partition("%")[0]
            if not ipaddress.ip_address(host).is_loopback:
                raise OSError(errno.ENETUNREACH, f"the tests connect to loopback only: {host}")
        return real(sock, address)

    return connect


@pytest.fixture(autouse=True)
def only_this_machine(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every test: DNS only for loopback names, connections only to loopback
    (the service processes tests start are given loopback origins only)."""
    monkeypatch.setattr(socket, "getaddrinfo", _loopback_only_getaddrinfo(socket.getaddrinfo))
    monkeypatch.setattr(socket.socket, "connect", _loopback_only_connect(socket.socket.connect))
    monkeypatch.setattr(
        socket.socket, "connect_ex", _loopback_only_connect(socket.socket.connect_ex)
    )


@pytest.fixture
async def origin(tmp_path: Path) -> AsyncIterator[Origin]:
    """A real HTTP origin on loopback (tests/origin_server.py) serving the
    bundled samples and a text file that is no image."""
    root = tmp_path / "remote"
    root.mkdir()
    for sample in SAMPLES.iterdir():
        shutil.copy(sample, root / sample.name)
    (root / "notes.txt").write_text("not an image at all, just some words\n" * 4)
    async for running in start_origin(root):
        yield running


@pytest.fixture
def remote_settings(tmp_path: Path, origin: Origin) -> Settings:
    """The service reading every original from ``origin`` (its root)."""
    return Settings(
        originals=origin.url("/"),
        originals_given=True,
        cache_dir=str(tmp_path / "cache"),
        concurrency=2,
        origin_timeout=2.0,
        origin_connect_timeout=1.0,
        mezzanine=False,  # as in ``settings``
    )


@pytest.fixture
def originals(tmp_path: Path) -> Path:
    """A fresh originals directory holding the whole corpus and the samples."""
    root = tmp_path / "originals"
    shutil.copytree(CORPUS, root)
    for sample in SAMPLES.iterdir():
        shutil.copy(sample, root / sample.name)
    return root


@pytest.fixture
def settings(tmp_path: Path, originals: Path) -> Settings:
    """The defaults but for the mezzanine, off: pixel tests compare two
    renders of one original, and with it (the default) the second is
    resized from the mezzanine, a resampling apart from the direct one.
    tests/test_mezzanine.py tests it, and the two paths against each other."""
    return Settings(
        originals=str(originals),
        cache_dir=str(tmp_path / "cache"),
        concurrency=2,
        mezzanine=False,
    )


@pytest.fixture
async def make_client(
    aiohttp_client: Callable[..., Awaitable[Client]], settings: Settings
) -> MakeClient:
    async def make(**overrides: object) -> Client:
        return await aiohttp_client(create_app(replace(settings, **overrides)))  # type: ignore[arg-type]

    return make


@pytest.fixture
async def client(make_client: MakeClient) -> Client:
    return await make_client()


def renders_total(client: Client) -> float:
    """The renders the client's app has completed (its own registry)."""
    value = client.app[METRICS].registry.get_sample_value("image_factory_renders_total")
    assert value is not None
    return value


def decode(body: bytes) -> Image.Image:
    """Decode a response body with Pillow (independent of libvips)."""
    image = Image.open(io.BytesIO(body))
    image.load()
    return image


def upright_size(path: Path) -> tuple[int, int]:
    """The original's display size: EXIF orientations 5-8 swap the axes."""
    import pyvips  # noqa: PLC0415 - only the tests that need it pay for it

    header = pyvips.Image.new_from_file(os.fspath(path), access="sequential")
    orientation = header.get("orientation") if "orientation" in header.get_fields() else 1
    width, height = header.width, header.height
    return (height, width) if orientation in (5, 6, 7, 8) else (width, height)


def original_has_alpha(path: Path) -> bool:
    import pyvips  # noqa: PLC0415

    return bool(pyvips.Image.new_from_file(os.fspath(path), access="sequential").hasalpha())


@pytest.fixture
def tiny_filesystem(tmp_path: Path) -> Iterator[Path]:
    """A 2 MiB tmpfs: a really full filesystem, not a simulated one."""
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root (CI runs as root)")
    mount_point = tmp_path / "tiny"
    mount_point.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(mount_point)], check=True)
    try:
        yield mount_point
    finally:
        subprocess.run(["umount", "-l", str(mount_point)], check=True)


def fill(path: Path) -> None:
    """Write zeros to ``path`` until its filesystem has no space left."""
    with open(path, "wb") as handle:
        try:
            while True:
                handle.write(b"\0" * 65536)
                handle.flush()
        except OSError:
            pass  # the disk is full


@pytest.fixture
def fallback_root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """$TMPDIR for this test: where spills must not go unless the cache volume cannot be written."""
    root = tmp_path / "tmpdir"
    root.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(root))
    return root
