"""The parent's side of ``benchmarks.libcost``'s handshake over a child's
stdin and stdout (``--handshake-variants``, ``--start-on-stdin``): the child
warms up, says ``ready``, and renders once it reads a line."""

from __future__ import annotations

import contextlib
import select
import subprocess
from collections.abc import Iterator, Mapping, Sequence
from typing import IO


@contextlib.contextmanager
def ready_child(
    argv: Sequence[str], *, cwd: str, env: Mapping[str, str], side: str, timeout: float
) -> Iterator[subprocess.Popen[str]]:
    """Start ``argv`` with piped stdin and stdout, wait for its ``ready``,
    and hand it over; kill it if anything fails meanwhile, so that a child
    that hangs or errs never outlives the benchmark."""
    with subprocess.Popen(
        list(argv), cwd=cwd, env=dict(env), stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    ) as process:
        try:
            expect_line(read_line(_stdout(process), timeout), "ready", side)
            yield process
        except BaseException:
            process.kill()
            raise


def tell(process: subprocess.Popen[str], line: str) -> None:
    """Write one line to the child (``go``, ``end``)."""
    assert process.stdin is not None
    process.stdin.write(line + "\n")
    process.stdin.flush()


def answer(process: subprocess.Popen[str], timeout: float) -> str:
    """The child's next line, or TimeoutError after ``timeout`` seconds."""
    return read_line(_stdout(process), timeout)


def _stdout(process: subprocess.Popen[str]) -> IO[str]:
    assert process.stdout is not None
    return process.stdout


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
