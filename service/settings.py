"""Service settings from command-line flags and ``IMAGE_FACTORY_*`` variables.

A flag overrides its variable; every problem is collected into one
``SettingsError`` so a user fixes them all at once, before the port is bound.
"""

from __future__ import annotations

import argparse
import ipaddress
import math
import os
import re
import tomllib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from importlib import resources
from typing import Any

from .errors import BadRequest, UnprocessableImage
from .formats import (
    AUTO_QUALITY,
    DEFAULT_AUTO_QUALITY_TARGET,
    FIXED_QUALITY,
    FORMAT_NAMES,
    OutputFormat,
    Quality,
)
from .ladder import parse_widths
from .origins.addresses import parse_networks
from .origins.body import looks_like_image
from .origins.config import (
    DEFAULT_ORIGIN,
    DirectorySpec,
    HttpSpec,
    OriginHeader,
    OriginSpec,
    parse_named_origin,
    parse_origin_header,
    parse_origin_spec,
)
from .origins.hosts import HostPatterns
from .overlays import OverlayFile, load_overlays
from .spec import validate_presets
from .units import parse_byte_size

ENV_PREFIX = "IMAGE_FACTORY_"

# Per-format defaults for q (formats.FIXED_QUALITY: chosen by measurement).
DEFAULT_QUALITY: dict[OutputFormat, Quality] = {
    **FIXED_QUALITY,
    OutputFormat.PNG: 100,  # lossless: q does not apply
    OutputFormat.GIF: 100,  # lossless: q does not apply
}
# The range --auto-quality-target accepts (q=auto's SSIMULACRA2 target):
# below 30 is "low" quality on libjxl's scale, and above 95 no lossy
# encoder reaches it at a saving.
AUTO_QUALITY_TARGETS = (30.0, 95.0)
_TARGET = re.compile(r"[0-9]{1,2}(?:\.[0-9])?", re.ASCII)


class SettingsError(Exception):
    """One or more flags or variables are invalid; the message lists them."""


def bundled_samples() -> str:
    return str(resources.files("service") / "samples")


def available_cpus(cgroup_cpu_max: str = "/sys/fs/cgroup/cpu.max") -> int:
    """CPUs this process may use: its affinity, capped by a cgroup v2 CPU
    quota. ``os.cpu_count()`` counts the host's CPUs, which inside a
    container limited to 2 CPUs would start too many render threads."""
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    cpus = cpus or 1
    try:
        with open(cgroup_cpu_max) as handle:
            quota, _, period = handle.read().strip().partition(" ")
    except OSError:
        return cpus
    if quota == "max" or not quota.isdigit() or not period.isdigit() or int(period) == 0:
        return cpus
    return max(1, min(cpus, math.ceil(int(quota) / int(period))))


def default_cache_dir(environ: Mapping[str, str]) -> str:
    base = environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "image-factory")


@dataclass(frozen=True, slots=True)
class Settings:
    host: str = "127.0.0.1"
    port: int = 8080
    # A directory, an http(s):// prefix or s3://BUCKET[/PREFIX] (origins/config.py).
    originals: str = field(default_factory=bundled_samples)
    originals_given: bool = False  # named origins leave the samples out unless given
    origins: tuple[tuple[str, OriginSpec], ...] = ()
    origin_headers: tuple[OriginHeader, ...] = ()
    url_sources: HostPatterns | None = None  # None: ?url= is off
    url_sources_allow_networks: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...] = ()
    origin_max_redirects: int = 3
    origin_connect_timeout: float = 3.0
    origin_timeout: float = 10.0
    origin_concurrency: int = 8  # downloads at once per origin host, per worker
    source_cache_dir: str = ""  # "": sources/ under --cache-dir
    source_cache_max_bytes: int = 2**30
    source_ttl: float = 60.0
    source_stale_if_error: float = 86400.0
    source_negative_ttl: float = 10.0
    s3_endpoint_url: str | None = None  # None: botocore's own (AWS_ENDPOINT_URL, then AWS)
    s3_region: str | None = None  # None: the AWS configuration chain's
    s3_addressing: str = "auto"
    # An image answered (at the requested size) instead of a 404 or 422.
    fallback_image: str | None = None
    fallback_status: int | None = None  # None: keep the real status
    fallback_max_age: int = 60
    cache_dir: str = field(default_factory=lambda: default_cache_dir(os.environ))
    cache_max_bytes: int = 2**30
    # Per original asked for at two or more variants, one shrunk copy that
    # later renders read (mezzanine.py); its own bound, beside the cache's.
    mezzanine: bool = True
    mezzanine_max_bytes: int = 256 * 2**20
    workers: int = 1
    concurrency: int = field(default_factory=available_cpus)
    # Renders at once over all --workers together (process/render_tokens.py): one
    # per core, however the kernel happened to spread the connections.
    total_concurrency: int = field(default_factory=available_cpus)
    queue: int = 64
    max_source_pixels: int = 100_000_000
    max_output_size: int = 4096
    max_source_bytes: int = 100_000_000
    # Whole-image decode buffers (progressive JPEG, interlaced PNG, HEIF) of
    # the renders running at once, per worker (decode_budget.py).
    decode_budget: int = 512 * 10**6
    # One original's whole-image decode: a 100 MP AVIF needs ~1.8 GB.
    max_decode_bytes: int = 10**9
    max_age: int = 86400
    # Past max-age, a CDN may serve an image for a day more while it asks
    # again (a 304 from the key: no render), so no visitor waits for a
    # revalidation; and for a week while this service fails (5xx, down),
    # so an outage shows no broken image. A purge ends either at once.
    cdn_stale_while_revalidate: int = 86400
    cdn_stale_if_error: int = 604800
    # POST /admin/purge's bearer token; None: the endpoint does not exist.
    admin_token: str | None = field(default=None, repr=False)
    quality: dict[OutputFormat, Quality] = field(default_factory=lambda: dict(DEFAULT_QUALITY))
    auto_quality_target: float = DEFAULT_AUTO_QUALITY_TARGET
    # AVIF effort 0 (libaom's fastest): 5-8x faster than effort 2 for an
    # 800-px render (31 vs 249 ms) at 0-19 % more bytes; it also bounds the
    # worst case of an uninterruptible AVIF encode (see docs/security.md).
    avif_effort: int = 0
    max_frames: int = 100
    presets: Mapping[str, tuple[tuple[str, str], ...]] = field(default_factory=dict)
    presets_only: bool = False
    # The width ladder (ladder.py): every output width one of these or the
    # original's own; empty: any width.
    widths: tuple[int, ...] = ()
    # Sec-CH-Width/Width and Sec-CH-DPR/DPR size a request that has no w/dpr.
    client_hints: bool = False
    # A Server-Timing header on image answers (timings.py); off: a CDN would
    # cache one visitor's timings for every later one.
    server_timing: bool = False
    overlays: Mapping[str, OverlayFile] = field(default_factory=dict)
    default_overlay: str | None = None  # on every output a preset gives no other
    render_timeout: float = 20.0
    # After SIGTERM, /healthz answers 503 this long while everything else is
    # served as before, so load balancers take the process out of rotation
    # before it stops accepting (Kubernetes' endpoints lag the signal too).
    drain_seconds: float = 3.0
    # How long a worker's crash is held against the originals it was
    # rendering (process/crashes.py): a second crash within it refuses them.
    poison_ttl: float = 3600.0
    # A connection's time to send a whole request head (server/patches/slow_clients.py):
    # nginx's client_header_timeout in deploy/nginx.conf.
    header_timeout: float = 10.0
    enable_svg: bool = False
    # Outputs keep the original's creator and copyright fields, written anew
    # (render/rights.py); off: every metadata field is stripped.
    keep_copyright: bool = True
    # JPEGs shrink on load down to the output size, as sharp's
    # fastShrinkOnLoad (render/geometry.py's jpeg_shrink).
    fast_shrink_on_load: bool = False
    signing_keys: tuple[str, ...] = ()
    log_format: str = "text"
    print_examples: bool = False

    @classmethod
    def from_sources(cls, argv: Sequence[str], environ: Mapping[str, str]) -> Settings:
        """Parse flags over environment variables; raise SettingsError."""
        parser = build_parser()
        args = parser.parse_args(argv)
        problems: list[str] = []
        values: dict[str, Any] = {}
        for spec in _OPTIONS:
            raw = getattr(args, spec.dest)
            origin = spec.flag
            if raw is None:
                raw = environ.get(spec.env)
                origin = spec.env
                if raw is not None and spec.repeat:
                    raw = [item for item in raw.split(spec.repeat) if item.strip()]
            if raw is None:
                continue
            try:
                values[spec.dest] = spec.convert(raw)
            except ValueError as error:
                problems.append(f"{origin}: {error}")
        if problems:
            raise SettingsError("; ".join(problems))
        values["print_examples"] = bool(args.print_examples)
        values["originals_given"] = "originals" in values
        settings = cls(**values)
        settings._check_paths(problems)
        settings._check_overlays(problems)
        if problems:
            raise SettingsError("; ".join(problems))
        return settings

    @property
    def originals_spec(self) -> OriginSpec | None:
        """Where paths outside the named origins read from (None: a 404)."""
        if self.origins and not self.originals_given:
            return None
        return parse_origin_spec(self.originals)

    @property
    def overlay_fingerprints(self) -> dict[str, str]:
        """Each overlay's name and what of it shapes an output (spec, keys)."""
        return {name: overlay.fingerprint for name, overlay in self.overlays.items()}

    @property
    def mezzanine_directory(self) -> str:
        return os.path.join(self.cache_dir, "mezzanine")

    @property
    def sources_directory(self) -> str:
        return self.source_cache_dir or os.path.join(self.cache_dir, "sources")

    def _check_paths(self, problems: list[str]) -> None:
        origins: list[tuple[str, str, OriginSpec]] = [
            (f"--origin {name}", name, spec) for name, spec in self.origins
        ]
        default = self.originals_spec
        if default is not None:
            origins.append(("--originals", DEFAULT_ORIGIN, default))
        for flag, _, spec in origins:
            if isinstance(spec, DirectorySpec) and not os.path.isdir(spec.root):
                problems.append(f"{flag}: {spec.root!r} is not a directory")
        names = [name for name, _ in self.origins]
        if len(set(names)) != len(names):
            problems.append("--origin: each origin needs a name of its own")
        http_names = {name for _, name, spec in origins if isinstance(spec, HttpSpec)}
        for header in self.origin_headers:
            if header.origin not in http_names:
                problems.append(
                    f"--origin-header: {header.origin!r} is not an HTTP origin "
                    f"({DEFAULT_ORIGIN!r} names --originals)"
                )
        if self.fallback_image is not None:
            _check_fallback_file(self.fallback_image, self.max_source_bytes, problems)
        if self.url_sources_allow_networks and self.url_sources is None:
            problems.append("--url-sources-allow-networks: needs --url-sources")
        try:
            validate_presets(
                self.presets,
                max_output_size=self.max_output_size,
                overlays=self.overlay_fingerprints,
            )
        except BadRequest as error:
            problems.append(f"--presets: {error.message}")
        if self.presets_only and not self.presets:
            problems.append("--presets-only: needs --presets with at least one preset")
        if self.widths and self.widths[-1] > self.max_output_size:
            problems.append(f"--widths: {self.widths[-1]} is over --max-output-size")
        if self.client_hints and not self.widths:
            problems.append("--client-hints: needs --widths (unsnapped hints mint a variant each)")

    def _check_overlays(self, problems: list[str]) -> None:
        """Each overlay decoded and rendered once, whole, before the port is
        bound: a hostile or broken overlay file stops the start."""
        if self.default_overlay is not None and self.default_overlay not in self.overlays:
            problems.append(
                f"--default-overlay: {self.default_overlay!r} is not an overlay of --overlays"
            )
        if not self.overlays:
            return
        # Here, not at the top: the other commands (sign, poison) never load libvips.
        from .render import check_overlay, configure_libvips  # noqa: PLC0415

        configure_libvips(enable_svg=self.enable_svg)  # the loaders a render may use
        for name, overlay in self.overlays.items():
            if len(overlay.data) > self.max_source_bytes:
                problems.append(f"--overlays: overlay {name!r} is over --max-source-bytes")
                continue
            try:
                check_overlay(
                    overlay,
                    max_output_size=self.max_output_size,
                    max_source_pixels=self.max_source_pixels,
                    max_decode_bytes=self.max_decode_bytes,
                )
            except UnprocessableImage as error:
                problems.append(f"--overlays: overlay {name!r} ({overlay.path}): {error.message}")


@dataclass(frozen=True, slots=True)
class _Option:
    flag: str
    dest: str
    convert: Callable[[str], Any]
    help: str
    switch: bool = False  # a flag without a value; its variable takes true/false
    # Repeatable: each use adds one; the variable holds several, split on this.
    repeat: str = ""
    env_name: str = ""  # when the variable is not named after ``dest``

    @property
    def env(self) -> str:
        return ENV_PREFIX + (self.env_name or self.dest.upper())


def _positive_int(text: str) -> int:
    value = _integer(text)
    if value < 1:
        raise ValueError(f"must be at least 1, got {text!r}")
    return value


def _integer(text: str) -> int:
    if not text.strip().isascii() or not text.strip().isdigit():
        raise ValueError(f"must be a whole number, got {text!r}")
    return int(text.strip())


def _port(text: str) -> int:
    value = _integer(text)
    if not 0 <= value <= 65535:
        raise ValueError(f"must be a port number from 0 to 65535, got {text!r}")
    return value


def _byte_size(text: str) -> int:
    value = parse_byte_size(text)
    if value < 1:
        raise ValueError(f"must be at least 1 byte, got {text!r}")
    return value


def _directory(text: str) -> str:
    if not text.strip():
        raise ValueError("must not be empty")
    return os.path.abspath(os.path.expanduser(text))


def _host(text: str) -> str:
    if not text.strip():
        raise ValueError("must not be empty")
    return text.strip()


def _quality_list(text: str) -> dict[OutputFormat, Quality]:
    quality = dict(DEFAULT_QUALITY)
    for item in text.split(","):
        name, sep, value = item.partition("=")
        fmt = FORMAT_NAMES.get(name.strip().lower())
        if not sep or fmt is None or not fmt.uses_quality:
            raise ValueError(f"expected e.g. jpeg=80,webp=auto,avif=60, got {item.strip()!r}")
        if value.strip().lower() == AUTO_QUALITY:
            quality[fmt] = AUTO_QUALITY
            continue
        number = _integer(value)
        if not 1 <= number <= 100:
            raise ValueError(f"quality for {name.strip()} must be from 1 to 100, got {value!r}")
        quality[fmt] = number
    return quality


def _auto_quality_target(text: str) -> float:
    low, high = AUTO_QUALITY_TARGETS
    if not _TARGET.fullmatch(text.strip()) or not low <= float(text) <= high:
        raise ValueError(
            f"must be a SSIMULACRA2 score from {low:g} to {high:g} (one decimal at most), "
            f"got {text!r}"
        )
    return float(text)


def _effort(text: str) -> int:
    value = _integer(text)
    if not 0 <= value <= 9:
        raise ValueError(f"must be from 0 (fastest) to 9 (smallest), got {text!r}")
    return value


def _boolean(text: str) -> bool:
    lowered = text.strip().lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off", ""):
        return False
    raise ValueError(f"must be true or false, got {text!r}")


def _presets_file(text: str) -> dict[str, tuple[tuple[str, str], ...]]:
    """A TOML file: one table per preset, its keys being URL parameters."""
    path = _directory(text)  # expands ~ and makes it absolute
    try:
        with open(path, "rb") as handle:
            document = tomllib.load(handle)
    except OSError as error:
        raise ValueError(f"cannot read {path!r}: {error.strerror}") from None
    except tomllib.TOMLDecodeError as error:
        raise ValueError(f"{path!r} is not valid TOML: {error}") from None
    presets: dict[str, tuple[tuple[str, str], ...]] = {}
    for name, table in document.items():
        if not isinstance(table, dict) or not table:
            raise ValueError(f"preset {name!r} must be a table of parameters")
        pairs = []
        for key, value in table.items():
            if isinstance(value, bool) or not isinstance(value, (str, int, float)):
                raise ValueError(f"preset {name!r}: {key} must be a string or a number")
            pairs.append((key, str(value)))
        presets[name] = tuple(pairs)
    return presets


def _seconds(text: str) -> float:
    try:
        value = _non_negative_seconds(text)
    except ValueError:
        value = 0.0
    if value <= 0:
        raise ValueError(f"must be a positive number of seconds, got {text!r}")
    return value


def _non_negative_seconds(text: str) -> float:
    stripped = text.strip()
    if not re.fullmatch(r"[0-9]{1,6}(\.[0-9]{1,6})?", stripped, re.ASCII):
        raise ValueError(f"must be a number of seconds, got {text!r}")
    return float(stripped)


def _signing_keys(text: str) -> tuple[str, ...]:
    keys = tuple(key.strip() for key in text.split(","))
    if not all(keys):
        raise ValueError("must be one or more non-empty keys, comma-separated")
    return keys


def _check_fallback_file(path: str, max_bytes: int, problems: list[str]) -> None:
    """What can be told without libvips (the command line renders it too)."""
    try:
        with open(path, "rb") as handle:
            size = os.fstat(handle.fileno()).st_size
            head = handle.read(16)
    except OSError as error:
        problems.append(f"--fallback-image: cannot read {path!r}: {error.strerror}")
        return
    if size > max_bytes:
        problems.append(f"--fallback-image: {size} bytes, over --max-source-bytes")
    elif not looks_like_image(head, allow_svg=False):
        problems.append(f"--fallback-image: {path!r} is not an image of an accepted format")


def _fallback_status(text: str) -> int:
    if text.strip() != "200":
        raise ValueError(f"must be 200 (or unset: the real status), got {text!r}")
    return 200


def _origin_spec(text: str) -> str:
    spec = parse_origin_spec(text)
    return spec.root if isinstance(spec, DirectorySpec) else text.strip()


def _named_origins(items: Sequence[str]) -> tuple[tuple[str, OriginSpec], ...]:
    return tuple(parse_named_origin(item) for item in items)


def _origin_headers(items: Sequence[str]) -> tuple[OriginHeader, ...]:
    return tuple(parse_origin_header(item) for item in items)


def _s3_addressing(text: str) -> str:
    if text.strip() not in ("auto", "path", "virtual"):
        raise ValueError(f"must be auto, path or virtual, got {text!r}")
    return text.strip()


def _endpoint_url(text: str) -> str:
    if not re.fullmatch(r"https?://[^\s/?#]+/?", text.strip(), re.ASCII):
        raise ValueError(f"must be an http(s)://host[:port] URL, got {text!r}")
    return text.strip()


def _admin_token(text: str) -> str:
    """A token of at least 16 visible ASCII characters, or ``@FILE`` to
    read it from a file (a mounted secret), at start."""
    token = text.strip()
    if token.startswith("@"):
        path = os.path.abspath(os.path.expanduser(token[1:]))
        try:
            with open(path, encoding="utf-8") as handle:
                token = handle.read().strip()
        except (OSError, UnicodeDecodeError) as error:
            raise ValueError(f"cannot read the token file {path!r}: {error}") from None
    if not re.fullmatch(r"[\x21-\x7e]{16,}", token, re.ASCII):
        # Never the token itself in the message: it is a secret.
        raise ValueError("the token must be at least 16 visible ASCII characters, no spaces")
    return token


def _log_format(text: str) -> str:
    if text not in ("text", "json"):
        raise ValueError(f"must be text or json, got {text!r}")
    return text


_OPTIONS = (
    _Option("--host", "host", _host, "address to listen on (default 127.0.0.1)"),
    _Option("--port", "port", _port, "port to listen on (default 8080)"),
    _Option(
        "--originals",
        "originals",
        _origin_spec,
        "originals: a directory, http(s):// prefix or s3://BUCKET[/PREFIX] (default: samples)",
    ),
    _Option(
        "--origin",
        "origins",
        _named_origins,
        "NAME=SPEC, repeatable: /picture/NAME/... reads from SPEC",
        repeat=" ",
    ),
    _Option(
        "--origin-header",
        "origin_headers",
        _origin_headers,
        "ORIGIN=Header: value (or @FILE), repeatable: sent to that HTTP origin only",
        repeat="\n",
    ),
    _Option(
        "--url-sources",
        "url_sources",
        HostPatterns.parse,
        "hosts ?url= may fetch from: host[:port], *.domain, * (off)",
    ),
    _Option(
        "--url-sources-allow-networks",
        "url_sources_allow_networks",
        parse_networks,
        "CIDRs URL sources may reach despite the SSRF rules (none)",
    ),
    _Option("--origin-max-redirects", "origin_max_redirects", _integer, "redirects followed (3)"),
    _Option(
        "--origin-connect-timeout",
        "origin_connect_timeout",
        _seconds,
        "seconds to connect to an origin (3); 504",
    ),
    _Option(
        "--origin-timeout", "origin_timeout", _seconds, "seconds a download may take (10); 504"
    ),
    _Option(
        "--origin-concurrency",
        "origin_concurrency",
        _positive_int,
        "downloads at once per origin host, per worker (8)",
    ),
    _Option(
        "--source-cache-dir",
        "source_cache_dir",
        _directory,
        "downloaded originals' cache (default: sources/ in --cache-dir)",
    ),
    _Option(
        "--source-cache-max-bytes",
        "source_cache_max_bytes",
        _byte_size,
        "bound of the downloaded originals' cache (1GiB)",
    ),
    _Option(
        "--source-ttl",
        "source_ttl",
        _non_negative_seconds,
        "seconds a downloaded original is trusted before revalidation (60)",
    ),
    _Option(
        "--source-stale-if-error",
        "source_stale_if_error",
        _non_negative_seconds,
        "seconds past its TTL an original is served when revalidation fails (86400)",
    ),
    _Option(
        "--source-negative-ttl",
        "source_negative_ttl",
        _non_negative_seconds,
        "seconds an origin's 404 is remembered (10)",
    ),
    _Option(
        "--s3-endpoint-url",
        "s3_endpoint_url",
        _endpoint_url,
        "S3-compatible endpoint (default: AWS_ENDPOINT_URL, else AWS)",
    ),
    _Option("--s3-region", "s3_region", _host, "S3 region (default: the AWS configuration)"),
    _Option(
        "--s3-addressing", "s3_addressing", _s3_addressing, "S3 addressing: auto, path, virtual"
    ),
    _Option("--cache-dir", "cache_dir", _directory, "disk cache directory (default: per user)"),
    _Option("--cache-max-bytes", "cache_max_bytes", _byte_size, "cache bound (default 1GiB)"),
    _Option(
        "--mezzanine",
        "mezzanine",
        _boolean,
        "render an original's later variants from one 2048-px copy of it (on; --no-mezzanine)",
        switch=True,
    ),
    _Option(
        "--mezzanine-max-bytes",
        "mezzanine_max_bytes",
        _byte_size,
        "bound of the mezzanines' directory, mezzanine/ in --cache-dir (256MiB)",
    ),
    _Option("--workers", "workers", _positive_int, "processes sharing port and cache (1)"),
    _Option("--concurrency", "concurrency", _positive_int, "renders at once (default: CPUs)"),
    _Option(
        "--total-concurrency",
        "total_concurrency",
        _positive_int,
        "renders at once over all workers (default: CPUs)",
    ),
    _Option("--queue", "queue", _integer, "renders waiting before 503 (default 64)"),
    _Option(
        "--max-source-pixels", "max_source_pixels", _positive_int, "largest original (100000000)"
    ),
    _Option("--max-output-size", "max_output_size", _positive_int, "largest width/height (4096)"),
    _Option("--max-source-bytes", "max_source_bytes", _byte_size, "largest original file (100MB)"),
    _Option(
        "--decode-budget",
        "decode_budget",
        _byte_size,
        "whole-image decode memory of renders at once, per worker (512MB)",
    ),
    _Option(
        "--max-decode-bytes",
        "max_decode_bytes",
        _byte_size,
        "largest whole-image decode of one original (1GB); 422",
    ),
    _Option("--max-age", "max_age", _integer, "Cache-Control max-age in seconds (86400)"),
    _Option(
        "--cdn-stale-while-revalidate",
        "cdn_stale_while_revalidate",
        _integer,
        "Cache-Control stale-while-revalidate in seconds (86400); 0 leaves it out",
    ),
    _Option(
        "--cdn-stale-if-error",
        "cdn_stale_if_error",
        _integer,
        "Cache-Control stale-if-error in seconds (604800); 0 leaves it out",
    ),
    _Option(
        "--admin-token",
        "admin_token",
        _admin_token,
        "bearer token of POST /admin/purge, or @FILE (off: no admin endpoint)",
    ),
    _Option(
        "--quality",
        "quality",
        _quality_list,
        "per-format q, 1-100 or auto (default jpeg=80,webp=80,avif=60)",
    ),
    _Option(
        "--auto-quality-target",
        "auto_quality_target",
        _auto_quality_target,
        f"q=auto's SSIMULACRA2 target, 30-95 ({DEFAULT_AUTO_QUALITY_TARGET:g})",
    ),
    _Option("--avif-effort", "avif_effort", _effort, "AVIF encoder effort 0-9 (default 0)"),
    _Option("--max-frames", "max_frames", _positive_int, "animation frames kept (100)"),
    _Option("--presets", "presets", _presets_file, "TOML file of named parameter sets"),
    _Option(
        "--presets-only",
        "presets_only",
        _boolean,
        "refuse ad-hoc sizes, q, bg and the operations (off)",
        switch=True,
    ),
    _Option(
        "--widths",
        "widths",
        parse_widths,
        "width ladder, e.g. 320,640,960,1280,1920,2560: widths snap up to it (off)",
    ),
    _Option(
        "--client-hints",
        "client_hints",
        _boolean,
        "size requests without w/dpr by Sec-CH-Width and Sec-CH-DPR (needs --widths)",
        switch=True,
    ),
    _Option(
        "--server-timing",
        "server_timing",
        _boolean,
        "a Server-Timing header on images: cache, origin, queue, render, write (off)",
        switch=True,
    ),
    _Option(
        "--overlays",
        "overlays",
        load_overlays,
        "TOML file of named overlay images (watermarks): overlay=NAME",
    ),
    _Option(
        "--default-overlay",
        "default_overlay",
        _host,
        "an overlay of --overlays put on every output a preset gives no other (none)",
    ),
    _Option("--render-timeout", "render_timeout", _seconds, "seconds a render may take (20); 504"),
    _Option(
        "--poison-ttl",
        "poison_ttl",
        _seconds,
        "seconds a crash counts against the originals in flight (3600); 2 crashes: 422",
    ),
    _Option(
        "--drain-seconds",
        "drain_seconds",
        _non_negative_seconds,
        "after SIGTERM, seconds /healthz answers 503 before accepting stops (3)",
    ),
    _Option(
        "--header-timeout",
        "header_timeout",
        _seconds,
        "seconds a connection has to send a whole request head (10)",
    ),
    _Option("--enable-svg", "enable_svg", _boolean, "accept SVG originals (off)", switch=True),
    _Option(
        "--keep-copyright",
        "keep_copyright",
        _boolean,
        "keep the original's creator and copyright fields, all else stripped (on)",
        switch=True,
    ),
    _Option(
        "--fast-shrink-on-load",
        "fast_shrink_on_load",
        _boolean,
        "let JPEGs shrink on load to the output size, not 1.5-2x it: faster, some aliasing (off)",
        switch=True,
    ),
    _Option(
        "--signing-key",
        "signing_keys",
        _signing_keys,
        "URL signing keys, comma-separated: any verifies, the first signs",
        env_name="SIGNING_KEY",
    ),
    _Option(
        "--fallback-image",
        "fallback_image",
        _directory,
        "image answered at the requested size instead of a 404 or 422 (none)",
    ),
    _Option(
        "--fallback-status",
        "fallback_status",
        _fallback_status,
        "200: answer the fallback with 200 (default: the real status)",
    ),
    _Option(
        "--fallback-max-age",
        "fallback_max_age",
        _integer,
        "Cache-Control max-age of a fallback answer in seconds (60)",
    ),
    _Option("--log-format", "log_format", _log_format, "text or json (default text)"),
)


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> Any:  # noqa: ANN401 - argparse's signature
        raise SettingsError(message)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="image-factory",
        # No prefixes: "--no-presets" must not pass for "--no-presets-only".
        allow_abbrev=False,
        description="Resize and re-encode images on the fly. Every flag has an "
        "IMAGE_FACTORY_* environment variable; the flag wins.",
        epilog="image-factory sign URL prints URL with its signature (image-factory sign --help). "
        "image-factory loadtest URL --paths FILE load-tests your own deployment "
        "(image-factory loadtest --help). image-factory poison list|clear [PATH] shows and "
        "lifts the refusal of originals that crashed the renderer (image-factory poison --help). "
        "image-factory purge PATH|--prefix PREFIX removes an original's variants and downloaded "
        "copy (image-factory purge --help).",
    )
    for option in _OPTIONS:
        if option.switch:
            parser.add_argument(
                option.flag, dest=option.dest, action="store_const", const="true", help=option.help
            )
            # So that a command line can turn off what the environment turned on.
            parser.add_argument(
                "--no-" + option.flag.removeprefix("--"),
                dest=option.dest,
                action="store_const",
                const="false",
                help=f"turn {option.flag} off, whatever {option.env} says",
            )
        elif option.repeat:
            parser.add_argument(
                option.flag, dest=option.dest, action="append", default=None, help=option.help
            )
        else:
            parser.add_argument(option.flag, dest=option.dest, default=None, help=option.help)
    parser.add_argument(
        "--print-examples", action="store_true", help="print example URLs on start-up"
    )
    return parser
