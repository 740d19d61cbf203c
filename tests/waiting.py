"""Waiting for a condition: poll it until it holds, or fail at a timeout.

The one way tests wait for something another thread or process does. A
wait either sees its condition hold or raises AssertionError: it never
ends quietly with the condition still false, and it never sleeps a fixed
time in place of checking.

A condition holds when it returns something truthy; that value is returned
(so a condition can hand over what it found). ``ignoring`` names
exceptions that mean "not yet" (a server still starting refuses the
connection); any other exception, an AssertionError included, ends the
wait at once.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import TypeVar, overload

T = TypeVar("T")

Message = str | Callable[[], str]

INTERVAL = 0.02


@overload
def eventually(
    condition: Callable[[], bool],
    timeout: float,
    *,
    interval: float = ...,
    message: Message = ...,
    ignoring: tuple[type[BaseException], ...] = ...,
) -> bool: ...
@overload
def eventually(
    condition: Callable[[], T | None],
    timeout: float,
    *,
    interval: float = ...,
    message: Message = ...,
    ignoring: tuple[type[BaseException], ...] = ...,
) -> T: ...
def eventually(
    condition: Callable[[], T | bool | None],
    timeout: float,
    *,
    interval: float = INTERVAL,
    message: Message = "the condition did not hold",
    ignoring: tuple[type[BaseException], ...] = (),
) -> T | bool:
    """Call ``condition`` every ``interval`` seconds until it returns a
    truthy value, and return that; AssertionError with ``message`` (a
    string, or a callable asked for one at the failure) once ``timeout``
    seconds have passed without it."""
    deadline = time.monotonic() + timeout
    while True:
        held, last_error = _poll(condition, ignoring)
        if held is not None:
            return held
        if time.monotonic() >= deadline:
            raise AssertionError(_failure(message, timeout, last_error))
        time.sleep(interval)  # polling a condition with a timeout, not a fixed wait


@overload
async def eventually_async(
    condition: Callable[[], bool],
    timeout: float,  # noqa: ASYNC109 - ends in AssertionError(message), not TimeoutError
    *,
    interval: float = ...,
    message: Message = ...,
    ignoring: tuple[type[BaseException], ...] = ...,
) -> bool: ...
@overload
async def eventually_async(
    condition: Callable[[], T | None],
    timeout: float,  # noqa: ASYNC109 - ends in AssertionError(message), not TimeoutError
    *,
    interval: float = ...,
    message: Message = ...,
    ignoring: tuple[type[BaseException], ...] = ...,
) -> T: ...
async def eventually_async(
    condition: Callable[[], T | bool | None],
    timeout: float,  # noqa: ASYNC109 - ends in AssertionError(message), not TimeoutError
    *,
    interval: float = INTERVAL,
    message: Message = "the condition did not hold",
    ignoring: tuple[type[BaseException], ...] = (),
) -> T | bool:
    """``eventually`` for a test on the event loop: the loop runs between polls."""
    deadline = time.monotonic() + timeout
    while True:
        held, last_error = _poll(condition, ignoring)
        if held is not None:
            return held
        if time.monotonic() >= deadline:
            raise AssertionError(_failure(message, timeout, last_error))
        await asyncio.sleep(interval)  # polling a condition with a timeout


def _poll(
    condition: Callable[[], T | bool | None], ignoring: tuple[type[BaseException], ...]
) -> tuple[T | bool | None, BaseException | None]:
    """The condition's value when it holds (else None), and the ignored error."""
    try:
        result = condition()
    except ignoring as error:
        return None, error
    return (result or None), None


def _failure(message: Message, timeout: float, last_error: BaseException | None) -> str:
    text = message if isinstance(message, str) else message()
    text = f"{text} (within {timeout:g} s)"
    if last_error is not None:
        text += f"; last: {last_error!r}"
    return text
