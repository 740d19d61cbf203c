"""How a render fails: libvips' messages made one line, and the deadline.

A render that fails raises one of our errors (``errors``): what libvips said
about the original becomes an ``UnprocessableImage`` with a path-free,
one-line reason; a render stopped by its deadline a ``RenderTimeout``.
"""

from __future__ import annotations

import threading
import time

import pyvips

from ..errors import RenderTimeout, UnprocessableImage
from .watchdog import WATCHDOG

# libvips' error log reads "unable to call <operation>", then what each
# step said. A decoder that fails mid-pixels makes the saver fail last
# ("vips2png: unable to write to target"), which names the wrong culprit;
# the source's seek retries ("source: bad seek to 3587") say nothing either.
_NOT_THE_CAUSE = ("vips2", "unable to call", "VipsForeignSave", "source: ")


class Deadline:
    """The render's time limit, counted from its start in the render thread.

    Use it as a context manager: on leaving, the images it watches are let
    go (the watchdog may hold the deadline itself until its time)."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.expires = time.monotonic() + seconds
        self.killed = False
        self._lock = threading.Lock()
        self._watched: list[pyvips.Image] = []
        self._finished = False
        WATCHDOG.arm(self)

    def __enter__(self) -> Deadline:
        return self

    def __exit__(self, *_: object) -> None:
        with self._lock:
            self._finished = True
            self._watched.clear()

    def passed(self) -> bool:
        return time.monotonic() > self.expires

    def watch(self, image: pyvips.Image) -> None:
        """Stop ``image``'s computation once the deadline has passed."""
        with self._lock:
            if self._finished:
                return
            self._watched.append(image)
            if self.killed:
                image.set_kill(True)

    def expire(self) -> None:
        """The watchdog's call, from its thread, at ``expires``."""
        with self._lock:
            if self._finished:
                return
            self.killed = True
            for image in self._watched:
                image.set_kill(True)


def release_images(error: BaseException) -> None:
    """Drop the tracebacks of ``error`` and of the exceptions it chains
    (``__cause__``, ``__context__``): their frames hold the pipeline's
    images and sources, each source a descriptor of the original. Kept,
    they lived as long as the exception, and in the service that is a
    reference cycle (an asyncio future holds it, a frame of its traceback
    holds the future): until the cycle collector ran, every failed render
    held the original open. These are refusals of the original, a timeout
    or a full disk, whose tracebacks no log shows.

    Dropped whole, a traceback frees its frames innermost first, as Python
    always does. Not ``traceback.clear_frames``, which clears them
    outermost first: that freed a ``TargetCustom``'s Python callbacks while
    the failed saver still held the target, whose flush then called them
    (a fatal error in cffi, found by tests/test_fuzz.py)."""
    seen: set[int] = set()
    pending: list[BaseException | None] = [error]
    while pending:
        current = pending.pop()
        if current is None or id(current) in seen:
            continue
        seen.add(id(current))
        current.__traceback__ = None
        pending += [current.__cause__, current.__context__]


def failure_of(
    error: pyvips.Error | UnicodeDecodeError, deadline: Deadline, timeout_seconds: float
) -> RenderTimeout | UnprocessableImage:
    """What a libvips failure of a render means for the client: its
    deadline passed (the render was killed), or the original is at fault.
    The images its traceback holds are freed first."""
    release_images(error)
    reason = describe(error)
    if deadline.killed or deadline.passed():
        return RenderTimeout(f"the render took longer than {timeout_seconds:g} s")
    return UnprocessableImage(reason)


def libvips_message(error: pyvips.Error | UnicodeDecodeError) -> str:
    """What libvips said, with its error buffer left clear.

    A UnicodeDecodeError is pyvips failing to build its Error: a decoder
    quoted raw bytes of the original in its message (libheif: a box named
    b"\\x80mir"). pyvips then never cleared libvips' error buffer, and every
    later failure of any request would trip over the same bytes (a 500):
    read it leniently here and clear it."""
    if not isinstance(error, UnicodeDecodeError):
        return str(error)  # pyvips cleared the buffer building it
    text: str = pyvips.ffi.string(pyvips.vips_lib.vips_error_buffer()).decode("utf-8", "replace")
    pyvips.vips_lib.vips_error_clear()
    return text


def describe(error: pyvips.Error | UnicodeDecodeError) -> str:
    """A one-line, path-free reason for the client: the first thing a
    loader said, else libvips' last line."""
    lines = [line.strip() for line in libvips_message(error).splitlines() if line.strip()]
    said = [line for line in lines if not line.startswith(_NOT_THE_CAUSE)]
    detail = said[0] if said else (lines[-1] if lines else "decode failed")
    # libvips prefixes messages with the file name or descriptor; drop it.
    detail = detail.rsplit(": ", 1)[-1]
    return f"the original could not be decoded ({detail[:120]})"
