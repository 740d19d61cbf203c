"""Over HTTP: one entry per distinct output, the width ladder,
Content-Location and client hints, with the real service and cache."""

from __future__ import annotations

import pytest
from prometheus_client.parser import text_string_to_metric_families

from service.signing import sign_url

from .conftest import Client, MakeClient, decode

LADDER = (320, 640, 960, 1280, 1920, 2560)
# retina.jpg is 1411 x 1411: between two steps.
RETINA_WIDTH = 1411


async def renders_total(client: Client) -> float:
    """Renders so far, as /metrics says."""
    exposition = await (await client.get("/metrics")).text()
    for family in text_string_to_metric_families(exposition):
        for sample in family.samples:
            if sample.name == "image_factory_renders_total":
                return float(sample.value)
    raise AssertionError("no image_factory_renders_total in /metrics")


async def width_of(client: Client, url: str, **headers: str) -> int:
    response = await client.get(url, headers=headers)
    assert response.status == 200, await response.text()
    return decode(await response.read()).size[0]


async def test_widths_past_the_original_are_one_entry_and_one_render(client: Client) -> None:
    before = await renders_total(client)
    etags = set()
    for query in ("w=2000", "w=4000", "w=1411", "", "w=3000&format=jpeg"):
        response = await client.get(f"/picture/retina.jpg?{query}")
        assert response.status == 200
        assert decode(await response.read()).size == (1411, 1411)
        etags.add(response.headers["ETag"])
    assert await renders_total(client) == before + 1
    assert len(etags) == 1


async def test_the_originals_own_format_named_is_the_same_entry(client: Client) -> None:
    before = await renders_total(client)
    plain = await client.get("/picture/rocket.jpg?w=77")
    named = await client.get("/picture/rocket.jpg?w=77&format=jpeg&q=80")
    assert (plain.status, named.status) == (200, 200)
    assert named.headers["X-Cache"] == "HIT"
    assert await plain.read() == await named.read()
    assert await renders_total(client) == before + 1


@pytest.mark.parametrize(
    ("query", "width"),
    [
        ("w=100", 320),
        ("w=320", 320),  # at a step
        ("w=321", 640),  # between steps: up
        ("w=960", 960),
        ("w=1281", RETINA_WIDTH),  # the next step is past the original
        ("w=2600", RETINA_WIDTH),
        ("h=100", 320),  # by the width it would produce
        ("w=200&dpr=2", 640),
        ("w=500&h=250&fit=cover", 640),
    ],
)
async def test_the_ladder_snaps_up_and_stops_at_the_original(
    make_client: MakeClient, query: str, width: int
) -> None:
    client = await make_client(widths=LADDER)
    assert await width_of(client, f"/picture/retina.jpg?{query}") == width


async def test_content_location_names_the_output_served(make_client: MakeClient) -> None:
    client = await make_client(widths=LADDER)
    first = await client.get("/picture/retina.jpg?w=500&format=webp")
    assert first.status == 200
    assert first.headers["Content-Location"] == "/picture/retina.jpg?w=640&format=webp"
    again = await client.get(first.headers["Content-Location"])
    assert again.headers["X-Cache"] == "HIT"
    assert again.headers["ETag"] == first.headers["ETag"]
    box = await client.get("/picture/retina.jpg?w=500&h=250&fit=cover")
    assert box.headers["Content-Location"] == "/picture/retina.jpg?w=640&h=320&fit=cover"


async def test_content_location_is_signed_when_signing_is_on(make_client: MakeClient) -> None:
    client = await make_client(widths=LADDER, signing_keys=("secret",))
    response = await client.get(sign_url("/picture/rocket.jpg?w=300", "secret"))
    assert response.status == 200
    location = response.headers["Content-Location"]
    assert location.startswith("/picture/rocket.jpg?w=320&s=")
    assert (await client.get(location)).status == 200


async def test_ladder_steps_render_once_for_the_widths_between(make_client: MakeClient) -> None:
    client = await make_client(widths=LADDER)
    before = await renders_total(client)
    for width in range(641, 961, 40):
        assert await width_of(client, f"/picture/retina.jpg?w={width}") == 960
    assert await renders_total(client) == before + 1


async def test_a_ladder_w_may_accompany_a_preset(make_client: MakeClient) -> None:
    presets = {"card": (("w", "400"), ("h", "300"), ("fit", "cover"))}
    client = await make_client(widths=LADDER, presets=presets, presets_only=True)
    response = await client.get("/picture/retina.jpg?preset=card&w=900")
    assert response.status == 200
    assert decode(await response.read()).size == (960, 720)
    refused = await client.get("/picture/retina.jpg?w=900")
    assert refused.status == 400
    assert "preset" in await refused.text()


@pytest.mark.parametrize(
    ("headers", "width"),
    [
        ({"Sec-CH-Width": "500"}, 640),
        ({"Width": "500"}, 640),
        ({"Sec-CH-Width": "500", "Sec-CH-DPR": "2"}, 640),  # device pixels already
        ({"Sec-CH-Width": "700", "Width": "100"}, 960),  # Sec-CH- first
    ],
)
async def test_client_hints_size_a_request_without_w(
    make_client: MakeClient, headers: dict[str, str], width: int
) -> None:
    client = await make_client(widths=LADDER, client_hints=True)
    assert await width_of(client, "/picture/retina.jpg", **headers) == width


async def test_a_dpr_hint_multiplies_the_urls_width_and_is_snapped(
    make_client: MakeClient,
) -> None:
    client = await make_client(widths=LADDER, client_hints=True)
    assert await width_of(client, "/picture/retina.jpg?w=300", **{"Sec-CH-DPR": "2"}) == 640
    assert await width_of(client, "/picture/retina.jpg?w=300", DPR="3") == 960
    # The URL's dpr wins over the hint.
    assert await width_of(client, "/picture/retina.jpg?w=300&dpr=1", DPR="3") == 320


@pytest.mark.parametrize(
    "headers",
    [
        {"Sec-CH-Width": "abc"},
        {"Sec-CH-Width": "-500"},
        {"Sec-CH-Width": "0"},
        {"Width": "1e3"},
        {"Sec-CH-DPR": "two"},
        {"DPR": "nan"},
        {"Sec-CH-Width": "5" * 40},
    ],
)
async def test_malformed_hints_are_ignored(
    make_client: MakeClient, headers: dict[str, str]
) -> None:
    client = await make_client(widths=LADDER, client_hints=True)
    assert await width_of(client, "/picture/retina.jpg?w=300", **headers) == 320


async def test_a_hinted_dpr_past_the_limit_is_cut_not_refused(make_client: MakeClient) -> None:
    client = await make_client(widths=LADDER, client_hints=True, max_output_size=2560)
    assert await width_of(client, "/picture/retina.jpg?w=2000", DPR="4") == RETINA_WIDTH


async def test_hinted_deployments_ask_for_hints_and_vary_by_them(
    make_client: MakeClient,
) -> None:
    client = await make_client(widths=LADDER, client_hints=True)
    for headers in ({}, {"Sec-CH-Width": "500"}):
        response = await client.get("/picture/rocket.jpg?format=auto", headers=headers)
        assert response.status == 200
        assert "Sec-CH-Width" in response.headers["Accept-CH"]
        varies = {item.strip() for item in response.headers["Vary"].split(",")}
        assert {"Accept", "Sec-CH-Width", "Sec-CH-DPR", "Width", "DPR"} <= varies


async def test_without_the_flag_hints_are_ignored(make_client: MakeClient) -> None:
    client = await make_client(widths=LADDER)
    response = await client.get("/picture/retina.jpg", headers={"Sec-CH-Width": "500"})
    assert decode(await response.read()).size[0] == RETINA_WIDTH
    assert "Accept-CH" not in response.headers
