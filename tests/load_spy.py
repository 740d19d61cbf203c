"""Which loads a render makes: the option strings of every
``pyvips.Image.new_from_source`` call (libvips' own ``thumbnail`` loads by
itself and is not seen), for a render of a file into /dev/null."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
import pyvips

from service.formats import OutputFormat
from service.render import (
    SERVICE_DEPTH,
    RenderPolicy,
    RenderRequest,
    ShrinkDepth,
    read_facts,
    render,
)


def render_loads(
    path: Path,
    request: RenderRequest,
    monkeypatch: pytest.MonkeyPatch,
    *,
    depth: ShrinkDepth = SERVICE_DEPTH,
) -> list[str]:
    """The option strings of the loads a JPEG-out render of ``path`` makes;
    the render must give the width asked."""
    loads: list[str] = []
    real = pyvips.Image.new_from_source

    def spy(source: pyvips.Source, options: str, **kwargs: Any) -> pyvips.Image:  # noqa: ANN401
        loads.append(options)
        return real(source, options, **kwargs)

    monkeypatch.setattr(pyvips.Image, "new_from_source", staticmethod(spy))
    policy = RenderPolicy(
        quality={OutputFormat.JPEG: 80},
        max_output_size=4096,
        max_source_pixels=10**9,
        avif_effort=0,
        jpeg_shrink_depth=depth,
    )
    source = os.open(path, os.O_RDONLY)
    target = os.open(os.devnull, os.O_WRONLY)
    try:
        result = render(policy, request, read_facts(source, allow_svg=False), source, target)
    finally:
        os.close(source)
        os.close(target)
    assert result.width == request.width
    return loads
