"""The tests' one way to wait: a condition holds in time, or the test fails."""

from __future__ import annotations

import asyncio
import itertools
import time

import pytest

from .waiting import eventually, eventually_async


def test_eventually_returns_what_the_condition_found() -> None:
    calls = itertools.count(1)

    def third_call() -> int | None:
        call = next(calls)
        return call if call >= 3 else None

    assert eventually(third_call, 5, interval=0) == 3


def test_eventually_fails_with_its_message_once_the_timeout_passes() -> None:
    started = time.monotonic()
    with pytest.raises(AssertionError, match=r"never true \(within 0.1 s\)"):
        eventually(lambda: False, 0.1, message="never true")
    assert time.monotonic() - started >= 0.1


def test_eventually_asks_a_callable_message_only_at_the_failure() -> None:
    asked: list[bool] = []

    def message() -> str:
        asked.append(True)
        return "late words"

    assert eventually(lambda: True, 5, message=message)
    assert asked == []
    with pytest.raises(AssertionError, match="late words"):
        eventually(lambda: None, 0.05, message=message)
    assert asked == [True]


def test_eventually_ignores_only_the_named_exceptions() -> None:
    attempts = itertools.count(1)

    def refused_twice() -> bool:
        if next(attempts) <= 2:
            raise ConnectionRefusedError
        return True

    assert eventually(refused_twice, 5, interval=0, ignoring=(ConnectionError,))
    with pytest.raises(AssertionError, match="ConnectionRefusedError"):  # the last one, reported
        eventually(refused_twice_forever, 0.05, ignoring=(ConnectionError,))
    with pytest.raises(ValueError, match="not waited out"):
        eventually(broken, 5, ignoring=(ConnectionError,))


def refused_twice_forever() -> bool:
    raise ConnectionRefusedError


def broken() -> bool:
    raise ValueError("not waited out")


def test_eventually_stops_at_a_failing_assertion_in_the_condition() -> None:
    calls = itertools.count(1)

    def process_died() -> bool:
        next(calls)
        raise AssertionError("the service exited")

    with pytest.raises(AssertionError, match="the service exited"):
        eventually(process_died, 5)
    assert next(calls) == 2  # called once, not polled to the timeout


async def test_eventually_async_lets_the_loop_run_between_polls() -> None:
    done = asyncio.Event()
    asyncio.get_running_loop().call_later(0.05, done.set)
    assert await eventually_async(done.is_set, 5)
    with pytest.raises(AssertionError, match="still unset"):
        await eventually_async(asyncio.Event().is_set, 0.05, message="still unset")
