"""The render deadline: the watchdog thread stops a libvips computation at
its time, without libvips calling into Python, and never touches a render
that has finished."""

from __future__ import annotations

import threading
import time

import pytest
import pyvips

from service.render.failures import Deadline
from service.render.watchdog import Watchdog


def _slow_pipeline() -> pyvips.Image:
    """Seconds of work for one libvips thread: a wide blur of 36 MP."""
    return pyvips.Image.gaussnoise(6000, 6000).gaussblur(30)


def test_an_expired_deadline_kills_the_pipeline_it_watches() -> None:
    image = _slow_pipeline()
    with Deadline(0.05) as deadline:
        deadline.watch(image)
        with pytest.raises(pyvips.Error, match="killed"):
            image.write_to_buffer(".jpg")
        assert deadline.killed


def test_a_deadline_left_is_never_expired_into_its_images() -> None:
    image = pyvips.Image.black(64, 64)
    with Deadline(60.0) as deadline:
        deadline.watch(image)
    deadline.expire()  # what the watchdog does at the deadline's time
    assert not deadline.killed
    assert image.write_to_buffer(".png")  # not killed: it still renders


def test_an_image_watched_after_the_deadline_is_killed_at_once() -> None:
    image = pyvips.Image.black(64, 64)
    with Deadline(60.0) as deadline:
        deadline.expire()
        deadline.watch(image)
        with pytest.raises(pyvips.Error, match="killed"):
            image.write_to_buffer(".png")


class _Recorded:
    def __init__(self, seconds: float) -> None:
        self.expires = time.monotonic() + seconds
        self.expired = threading.Event()

    def expire(self) -> None:
        self.expired.set()


def test_a_sooner_deadline_armed_later_wakes_the_watchdog() -> None:
    """The thread sleeps until its earliest deadline: a sooner one armed
    meanwhile must not wait behind the later one."""
    watchdog = Watchdog()
    later, sooner = _Recorded(3600.0), _Recorded(0.01)
    watchdog.arm(later)
    watchdog.arm(sooner)
    assert sooner.expired.wait(30), "the sooner deadline never expired"
    assert not later.expired.is_set()
