"""The S3 origin: originals read from a bucket (or an S3-compatible store) with aiobotocore.

Nothing here names a credential: the client comes from the standard AWS
configuration chain, as the AWS CLI's would (environment, shared config and
credentials files with AWS_PROFILE, web identity, container and instance
roles), and so do the region and endpoint (AWS_ENDPOINT_URL) unless the
settings name them. One fetch is one GetObject within ``total_timeout``, its
body streamed into the sink and never decompressed (aiobotocore's aiohttp
session has ``auto_decompress=False``): a gzip-encoded object reaches the
sink as stored, and the sink's sniffing refuses it.
"""

from __future__ import annotations

import asyncio
import importlib.metadata
import logging
import re
from contextlib import AsyncExitStack
from dataclasses import dataclass
from typing import TYPE_CHECKING

import aiohttp
from aiobotocore.config import AioConfig
from aiobotocore.session import get_session
from botocore import exceptions as boto

from ..errors import BadGateway, NotFound, OriginTimeout
from .body import BodySink, TruncatedBody
from .fetched import Fetched, Validators
from .slots import HostSlots

if TYPE_CHECKING:
    from types_aiobotocore_s3 import S3Client
    from types_aiobotocore_s3.type_defs import GetObjectRequestTypeDef

log = logging.getLogger(__name__)

CHUNK_BYTES = 64 * 1024
ADDRESSING_STYLES = ("auto", "path", "virtual")
# Attempts in all, the first included: one retry of a throttled or 5xx answer
# or a dropped connection, which still has to fit in the total timeout.
MAX_ATTEMPTS = 2
# AWS's bucket naming rules, each with what breaking it means. The reserved
# suffixes (-s3alias, --x-s3, ...) are left out: they name access point
# aliases and directory buckets, which GetObject takes as a bucket name.
_BUCKET_RULES = (
    (re.compile(r".{3,63}"), "it must be 3 to 63 characters long"),
    (re.compile(r"[a-z0-9][a-z0-9.-]*[a-z0-9]"), "only a-z, 0-9, '.' and '-', not at either end"),
    (re.compile(r"(?!.*\.\.).*"), "it has two periods in a row"),
    (re.compile(r"(?!\d+\.\d+\.\d+\.\d+$).*"), "it is an IP address"),
    (re.compile(r"(?!xn--|sthree-|amzn-s3-demo-).*"), "it starts with a prefix AWS has reserved"),
)
_CUT_SHORT = (aiohttp.ClientPayloadError, boto.IncompleteReadError, boto.ResponseStreamingError)
_SAFE_CODE = re.compile(r"[^A-Za-z0-9._-]")


@dataclass(frozen=True, slots=True)
class S3Location:
    """A bucket, and the key prefix every original's key is put under."""

    bucket: str
    prefix: str  # '' or ending in '/', never starting with one

    @classmethod
    def parse(cls, spec: str) -> S3Location:
        """``s3://BUCKET[/PREFIX]``; ValueError saying what is wrong."""
        if not spec.startswith("s3://"):
            raise ValueError(f"an S3 origin is s3://BUCKET[/PREFIX], not {spec!r}")
        bucket, _, prefix = spec.removeprefix("s3://").partition("/")
        for rule, broken in _BUCKET_RULES:
            if not rule.fullmatch(bucket):
                raise ValueError(f"{bucket!r} is not an S3 bucket name: {broken}")
        prefix = prefix.strip("/")
        if "//" in prefix:
            raise ValueError(f"the S3 prefix {prefix!r} has an empty segment")
        return cls(bucket, f"{prefix}/" if prefix else "")


@dataclass(frozen=True, slots=True)
class S3Settings:
    """How the client reaches S3; None leaves a setting to the AWS chain."""

    endpoint_url: str | None
    region: str | None
    addressing_style: str  # "auto" | "path" | "virtual"
    connect_timeout: float
    total_timeout: float

    def __post_init__(self) -> None:
        if self.addressing_style not in ADDRESSING_STYLES:
            raise ValueError(
                f"the S3 addressing style is one of {', '.join(ADDRESSING_STYLES)},"
                f" not {self.addressing_style!r}"
            )
        if not 0 < self.connect_timeout <= self.total_timeout:
            raise ValueError("the S3 connect timeout must be positive and within the total timeout")


class S3Origin:
    """An origin client over one bucket and prefix (the OriginClient protocol)."""

    def __init__(
        self,
        name: str,
        location: S3Location,
        client: S3Client,
        stack: AsyncExitStack,
        *,
        total_timeout: float,
        slots: HostSlots | None = None,
        endpoint: str = "",
    ) -> None:
        self.name = name
        self.trusted = True
        self.location = location
        self._client = client
        self._stack = stack  # owns the client: closing it closes the connection pool
        self._total_timeout = total_timeout
        # --origin-concurrency, as for HTTP hosts: per endpoint.
        self._slots = slots or HostSlots(per_host=8, waiting=64)
        self._host = ("s3", endpoint or "aws")

    async def fetch(
        self, key: str, validators: Validators | None, sink: BodySink
    ) -> Fetched | None:
        """GetObject ``prefix + key`` into ``sink``; None when ``validators`` still hold."""
        request: GetObjectRequestTypeDef = {
            "Bucket": self.location.bucket,
            "Key": self.location.prefix + key,
        }
        if validators is not None and validators.etag is not None:
            request["IfNoneMatch"] = validators.etag
        try:
            async with asyncio.timeout(self._total_timeout), self._slots.slot(self._host):
                return await self._get(request, sink)
        except (TimeoutError, boto.ConnectTimeoutError, boto.ReadTimeoutError):
            raise OriginTimeout("the S3 origin did not answer in time") from None
        except boto.ClientError as error:
            raise _answered(error, self.name) from None
        except (boto.BotoCoreError, aiohttp.ClientError) as error:
            log.warning("S3 origin %s: %r", self.name, error)
            raise BadGateway(_failure(error)) from None

    async def _get(self, request: GetObjectRequestTypeDef, sink: BodySink) -> Fetched | None:
        try:
            response = await self._client.get_object(**request)
        except boto.ClientError as error:
            if _status(error) == 304:
                return None
            raise
        # The context closes the stream on every path, so a refused or
        # abandoned body never goes back to the pool half read.
        async with response["Body"] as body:
            length = response.get("ContentLength")
            sink.expect_length(length)
            if response.get("ETag") is not None:
                sink.named_by_origin()
            try:
                while chunk := await body.read(CHUNK_BYTES):
                    sink.write(chunk)
            # The connection ended mid-body (short of ContentLength, or a
            # broken chunked encoding): what arrived is not the object.
            except _CUT_SHORT as error:
                raise TruncatedBody("the origin's body is truncated") from error
            size = sink.finish(length)
        etag = response.get("ETag")
        if etag is None:  # some S3-compatible stores send none: key on the bytes
            return Fetched(f"sha256:{sink.digest}", Validators(), size)
        version = response.get("VersionId")
        identity = f"s3:{etag}:{version}" if version else f"s3:{etag}"
        return Fetched(identity, Validators(etag=etag), size)

    async def close(self) -> None:
        """Close the client and its connections."""
        await self._stack.aclose()


async def open_s3_origin(
    name: str, location: S3Location, settings: S3Settings, slots: HostSlots | None = None
) -> S3Origin:
    """An S3Origin whose credentials, region and endpoint come from the AWS chain."""
    config = AioConfig(
        s3={"addressing_style": settings.addressing_style},
        connect_timeout=settings.connect_timeout,
        # Each read of the body; the whole fetch is bounded by total_timeout.
        read_timeout=settings.total_timeout,
        retries={"max_attempts": MAX_ATTEMPTS, "mode": "standard"},
        user_agent_extra=f"image-factory/{importlib.metadata.version('image-factory')}",
    )
    stack = AsyncExitStack()
    try:
        client = await stack.enter_async_context(
            get_session().create_client(
                "s3", region_name=settings.region, endpoint_url=settings.endpoint_url, config=config
            )
        )
    except (boto.BotoCoreError, ValueError) as error:  # a missing profile, a malformed endpoint
        await stack.aclose()
        raise ValueError(f"the S3 origin {name!r} cannot be set up: {error}") from None
    return S3Origin(
        name,
        location,
        client,
        stack,
        total_timeout=settings.total_timeout,
        slots=slots,
        endpoint=client.meta.endpoint_url,
    )


def _status(error: boto.ClientError) -> int | None:
    return error.response.get("ResponseMetadata", {}).get("HTTPStatusCode")


def _answered(error: boto.ClientError, name: str) -> NotFound | BadGateway:
    """NotFound for no such key; for anything else (NoSuchBucket, AccessDenied,
    SlowDown, 5xx: the origin's fault or its configuration's) BadGateway,
    naming the error code sanitised to one short token. (Without s3:ListBucket
    S3 answers a missing key with AccessDenied: a 502, not a 404.)"""
    code = error.response.get("Error", {}).get("Code", "")
    if code == "NoSuchKey" or (_status(error) in (404, 410) and code != "NoSuchBucket"):
        return NotFound()
    log.warning("S3 origin %s: %s", name, error)
    return BadGateway(f"the S3 origin answered {_SAFE_CODE.sub('', code)[:64] or _status(error)}")


def _failure(error: boto.BotoCoreError | aiohttp.ClientError) -> str:
    """A one-line message that names neither the endpoint nor a credential."""
    if isinstance(
        error,
        boto.NoCredentialsError | boto.PartialCredentialsError | boto.CredentialRetrievalError,
    ):
        return "the S3 origin has no usable credentials"
    if isinstance(error, boto.ConnectionError | boto.HTTPClientError | aiohttp.ClientError):
        return "the S3 origin could not be reached"
    return "the S3 origin failed"
