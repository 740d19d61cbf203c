"""Fuzzing through the real server: URLs, parameters and mutated images.

Only the statuses of the contract come back, the server stays up, and its
memory stays bounded.
"""

from __future__ import annotations

import http.client
import random
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from .conftest import CORPUS, SAMPLES
from .serving import peak_rss_mb, running_service

ROOT = Path(__file__).parent.parent
SEEDS = sorted(
    path.name
    for path in CORPUS.iterdir()
    if path.suffix in {".jpg", ".png", ".gif", ".webp", ".avif", ".tif"}
)


class Server:
    def __init__(self, port: int, originals: Path, process: subprocess.Popen[bytes]) -> None:
        self.port = port
        self.originals = originals
        self.process = process

    def get(self, target: str) -> int:
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)
        try:
            connection.request("GET", target)
            response = connection.getresponse()
            body = response.read()
            assert response.status < 500 or response.status in (503, 504), (target, body)
            if response.status >= 400:
                assert body.startswith(b'{"status": ')
            return response.status
        finally:
            connection.close()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    root = tmp_path_factory.mktemp("fuzz")
    originals = root / "originals"
    shutil.copytree(CORPUS, originals)
    for sample in SAMPLES.iterdir():
        shutil.copy(sample, originals / sample.name)
    arguments = ("--originals", str(originals), "--cache-dir", str(root / "cache"))
    with running_service(*arguments, "--cache-max-bytes", "20MB") as running:
        (worker,) = running.workers()
        yield Server(running.port, originals, running.process)
        assert running.process.poll() is None, "the supervisor died during fuzzing"
        # The supervisor replaces a crashed worker: the one that started
        # must be the one still serving, or a crash went unseen.
        assert running.workers() == {worker}, "a worker died during fuzzing"
        assert peak_rss_mb(worker) < 1200


NAMES = [
    "scalex",
    "w",
    "scaley",
    "h",
    "encoding",
    "format",
    "q",
    "quality",
    "fit",
    "gravity",
    "bg",
    "dpr",
    "preset",
    "s",
]
VALUES = st.one_of(
    st.text(max_size=12),
    st.from_regex(r"[0-9]{1,5}(\.[0-9]{1,3})?", fullmatch=True),
    st.sampled_from(
        [
            "jpeg",
            "webp",
            "avif",
            "png",
            "gif",
            "auto",
            "cover",
            "fill",
            "pad",
            "contain",
            "north",
            "attention",
            "ffffff",
            "00000080",
            "2",
            "4096",
        ]
    ),
)
PATHS = st.one_of(
    st.sampled_from(
        [
            "retina.jpg",
            "chelsea.png",
            "gif_animated_5f.gif",
            "png_1x1_palette.png",
            "../etc/passwd",
            "%2e%2e/x",
            ".hidden",
            "",
            "a/../../b",
        ]
    ),
    st.text(min_size=1, max_size=20),
)


@settings(max_examples=300, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    path=PATHS,
    pairs=st.lists(
        st.tuples(st.one_of(st.sampled_from(NAMES), st.text(max_size=6)), VALUES), max_size=5
    ),
)
def test_any_url_gets_a_contract_status(
    server: Server, path: str, pairs: list[tuple[str, str]]
) -> None:
    query = "&".join(f"{quote(name, safe='')}={quote(value, safe='')}" for name, value in pairs)
    target = "/picture/" + quote(path, safe="/%") + (f"?{query}" if query else "")
    assert server.get(target) in {200, 400, 404, 422}


def mutate(data: bytes, chooser: random.Random) -> bytes:
    kind = chooser.choice(["flip", "truncate", "shuffle", "splice"])
    if kind == "flip":
        mutated = bytearray(data)
        for _ in range(chooser.randint(1, 16)):
            position = chooser.randrange(len(mutated))
            mutated[position] ^= 1 << chooser.randrange(8)
        return bytes(mutated)
    if kind == "truncate":
        return data[: chooser.randrange(len(data))]
    if kind == "shuffle":
        size = max(1, len(data) // chooser.randint(4, 16))
        chunks = [data[i : i + size] for i in range(0, len(data), size)]
        head, rest = chunks[0], chunks[1:]  # keep the magic bytes: get past sniffing
        chooser.shuffle(rest)
        return head + b"".join(rest)
    other = (CORPUS / chooser.choice(SEEDS)).read_bytes()
    cut = chooser.randrange(len(data))
    return data[:cut] + other[chooser.randrange(len(other)) :]


@settings(max_examples=300, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    seed_name=st.sampled_from(SEEDS),
    seed=st.integers(0, 2**32 - 1),
    query=st.sampled_from(["w=64", "w=64&format=webp", "w=40&h=40&fit=cover&format=gif", ""]),
)
def test_mutated_images_get_200_or_422(
    server: Server, seed_name: str, seed: int, query: str
) -> None:
    chooser = random.Random(seed)  # noqa: S311 - reproducible mutations, not secrets
    data = mutate((CORPUS / seed_name).read_bytes(), chooser)
    name = f"mutant-{seed}-{seed_name}"
    (server.originals / name).write_bytes(data)
    assert server.get(f"/picture/{name}?{query}") in {200, 422}
