"""A serving process hands the GIL over sooner than Python's default, so
that render threads are not kept waiting by the event loop (serve.py's
SWITCH_INTERVAL_SECONDS says why)."""

from __future__ import annotations

import sys
from collections.abc import Iterator

import pytest

from service.server.serve import SWITCH_INTERVAL_SECONDS, hand_the_gil_over_sooner


@pytest.fixture
def restored_interval() -> Iterator[None]:
    before = sys.getswitchinterval()
    yield
    sys.setswitchinterval(before)


@pytest.mark.usefixtures("restored_interval")
def test_a_worker_hands_the_gil_over_after_a_fifth_of_a_millisecond() -> None:
    sys.setswitchinterval(0.005)
    hand_the_gil_over_sooner()
    assert sys.getswitchinterval() == pytest.approx(SWITCH_INTERVAL_SECONDS, rel=0.01)
    assert SWITCH_INTERVAL_SECONDS < 0.005 / 10
