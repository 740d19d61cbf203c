"""Check at start-up that an operator's image (--fallback-image) renders.

Run as ``python -m service.render.check PATH [--enable-svg]`` by the command
line before it supervises: the supervisor never loads libvips, so the check
runs in a process of its own. It renders a small thumbnail of the whole
image, so a file that only fails in the middle of its pixels is refused at
start, not at the first request that needs it. Exit status 0, or 2 with the
one-line reason on stderr.
"""

from __future__ import annotations

import argparse
import os
import sys

from ..errors import UnprocessableImage
from ..formats import OutputFormat
from .header import read_facts
from .libvips import configure_libvips
from .pipeline import render
from .request import RenderPolicy, RenderRequest

_CHECK_SIZE = 64


def check_image(path: str, *, allow_svg: bool, max_source_pixels: int) -> str | None:
    """None when ``path`` renders; else why not, in one line."""
    try:
        source = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except OSError as error:
        return f"cannot open {path!r}: {error.strerror}"
    try:
        facts = read_facts(source, allow_svg=allow_svg)
        policy = RenderPolicy(
            quality={fmt: 80 for fmt in OutputFormat},
            max_output_size=_CHECK_SIZE,
            max_source_pixels=max_source_pixels,
            avif_effort=0,
            allow_svg=allow_svg,
        )
        request = RenderRequest(_CHECK_SIZE, _CHECK_SIZE, OutputFormat.PNG, (255, 255, 255, 255))
        with open(os.devnull, "wb") as sink:
            render(policy, request, facts, source, sink.fileno())
    except UnprocessableImage as refusal:
        return f"{path!r} cannot be rendered: {refusal.message}"
    finally:
        os.close(source)
    return None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m service.render.check")
    parser.add_argument("path")
    parser.add_argument("--enable-svg", action="store_true")
    parser.add_argument("--max-source-pixels", type=int, default=100_000_000)
    args = parser.parse_args(argv)
    configure_libvips(enable_svg=args.enable_svg)
    reason = check_image(
        args.path, allow_svg=args.enable_svg, max_source_pixels=args.max_source_pixels
    )
    if reason is not None:
        print(reason, file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
