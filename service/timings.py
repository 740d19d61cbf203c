"""Where one request spent its time, for the opt-in ``Server-Timing`` header.

With ``--server-timing`` each image answer says, in the format browsers
show in their network panel (W3C Server Timing: ``name;desc=...;dur=ms``),
how long its steps took, each measured where it happens:

    cache    the cache lookup; ``desc=hit`` or ``desc=miss``
    origin   fetching a remote original (its source cache, or a download)
    queue    waiting for a render thread (and, with several workers, a
             machine-wide render token)
    budget   waiting for room in the decode budget (--decode-budget)
    render   the render itself, in its thread; ``desc=shared`` when the
             request waited for an identical render another request began
    write    publishing the render into the cache (rename, index commit)

Steps that did not happen are left out. Off by default: a CDN caches the
header with the image, so every later visitor would read the first one's
timings. A render thread records ``write`` while the request's coroutine
may record ``queue``: each is one list append, atomic, and the header is
read once the render is back.
"""

from __future__ import annotations

from dataclasses import dataclass, field

HEADER = "Server-Timing"


@dataclass(slots=True)
class Timings:
    """Durations in seconds, in the order they were recorded."""

    steps: list[tuple[str, str, float]] = field(default_factory=list)

    def add(self, name: str, seconds: float, *, desc: str = "") -> None:
        self.steps.append((name, desc, max(seconds, 0.0)))

    def seconds(self, name: str) -> float:
        """The sum of the durations recorded as ``name``."""
        return sum(seconds for step, _, seconds in self.steps if step == name)

    def header(self) -> str:
        """The ``Server-Timing`` value: milliseconds, three decimals."""
        return ", ".join(
            f"{name};desc={desc};dur={seconds * 1000:.3f}"
            if desc
            else f"{name};dur={seconds * 1000:.3f}"
            for name, desc, seconds in self.steps
        )
