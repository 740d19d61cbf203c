"""``GET /srcset/<path>?<parameters>&sizes=…&alt=…``: a responsive image's
candidates and a ready ``<img>``.

Signed like ``/picture`` when signing is on: it hands out signed URLs, so
an unsigned one would sign any parameters for anyone. The candidates are
the canonical URLs ``/picture`` names its outputs by (server/canonical_url),
one per step of ``--widths`` (without it, the example ladder) up to the
widest the original allows.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from functools import partial

from aiohttp import web

from ..canonical import Canonical, OriginalFacts, canonical
from ..errors import BadRequest
from ..header_memo import output_facts_of
from ..ladder import EXAMPLE_WIDTHS, Ladder
from ..negotiate import choose_format
from ..settings import Settings
from ..spec import RequestSpec, parse_spec
from ..srcset import DEFAULT_SIZES, Srcset, candidates
from . import state
from .canonical_url import url_for
from .handlers import check_signature, original_of, target_of, url_and_parameters
from .info import document

# The page's own attributes, not the image's: bounded, as any text we echo.
_TEXT_PARAMETERS = ("sizes", "alt")
_MAX_TEXT = 1000


async def srcset(request: web.Request) -> web.Response:
    app = request.app
    settings = state.settings(app)
    check_signature(request)
    url, parameters = url_and_parameters(request)
    texts = _texts(parameters)
    image_parameters = [
        (name, value) for name, value in parameters if name not in (*_TEXT_PARAMETERS, "s")
    ]
    if not settings.widths and any(name == "preset" for name, _ in image_parameters):
        raise BadRequest("srcset: a preset takes a w only on a width ladder (--widths)")
    base = _spec(image_parameters, settings, state.overlay_fingerprints(app))
    target = target_of(request, url)
    resolve, facts = await original_of(request, target)
    if facts is None:
        allow_svg = settings.enable_svg
        facts = await state.renders(app).to_thread(
            lambda: output_facts_of(resolve(), allow_svg=allow_svg)
        )
    ladder = Ladder(settings.widths or EXAMPLE_WIDTHS)
    picture_path = "/picture" + request.raw_path.partition("?")[0].removeprefix("/srcset")
    # A URL source's candidates name it too (/picture?w=…&url=…).
    source = [] if url is None else [("url", str(url))]
    try:
        found = candidates(
            image_parameters,
            base,
            ladder,
            partial(
                _canonical_of,
                settings=settings,
                overlays=state.overlay_fingerprints(app),
                facts=facts,
                ladder=ladder,
            ),
            lambda step, wanted: url_for(
                picture_path, source + list(step), wanted, settings.signing_keys
            ),
        )
    except ValueError as error:
        raise BadRequest(f"srcset: {error}") from None
    # /info's placeholder: its document is cached like a variant.
    _, computed = await document(request, target, None)
    assert computed is not None  # no If-None-Match to answer
    placeholder = json.loads(computed.body)["placeholder"]
    answer = Srcset(
        found,
        sizes=texts["sizes"] or DEFAULT_SIZES,
        alt=texts["alt"] or "",
        placeholder=placeholder,
    )
    return web.json_response(answer.to_json(), headers={"Cache-Control": "no-cache"})


def _texts(parameters: Sequence[tuple[str, str]]) -> dict[str, str | None]:
    texts: dict[str, str | None] = dict.fromkeys(_TEXT_PARAMETERS)
    for name, value in parameters:
        if name not in texts:
            continue
        if texts[name] is not None:
            raise BadRequest(f"{name} is given twice")
        if len(value) > _MAX_TEXT:
            raise BadRequest(f"{name} must be at most {_MAX_TEXT} characters")
        texts[name] = value
    return texts


def _spec(
    parameters: Sequence[tuple[str, str]], settings: Settings, overlays: dict[str, str]
) -> RequestSpec:
    """Image parameters as /picture parses them (the same 400s)."""
    return parse_spec(
        parameters,
        max_output_size=settings.max_output_size,
        presets=settings.presets,
        presets_only=settings.presets_only,
        overlays=overlays,
        default_overlay=settings.default_overlay,
        ladder=bool(settings.widths),
    )


def _canonical_of(
    parameters: Sequence[tuple[str, str]],
    *,
    settings: Settings,
    overlays: dict[str, str],
    facts: OriginalFacts,
    ladder: Ladder,
) -> Canonical:
    spec = _spec(parameters, settings, overlays)
    choice = choose_format(spec.format, spec.auto_format, "")
    return canonical(spec, choice, facts, max_output_size=settings.max_output_size, ladder=ladder)
