"""The parent's side of ``benchmarks.libcost``'s handshake over a child's
stdin and stdout (``--handshake-variants``, ``--start-on-stdin``): the child
warms up, says ``ready``, and renders once it reads a line."""

from __future__ import annotations

import select
from typing import IO


def read_line(stream: IO[str], timeout: float) -> str:
    """A line from a child's stdout, or TimeoutError: a child that hangs
    must not hang the benchmark."""
    ready, _, _ = select.select([stream], [], [], timeout)
    if not ready:
        raise TimeoutError(f"no answer from the render loop in {timeout:g} s")
    return stream.readline()


def expect_line(line: str, wanted: str, side: str) -> None:
    if line.strip() != wanted:
        raise RuntimeError(f"{side}: expected {wanted!r} from the render loop, got {line!r}")
