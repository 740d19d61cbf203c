"""The access log's lines leave in one write per turn of the event loop."""

from __future__ import annotations

import asyncio
import io
import logging

from service.server.access_log import LoopBatchedStream, batch_access_log


class CountingStream(io.StringIO):
    """Counts the writes it is given."""

    def __init__(self) -> None:
        super().__init__()
        self.writes = 0

    def write(self, text: str) -> int:
        self.writes += 1
        return super().write(text)


async def test_the_lines_of_one_turn_are_one_write() -> None:
    target = CountingStream()
    stream = LoopBatchedStream(target)
    for number in range(5):
        stream.write(f"line {number}\n")
        stream.flush()
    assert target.writes == 0  # held until the turn ends
    await asyncio.sleep(0)  # one turn of the loop: its callbacks run
    assert target.writes == 1
    assert target.getvalue() == "".join(f"line {number}\n" for number in range(5))


def test_without_a_loop_a_line_is_written_at_once() -> None:
    target = CountingStream()
    LoopBatchedStream(target).write("alone\n")
    assert target.getvalue() == "alone\n"


async def test_what_is_pending_is_written_by_drain() -> None:
    target = CountingStream()
    stream = LoopBatchedStream(target)
    stream.write("last\n")
    stream.drain()  # as serve() does once the loop has stopped
    assert target.getvalue() == "last\n"


async def test_the_access_logger_keeps_the_root_format() -> None:
    root = logging.getLogger()
    saved_handlers, logger = root.handlers[:], logging.getLogger("test.access.batched")
    handler = logging.StreamHandler(io.StringIO())
    handler.setFormatter(logging.Formatter("FORMATTED %(message)s"))
    root.handlers[:] = [handler]
    target = CountingStream()
    try:
        stream = batch_access_log(logger, target)
        assert stream is not None
        logger.warning("one request")
        stream.drain()
    finally:
        root.handlers[:] = saved_handlers
        logger.handlers.clear()
        logger.propagate = True
    assert target.getvalue() == "FORMATTED one request\n"
