"""What an origin client hands back: the validators and identity of a download."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Validators:
    """What a conditional request sends back to the origin."""

    etag: str | None = None
    last_modified: str | None = None


@dataclass(frozen=True, slots=True)
class Fetched:
    """A body that was written through the sink, and what identifies it."""

    identity: str
    validators: Validators
    size: int
