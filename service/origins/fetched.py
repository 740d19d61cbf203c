"""What an origin client is, and what it hands back: the validators and
identity of a download."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from .body import BodySink


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


class OriginClient(Protocol):
    """An origin that originals are downloaded from (http.HttpOrigin, s3.S3Origin)."""

    name: str  # for metrics, the access log and its headers
    trusted: bool  # configured by the operator (not a ?url= source)

    async def fetch(
        self, key: str, validators: Validators | None, sink: BodySink
    ) -> Fetched | None:
        """Download ``key`` (its path under the origin, not percent-encoded)
        through ``sink``; None when ``validators`` still hold. Raises
        NotFound, BadGateway, OriginTimeout, Forbidden, and the sink's
        SourceTooLarge and UnprocessableImage."""
        ...

    async def close(self) -> None: ...
