"""/srcset: candidates up to the original's width, each answering with its
width, a ready <img>, signing."""

from __future__ import annotations

import html
import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest

from service.settings import bundled_samples
from service.signing import sign_url

from .conftest import Client, MakeClient, decode

LADDER = (320, 640, 960, 1280, 1920, 2560)
SAMPLES = bundled_samples()


async def srcset_of(client: Client, url: str) -> dict[str, Any]:
    response = await client.get(url)
    assert response.status == 200, await response.text()
    answer: dict[str, Any] = await response.json()
    return answer


async def assert_every_candidate_answers_its_size(client: Client, answer: dict[str, Any]) -> None:
    candidates = answer["candidates"]
    assert isinstance(candidates, list)
    for candidate in candidates:
        response = await client.get(candidate["url"])
        assert response.status == 200, candidate
        assert decode(await response.read()).size == (candidate["width"], candidate["height"])


@pytest.mark.parametrize("widths", [LADDER, ()])  # --widths, or the example ladder
async def test_candidates_stop_at_the_originals_width(
    make_client: MakeClient, widths: tuple[int, ...]
) -> None:
    client = await make_client(widths=widths)
    # retina.jpg is 1411 px wide: 320 ... 1280, then its own width.
    answer = await srcset_of(client, "/srcset/retina.jpg?format=webp")
    assert [c["width"] for c in answer["candidates"]] == [320, 640, 960, 1280, 1411]
    assert answer["srcset"] == ", ".join(
        f"/picture/retina.jpg?w={width}&format=webp {width}w"
        for width in (320, 640, 960, 1280, 1411)
    )
    await assert_every_candidate_answers_its_size(client, answer)


async def test_a_narrow_original_has_one_candidate_its_own(client: Client) -> None:
    answer = await srcset_of(client, "/srcset/chelsea.png")  # 451 x 300
    assert [(c["width"], c["height"]) for c in answer["candidates"]] == [(320, 213), (451, 300)]
    assert answer["src"] == "/picture/chelsea.png?w=451"
    assert (answer["width"], answer["height"]) == (451, 300)


async def test_a_box_keeps_its_aspect_at_every_width(make_client: MakeClient) -> None:
    client = await make_client(widths=LADDER)
    answer = await srcset_of(client, "/srcset/retina.jpg?w=4&h=3&fit=cover")
    sizes = [(c["width"], c["height"]) for c in answer["candidates"]]
    assert sizes == [(320, 240), (640, 480), (960, 720), (1280, 960), (1411, 1058)]
    await assert_every_candidate_answers_its_size(client, answer)


async def test_the_img_element_is_complete_and_escaped(client: Client) -> None:
    alt = 'a "rocket" <launch> & co'
    query = urlencode({"sizes": "(min-width: 800px) 50vw, 100vw", "alt": alt})
    answer = await srcset_of(client, f"/srcset/rocket.jpg?{query}")
    element = answer["html"]
    assert isinstance(element, str)
    assert element.startswith("<img ")
    assert element.endswith(">")
    attributes = dict(re.findall(r'(\w+)="([^"]*)"', element))
    assert html.unescape(attributes["alt"]) == alt
    assert "<launch>" not in element
    assert attributes["loading"] == "lazy"
    assert attributes["decoding"] == "async"
    assert (attributes["width"], attributes["height"]) == ("640", "427")
    assert html.unescape(attributes["sizes"]) == "(min-width: 800px) 50vw, 100vw"
    assert html.unescape(attributes["srcset"]) == answer["srcset"]


async def test_with_signing_it_is_signed_and_so_are_its_urls(make_client: MakeClient) -> None:
    client = await make_client(signing_keys=("secret",))
    assert (await client.get("/srcset/rocket.jpg")).status == 403
    answer = await srcset_of(client, sign_url("/srcset/rocket.jpg?format=webp", "secret"))
    for candidate in answer["candidates"]:
        assert "&s=" in candidate["url"]
    await assert_every_candidate_answers_its_size(client, answer)


@pytest.mark.parametrize(
    ("query", "status"),
    [
        ("w=abc", 400),
        ("alt=a&alt=b", 400),
        ("sizes=" + "x" * 1001, 400),
        ("nonsense=1", 400),
        ("preset=thumb", 400),  # no ladder: a preset takes no w
        ("trim=10", 400),  # its sizes are known only from its pixels
    ],
)
async def test_bad_parameters_are_400s(client: Client, query: str, status: int) -> None:
    response = await client.get(f"/srcset/rocket.jpg?{query}")
    assert response.status == status
    assert "error" in await response.json()


async def test_a_missing_original_is_a_404(client: Client) -> None:
    assert (await client.get("/srcset/nope.jpg")).status == 404


async def test_a_preset_on_a_ladder_scales_with_each_step(make_client: MakeClient) -> None:
    presets = {"card": (("w", "400"), ("h", "300"), ("fit", "cover"))}
    client = await make_client(widths=LADDER, presets=presets, presets_only=True)
    answer = await srcset_of(client, "/srcset/retina.jpg?preset=card")
    sizes = [(c["width"], c["height"]) for c in answer["candidates"]]
    assert sizes[:3] == [(320, 240), (640, 480), (960, 720)]
    await assert_every_candidate_answers_its_size(client, answer)


def test_the_cli_prints_what_the_endpoint_answers(tmp_path: Path) -> None:
    command = [sys.executable, "-m", "service", "srcset", "rocket.jpg"]
    command += ["--query", "format=webp&alt=A rocket", "--originals", str(SAMPLES)]
    command += ["--cache-dir", str(tmp_path / "cache"), "--signing-key", "secret"]
    done = subprocess.run(command, capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    answer = json.loads(done.stdout)
    assert [c["width"] for c in answer["candidates"]] == [320, 640]
    assert answer["src"].startswith("/picture/rocket.jpg?w=640&format=webp&s=")
    assert 'alt="A rocket"' in answer["html"]
    missing = subprocess.run(
        [*command[:4], "nope.jpg", *command[5:]],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert missing.returncode == 1
    assert "404" in missing.stderr


async def test_the_placeholder_is_infos_and_shows_behind_the_img(client: Client) -> None:
    answer = await srcset_of(client, "/srcset/rocket.jpg")
    info = await (await client.get("/info/rocket.jpg")).json()
    assert answer["placeholder"] == info["placeholder"]
    assert answer["placeholder"].startswith("data:image/")
    attributes = dict(re.findall(r'(\w+)="([^"]*)"', answer["html"]))
    assert answer["placeholder"] in html.unescape(attributes["style"])
