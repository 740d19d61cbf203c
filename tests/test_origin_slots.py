"""The per-host download slots and the process's bound on downloads."""

from __future__ import annotations

import asyncio
import contextlib

import pytest

from service.errors import Overloaded
from service.origins.slots import HostSlots


async def test_a_host_gets_at_most_its_slots_and_the_rest_wait() -> None:
    """With one slot per host, a second download of that host waits; another host's does not."""
    slots = HostSlots(per_host=1, waiting=4)
    async with contextlib.AsyncExitStack() as held:
        await held.enter_async_context(slots.slot("a"))
        waiting = asyncio.ensure_future(held.enter_async_context(slots.slot("a")))
        await held.enter_async_context(slots.slot("b"))  # at once: another host
        await asyncio.sleep(0)
        assert not waiting.done()
    waiting.cancel()


async def test_past_the_waiting_bound_a_download_is_refused() -> None:
    """More waiters than --queue allows: Overloaded (a 503) at once."""
    slots = HostSlots(per_host=1, waiting=1)
    async with slots.slot("a"):
        first = asyncio.ensure_future(slots.slot("a").__aenter__())
        await asyncio.sleep(0)
        with pytest.raises(Overloaded):
            await slots.slot("a").__aenter__()
        first.cancel()


async def test_downloads_over_all_hosts_are_bounded() -> None:
    """Many hosts at once cannot open more downloads than the process's bound."""
    slots = HostSlots(per_host=4, waiting=4, in_flight=2)
    async with slots.slot("a"), slots.slot("b"):
        with pytest.raises(Overloaded):
            async with slots.slot("c"):
                pass
    async with slots.slot("c"):  # freed again
        pass
