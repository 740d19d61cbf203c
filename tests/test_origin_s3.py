"""The S3 origin against a real S3 API: moto's server on loopback, through aiobotocore.

One moto server (``ThreadedMotoServer``, in this process, on 127.0.0.1) serves
the module. Its IAM authentication is switched on once the fixtures exist, so
moto checks every request's signature against the access keys it issued: a
wrong secret is refused, and a request that works proves the client found
the right credentials wherever the test put them.

Every request goes to 127.0.0.1 (the virtual-host test resolves
``*.localhost`` to 127.0.0.1 itself, as RFC 6761 asks). Each test runs with
a clean AWS environment: no variable or file of the machine's own, and
``AWS_EC2_METADATA_DISABLED=true``, because a credential chain that finds
nothing else ends at the instance metadata service (169.254.169.254): a test
must never send traffic there, and off EC2 each try would cost a timeout.
"""

from __future__ import annotations

import asyncio
import gzip
import json
import os
import socket
import time
import urllib.request
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import aiohttp.connector
import pytest
from aiobotocore.session import get_session
from aiohttp.abc import AbstractResolver, ResolveResult
from moto.server import ThreadedMotoServer

from service.errors import BadGateway, NotFound, OriginTimeout, SourceTooLarge, UnprocessableImage
from service.origins.body import BodySink
from service.origins.config import parse_named_origin
from service.origins.fetched import Validators
from service.origins.s3 import S3Location, S3Origin, S3Settings, open_s3_origin
from service.server.app import create_app
from service.settings import Settings

from .conftest import SAMPLES, MakeClient, decode
from .waiting import eventually, eventually_async

if TYPE_CHECKING:
    from aiobotocore.session import ClientCreatorContext
    from types_aiobotocore_s3 import S3Client

JPEG = (SAMPLES / "rocket.jpg").read_bytes()  # 110 KiB: more than one 64 KiB chunk
OTHER_JPEG = (SAMPLES / "retina.jpg").read_bytes()
BUCKET = "images"
VERSIONED = "versioned"
REGION = "us-east-1"
ALLOW_S3 = {
    "Version": "2012-10-17",
    "Statement": [{"Effect": "Allow", "Action": "s3:*", "Resource": "*"}],
}


@dataclass(frozen=True)
class Key:
    id: str
    secret: str


@dataclass(frozen=True)
class Moto:
    port: int
    reader: Key  # allowed s3:*
    nobody: Key  # a valid key with no permission at all

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"


def _moto_api(port: int, path: str, data: bytes | None = None) -> bytes:
    """A call to moto's own API, straight to loopback (no proxy from the environment)."""
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}{path}", data=data, headers={"Content-Type": "text/plain"}
    )
    with opener.open(request, timeout=5) as response:
        body: bytes = response.read()
        return body


def _s3_client(port: int, key: Key | None = None) -> ClientCreatorContext[S3Client]:
    """An S3 client on moto: with ``key``, or the environment's."""
    return get_session().create_client(
        "s3",
        region_name=REGION,
        endpoint_url=f"http://127.0.0.1:{port}",
        aws_access_key_id=key.id if key else None,
        aws_secret_access_key=key.secret if key else None,
    )


async def _provision(port: int) -> tuple[Key, Key]:
    """Two IAM users with keys (one allowed s3:*, one nothing) and the buckets."""
    keys = []
    # Untyped: the test extra has no IAM stubs for these three calls.
    iam_context: Any = get_session().create_client(
        "iam",
        region_name=REGION,
        endpoint_url=f"http://127.0.0.1:{port}",
    )
    async with iam_context as iam:
        for user, policy in (("reader", ALLOW_S3), ("nobody", None)):
            await iam.create_user(UserName=user)
            issued = (await iam.create_access_key(UserName=user))["AccessKey"]
            keys.append(Key(issued["AccessKeyId"], issued["SecretAccessKey"]))
            if policy is not None:
                await iam.put_user_policy(
                    UserName=user, PolicyName="s3", PolicyDocument=json.dumps(policy)
                )
    async with _s3_client(port) as s3:
        for bucket in (BUCKET, VERSIONED):
            await s3.create_bucket(Bucket=bucket)
        await s3.put_bucket_versioning(
            Bucket=VERSIONED, VersioningConfiguration={"Status": "Enabled"}
        )
    return keys[0], keys[1]


def _isolate(env: pytest.MonkeyPatch, home: Path) -> None:
    """No AWS variable, file or proxy of the machine's; never the metadata service."""
    for name in list(os.environ):
        if name.startswith("AWS_") or name.lower().endswith("_proxy"):
            env.delenv(name)
    env.setenv("AWS_EC2_METADATA_DISABLED", "true")
    env.setenv("AWS_CONFIG_FILE", str(home / "no-config"))
    env.setenv("AWS_SHARED_CREDENTIALS_FILE", str(home / "no-credentials"))


@pytest.fixture(scope="module")
def moto(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Moto]:
    """moto on a free loopback port, provisioned, with IAM authentication on."""
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        port = server.get_host_and_port()[1]
        eventually(
            lambda: _moto_api(port, "/moto-api/data.json"),
            10,
            message="moto did not start answering",
            ignoring=(OSError,),
        )
        with pytest.MonkeyPatch.context() as env:
            _isolate(env, tmp_path_factory.mktemp("aws"))
            # Any key will do while moto's authentication is still off.
            env.setenv("AWS_ACCESS_KEY_ID", "provisioning")
            env.setenv("AWS_SECRET_ACCESS_KEY", "provisioning")
            reader, nobody = asyncio.run(_provision(port))
        # From now on moto checks every signature and every permission.
        _moto_api(port, "/moto-api/reset-auth", b"0")
        try:
            yield Moto(port, reader, nobody)
        finally:
            _moto_api(port, "/moto-api/reset-auth", b"inf")
    finally:
        server.stop()


@pytest.fixture(autouse=True)
def aws_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, moto: Moto) -> None:
    """A clean AWS environment holding the reader's key."""
    _isolate(monkeypatch, tmp_path)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", moto.reader.id)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", moto.reader.secret)


@dataclass
class Download:
    sink: BodySink
    path: Path

    @property
    def body(self) -> bytes:
        return self.path.read_bytes()


@dataclass
class Harness:
    """What a test drives: moto, a client to put objects with, origins and sinks."""

    moto: Moto
    bucket: S3Client  # the reader's, for putting each test's objects in place
    tmp_path: Path
    origins: list[S3Origin] = field(default_factory=list)
    descriptors: list[int] = field(default_factory=list)

    async def origin(
        self,
        spec: str = f"s3://{BUCKET}",
        *,
        endpoint: str | None = None,
        addressing_style: str = "path",
        region: str | None = REGION,
        connect_timeout: float = 2.0,
        total_timeout: float = 10.0,
    ) -> S3Origin:
        """An S3Origin on moto (or ``endpoint``), closed at the end of the test."""
        settings = S3Settings(
            endpoint_url=endpoint or self.moto.endpoint,
            region=region,
            addressing_style=addressing_style,
            connect_timeout=connect_timeout,
            total_timeout=total_timeout,
        )
        origin = await open_s3_origin("pictures", S3Location.parse(spec), settings)
        self.origins.append(origin)
        return origin

    def download(self, max_bytes: int = 10 * 1024 * 1024) -> Download:
        """A sink over a fresh file, as the source cache would hand one over."""
        path = self.tmp_path / f"download-{len(self.descriptors)}"
        self.descriptors.append(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
        return Download(BodySink(self.descriptors[-1], max_bytes=max_bytes), path)


@pytest.fixture
async def s3(moto: Moto, tmp_path: Path) -> AsyncIterator[Harness]:
    """The harness; its origins and sinks closed at the end of the test."""
    async with _s3_client(moto.port, moto.reader) as bucket:
        harness = Harness(moto, bucket, tmp_path)
        try:
            yield harness
        finally:
            for origin in harness.origins:
                await origin.close()
            for descriptor in harness.descriptors:
                os.close(descriptor)


async def test_a_fetch_writes_exactly_the_objects_bytes(s3: Harness) -> None:
    """The body reaches the sink byte for byte; the identity and validator carry the ETag."""
    etag = (await s3.bucket.put_object(Bucket=BUCKET, Key="photos/rocket.jpg", Body=JPEG))["ETag"]
    origin = await s3.origin()
    into = s3.download()
    fetched = await origin.fetch("photos/rocket.jpg", None, into.sink)
    assert fetched is not None
    assert into.body == JPEG
    assert fetched.size == len(JPEG)
    assert fetched.identity == f"s3:{etag}"
    assert fetched.validators == Validators(etag=etag)
    assert origin.name == "pictures"


async def test_the_same_etag_is_not_modified(s3: Harness) -> None:
    """A conditional fetch whose ETag still holds returns None and writes nothing."""
    etag = (await s3.bucket.put_object(Bucket=BUCKET, Key="same.jpg", Body=JPEG))["ETag"]
    origin = await s3.origin()
    into = s3.download()
    assert await origin.fetch("same.jpg", Validators(etag=etag), into.sink) is None
    assert into.body == b""


async def test_an_overwritten_object_is_fetched_anew(s3: Harness) -> None:
    """After an overwrite the old ETag no longer holds: the new body, a new identity."""
    old = (await s3.bucket.put_object(Bucket=BUCKET, Key="changes.jpg", Body=JPEG))["ETag"]
    origin = await s3.origin()
    first = await origin.fetch("changes.jpg", None, s3.download().sink)
    await s3.bucket.put_object(Bucket=BUCKET, Key="changes.jpg", Body=OTHER_JPEG)
    into = s3.download()
    fetched = await origin.fetch("changes.jpg", Validators(etag=old), into.sink)
    assert first is not None
    assert fetched is not None
    assert into.body == OTHER_JPEG
    assert fetched.identity != first.identity
    assert fetched.validators.etag != old


async def test_a_versioned_bucket_adds_the_version_to_the_identity(s3: Harness) -> None:
    """In a versioned bucket the identity is s3:<ETag>:<VersionId>."""
    put = await s3.bucket.put_object(Bucket=VERSIONED, Key="v.jpg", Body=JPEG)
    origin = await s3.origin(f"s3://{VERSIONED}")
    fetched = await origin.fetch("v.jpg", None, s3.download().sink)
    assert fetched is not None
    assert fetched.identity == f"s3:{put['ETag']}:{put['VersionId']}"


async def test_a_missing_key_is_not_found(s3: Harness) -> None:
    """NoSuchKey is our 404."""
    origin = await s3.origin()
    with pytest.raises(NotFound):
        await origin.fetch("no/such.jpg", None, s3.download().sink)


async def test_a_missing_bucket_is_a_bad_gateway(s3: Harness) -> None:
    """NoSuchBucket is the origin's configuration at fault, not a missing image."""
    origin = await s3.origin("s3://no-such-bucket")
    with pytest.raises(BadGateway) as refused:
        await origin.fetch("rocket.jpg", None, s3.download().sink)
    assert refused.value.message == "the S3 origin answered NoSuchBucket"


async def test_the_prefix_is_put_before_the_key(s3: Harness) -> None:
    """s3://BUCKET/PREFIX reads PREFIX/key, not key."""
    await s3.bucket.put_object(Bucket=BUCKET, Key="tenant/a/pic.jpg", Body=JPEG)
    await s3.bucket.put_object(Bucket=BUCKET, Key="pic.jpg", Body=OTHER_JPEG)
    origin = await s3.origin(f"s3://{BUCKET}/tenant/a")
    into = s3.download()
    await origin.fetch("pic.jpg", None, into.sink)
    assert into.body == JPEG


class LoopbackResolver(AbstractResolver):
    """Resolves localhost and *.localhost to 127.0.0.1, refuses every other name."""

    def __init__(self) -> None:
        self.asked: list[str] = []

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        self.asked.append(host)
        if host != "localhost" and not host.endswith(".localhost"):
            raise OSError(f"{host} is not a loopback name")
        return [
            ResolveResult(
                hostname=host,
                host="127.0.0.1",
                port=port,
                family=socket.AF_INET,
                proto=0,
                flags=socket.AI_NUMERICHOST,
            )
        ]

    async def close(self) -> None:
        pass


@pytest.fixture
def resolver(monkeypatch: pytest.MonkeyPatch) -> LoopbackResolver:
    """The resolver every aiohttp connector of this test gets: this machine's
    resolver knows localhost, but not images.localhost."""
    loopback = LoopbackResolver()
    monkeypatch.setattr(aiohttp.connector, "DefaultResolver", lambda *_, **__: loopback)
    return loopback


@pytest.mark.parametrize(
    ("style", "host"), [("path", "localhost"), ("virtual", f"{BUCKET}.localhost")]
)
async def test_both_addressing_styles_reach_the_object(
    style: str, host: str, s3: Harness, resolver: LoopbackResolver
) -> None:
    """Path style asks the endpoint's host; virtual-host style the bucket's own name."""
    await s3.bucket.put_object(Bucket=BUCKET, Key="style.jpg", Body=JPEG)
    origin = await s3.origin(endpoint=f"http://localhost:{s3.moto.port}", addressing_style=style)
    into = s3.download()
    await origin.fetch("style.jpg", None, into.sink)
    assert into.body == JPEG
    assert set(resolver.asked) == {host}


async def test_a_wrong_secret_in_the_environment_is_refused(
    s3: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    """moto checks the signature: the environment's key is the one that signs."""
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "not-the-secret")
    origin = await s3.origin()
    with pytest.raises(BadGateway) as refused:
        await origin.fetch("rocket.jpg", None, s3.download().sink)
    assert refused.value.message == "the S3 origin answered SignatureDoesNotMatch"


async def test_a_key_without_permission_is_a_bad_gateway(
    s3: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    """AccessDenied (403) is the origin refusing us, not the client."""
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", s3.moto.nobody.id)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", s3.moto.nobody.secret)
    origin = await s3.origin()
    with pytest.raises(BadGateway) as refused:
        await origin.fetch("rocket.jpg", None, s3.download().sink)
    assert refused.value.message == "the S3 origin answered AccessDenied"


def write_profile(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, key: Key) -> None:
    """A 'factory' profile in shared files, chosen by AWS_PROFILE; no key in the environment."""
    credentials = tmp_path / "credentials"
    credentials.write_text(
        f"[factory]\naws_access_key_id = {key.id}\naws_secret_access_key = {key.secret}\n"
    )
    config = tmp_path / "config"
    config.write_text("[profile factory]\nregion = eu-west-1\n")
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(credentials))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(config))
    monkeypatch.setenv("AWS_PROFILE", "factory")


async def test_credentials_and_region_come_from_a_profile_in_shared_files(
    s3: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    """AWS_PROFILE picks the profile from AWS_SHARED_CREDENTIALS_FILE and AWS_CONFIG_FILE."""
    await s3.bucket.put_object(Bucket=BUCKET, Key="profile.jpg", Body=JPEG)
    write_profile(s3.tmp_path, monkeypatch, s3.moto.reader)
    origin = await s3.origin(region=None)
    into = s3.download()
    await origin.fetch("profile.jpg", None, into.sink)
    assert into.body == JPEG
    assert origin._client.meta.region_name == "eu-west-1"
    pinned = await s3.origin(region="ap-south-1")
    assert pinned._client.meta.region_name == "ap-south-1"


async def test_a_wrong_secret_in_the_shared_files_is_refused(
    s3: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The profile's key is the one that signs: with its secret wrong, moto refuses."""
    write_profile(s3.tmp_path, monkeypatch, Key(s3.moto.reader.id, "not-the-secret"))
    origin = await s3.origin(region=None)
    with pytest.raises(BadGateway, match="SignatureDoesNotMatch"):
        await origin.fetch("rocket.jpg", None, s3.download().sink)


async def test_no_credentials_anywhere_is_a_bad_gateway(
    s3: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The chain ends without a key (and never asks the instance metadata service)."""
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    origin = await s3.origin()
    with pytest.raises(BadGateway) as refused:
        await origin.fetch("rocket.jpg", None, s3.download().sink)
    assert refused.value.message == "the S3 origin has no usable credentials"


async def test_an_object_over_the_limit_is_refused_before_its_body(s3: Harness) -> None:
    """Its ContentLength is over max_bytes: SourceTooLarge, and not a byte written."""
    await s3.bucket.put_object(Bucket=BUCKET, Key="big.jpg", Body=JPEG)
    origin = await s3.origin()
    into = s3.download(max_bytes=len(JPEG) - 1)
    with pytest.raises(SourceTooLarge):
        await origin.fetch("big.jpg", None, into.sink)
    assert into.body == b""


async def test_a_gzip_encoded_object_arrives_as_stored(s3: Harness) -> None:
    """Content-Encoding: gzip is not undone: the sink sees the gzip magic and refuses it."""
    stored = gzip.compress(JPEG)
    await s3.bucket.put_object(Bucket=BUCKET, Key="gz.jpg", Body=stored, ContentEncoding="gzip")
    origin = await s3.origin()
    into = s3.download()
    with pytest.raises(UnprocessableImage, match="compressed"):
        await origin.fetch("gz.jpg", None, into.sink)


async def test_a_stopped_server_is_a_bad_gateway(s3: Harness) -> None:
    """A refused connection: one line that names neither the endpoint nor a key."""
    stopped = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    stopped.start()
    port = stopped.get_host_and_port()[1]
    stopped.stop()
    origin = await s3.origin(endpoint=f"http://127.0.0.1:{port}")
    with pytest.raises(BadGateway) as refused:
        await origin.fetch("rocket.jpg", None, s3.download().sink)
    assert refused.value.message == "the S3 origin could not be reached"


@dataclass
class FakeOrigin:
    """A loopback server that answers each request with ``answer`` (None: never),
    then hangs up or waits for the client to."""

    answer: bytes | None
    hang_up: bool
    port: int = 0
    connections: int = 0
    closed: int = 0  # connections the client closed


StartFake = Callable[..., Awaitable[FakeOrigin]]


@pytest.fixture
async def fake_origin() -> AsyncIterator[StartFake]:
    """Starts FakeOrigins on free loopback ports; closes them at the end."""
    servers: list[asyncio.Server] = []
    writers: list[asyncio.StreamWriter] = []

    async def start(answer: bytes | None, *, hang_up: bool = False) -> FakeOrigin:
        fake = FakeOrigin(answer, hang_up)

        async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            fake.connections += 1
            writers.append(writer)
            await reader.readuntil(b"\r\n\r\n")
            if fake.answer is not None:
                writer.write(fake.answer)
                await writer.drain()
            if fake.hang_up:
                writer.close()
                return
            await reader.read()  # until the client closes its end
            fake.closed += 1

        server = await asyncio.start_server(serve, "127.0.0.1", 0)
        servers.append(server)
        fake.port = server.sockets[0].getsockname()[1]
        return fake

    yield start
    for writer in writers:
        writer.close()
    for server in servers:
        server.close()
        await server.wait_closed()


def object_answer(length: int, body: bytes) -> bytes:
    """GetObject's 200 with ``length`` declared and ``body`` sent."""
    head = (
        "HTTP/1.1 200 OK\r\n"
        'ETag: "0123456789abcdef0123456789abcdef"\r\n'
        f"Content-Length: {length}\r\n"
        "Content-Type: image/jpeg\r\n"
        "\r\n"
    )
    return head.encode() + body


async def test_a_hung_endpoint_times_out_within_the_total_timeout(
    s3: Harness, fake_origin: StartFake
) -> None:
    """Accepted, never answered: OriginTimeout once total_timeout has passed."""
    hung = await fake_origin(None)
    origin = await s3.origin(
        endpoint=f"http://127.0.0.1:{hung.port}", connect_timeout=0.5, total_timeout=1.0
    )
    started = time.monotonic()
    with pytest.raises(OriginTimeout):
        await origin.fetch("rocket.jpg", None, s3.download().sink)
    elapsed = time.monotonic() - started
    assert 1.0 <= elapsed < 3.0
    assert hung.connections == 1


async def test_a_body_cut_short_is_truncated(s3: Harness, fake_origin: StartFake) -> None:
    """Fewer bytes than ContentLength, then the connection ends: UnprocessableImage."""
    cut = await fake_origin(object_answer(len(JPEG), JPEG[:1000]), hang_up=True)
    origin = await s3.origin(endpoint=f"http://127.0.0.1:{cut.port}")
    with pytest.raises(UnprocessableImage, match="truncated"):
        await origin.fetch("rocket.jpg", None, s3.download().sink)


async def test_a_refused_body_is_closed_not_pooled(s3: Harness, fake_origin: StartFake) -> None:
    """A body the sink refuses is not read on: the client closes that connection."""
    big = await fake_origin(object_answer(10 * len(JPEG), JPEG))
    origin = await s3.origin(endpoint=f"http://127.0.0.1:{big.port}")
    with pytest.raises(SourceTooLarge):
        await origin.fetch("rocket.jpg", None, s3.download(max_bytes=len(JPEG)).sink)
    # Well inside the read timeout (total_timeout, 10 s), which would in the
    # end close an abandoned connection too.
    await eventually_async(lambda: big.closed == 1, 2, message="the connection stayed open")


@pytest.mark.parametrize(
    ("spec", "bucket", "prefix"),
    [
        ("s3://images", "images", ""),
        ("s3://images/", "images", ""),
        ("s3://images/a", "images", "a/"),
        ("s3://images/a/b/", "images", "a/b/"),
        ("s3://my.images-2/a", "my.images-2", "a/"),
        ("s3://ap-abc123-s3alias", "ap-abc123-s3alias", ""),
    ],
)
def test_locations_parse(spec: str, bucket: str, prefix: str) -> None:
    """A bucket by AWS's rules, and a prefix that needs only the key after it."""
    assert S3Location.parse(spec) == S3Location(bucket, prefix)


@pytest.mark.parametrize(
    ("spec", "problem"),
    [
        ("images", "s3://BUCKET"),
        ("https://images/a", "s3://BUCKET"),
        ("s3://ab", "3 to 63"),
        ("s3://" + "a" * 64, "3 to 63"),
        ("s3://Images", "only a-z"),
        ("s3://my_images", "only a-z"),
        ("s3://-images", "only a-z"),
        ("s3://images.", "only a-z"),
        ("s3://my..images", "two periods"),
        ("s3://192.168.1.1", "IP address"),
        ("s3://xn--images", "reserved"),
        ("s3://sthree-images", "reserved"),
        ("s3://images/a//b", "empty segment"),
    ],
)
def test_bad_locations_say_why(spec: str, problem: str) -> None:
    """ValueError with a one-line reason."""
    with pytest.raises(ValueError, match=problem) as refused:
        S3Location.parse(spec)
    assert "\n" not in str(refused.value)


def test_settings_refuse_an_unknown_addressing_style() -> None:
    """auto, path or virtual, as botocore spells them."""
    with pytest.raises(ValueError, match="addressing style"):
        S3Settings(None, None, addressing_style="dns", connect_timeout=1, total_timeout=2)


# -- the service itself, reading from S3 -------------------------------------


def s3_settings(s3: Harness, originals: str, **overrides: Any) -> Settings:  # noqa: ANN401
    values: dict[str, Any] = {
        "originals": originals,
        "originals_given": True,
        "cache_dir": str(s3.tmp_path / "cache"),
        "concurrency": 2,
        "s3_endpoint_url": s3.moto.endpoint,
        "s3_region": REGION,
        "s3_addressing": "path",
    }
    return Settings(**(values | overrides))


async def origin_counts(client: Any) -> str:  # noqa: ANN401
    return str(await (await client.get("/metrics")).text())


async def test_the_service_renders_an_s3_original_under_its_prefix(
    s3: Harness, aiohttp_client: MakeClient
) -> None:
    """s3://BUCKET/PREFIX: /picture/<key> renders PREFIX/<key>; a missing key is a 404."""
    await s3.bucket.put_object(Bucket=BUCKET, Key="site/photos/rocket.jpg", Body=JPEG)
    client = await aiohttp_client(create_app(s3_settings(s3, f"s3://{BUCKET}/site")))
    response = await client.get("/picture/photos/rocket.jpg?w=64&format=png")
    assert response.status == 200
    assert decode(await response.read()).width == 64
    assert (await client.get("/picture/photos/missing.jpg?w=64")).status == 404
    metrics = await origin_counts(client)
    assert 'image_factory_origin_requests_total{origin="default",outcome="fetched"} 1.0' in metrics


async def test_an_unchanged_s3_object_keeps_its_variants_after_the_ttl(
    s3: Harness, aiohttp_client: MakeClient
) -> None:
    """Past --source-ttl the object is revalidated by its ETag; unchanged, the variant hits."""
    await s3.bucket.put_object(Bucket=BUCKET, Key="kept.jpg", Body=JPEG)
    settings = s3_settings(s3, f"s3://{BUCKET}", source_ttl=0.0)
    client = await aiohttp_client(create_app(settings))
    first = await client.get("/picture/kept.jpg?w=64")
    second = await client.get("/picture/kept.jpg?w=64")
    assert second.headers["X-Cache"] == "HIT"
    assert second.headers["ETag"] == first.headers["ETag"]
    metrics = await origin_counts(client)
    assert (
        'image_factory_origin_requests_total{origin="default",outcome="not_modified"} 1.0'
        in metrics
    )


async def test_a_changed_s3_object_makes_new_variants(
    s3: Harness, aiohttp_client: MakeClient
) -> None:
    """An overwritten object has a new ETag, so a new identity and a fresh render."""
    await s3.bucket.put_object(Bucket=BUCKET, Key="changing.jpg", Body=JPEG)
    client = await aiohttp_client(create_app(s3_settings(s3, f"s3://{BUCKET}", source_ttl=0.0)))
    first = await client.get("/picture/changing.jpg?w=64&format=png")
    other = (SAMPLES / "retina.jpg").read_bytes()
    await s3.bucket.put_object(Bucket=BUCKET, Key="changing.jpg", Body=other)
    second = await client.get("/picture/changing.jpg?w=64&format=png")
    assert second.headers["X-Cache"] == "MISS"
    assert second.headers["ETag"] != first.headers["ETag"]


async def test_a_named_s3_origin_beside_a_local_directory(
    s3: Harness, aiohttp_client: MakeClient
) -> None:
    """--origin NAME=s3://...: /picture/NAME/<key> reads the bucket, other paths the directory."""
    await s3.bucket.put_object(Bucket=BUCKET, Key="rocket.jpg", Body=JPEG)
    settings = s3_settings(
        s3, str(SAMPLES), origins=(parse_named_origin(f"uploads=s3://{BUCKET}"),)
    )
    client = await aiohttp_client(create_app(settings))
    assert (await client.get("/picture/uploads/rocket.jpg?w=64")).status == 200
    assert (await client.get("/picture/chelsea.png?w=64")).status == 200
    metrics = await origin_counts(client)
    assert 'image_factory_origin_requests_total{origin="uploads",outcome="fetched"} 1.0' in metrics
