"""What the application and each request carry, as typed keys.

aiohttp's ``AppKey``/``RequestKey`` instead of string keys (a string key is a
``NotAppKeyWarning``, an error under the tests' warning filter), and one
accessor per key so that modules ask for the one thing they need instead of
importing keys from whichever module happened to set them.
"""

from __future__ import annotations

from aiohttp import web

from ..metrics import Metrics
from ..origins.build import OpenOrigins
from ..purge_stamp import PurgeStamp
from ..render import RenderPolicy
from ..renders import RenderService
from ..settings import Settings
from .fallback import Fallback
from .hit_memo import HitMemo
from .locate import Locator


class Lifecycle:
    """Whether the process is draining (/healthz says 503: set once shutdown
    has begun) and whether it is stopping (no longer accepting)."""

    def __init__(self) -> None:
        self.draining = False
        self.stopping = False


SETTINGS = web.AppKey("settings", Settings)
POLICY = web.AppKey("policy", RenderPolicy)
ORIGINS = web.AppKey("origins", OpenOrigins)
RENDERS = web.AppKey("renders", RenderService)
LOCATOR = web.AppKey("locator", Locator)
METRICS = web.AppKey("metrics", Metrics)
FALLBACK: web.AppKey[Fallback | None] = web.AppKey("fallback")
# Each overlay's name and fingerprint, built once: the spec parser asks for
# them on every request.
OVERLAY_FINGERPRINTS = web.AppKey("overlay_fingerprints", dict[str, str])
LIFECYCLE = web.AppKey("lifecycle", Lifecycle)
# The purge generation every process of the cache directory shares.
PURGE_STAMP = web.AppKey("purge_stamp", PurgeStamp)
# Everything besides the request that shapes an output, the render's
# PIPELINE_VERSION included (server.app.output_settings): part of every key.
OUTPUT_SETTINGS = web.AppKey("output_settings", str)
# What requests for local originals were answered with (server/hit_memo.py).
HIT_MEMO = web.AppKey("hit_memo", HitMemo)

REQUEST_ID = web.RequestKey("request_id", str)
CACHE_STATUS = web.RequestKey("cache_status", str)
ORIGIN = web.RequestKey("origin", str)  # the origin a request read from, for the access log
RENDER_SECONDS = web.RequestKey("render_seconds", float)


def settings(app: web.Application) -> Settings:
    return app[SETTINGS]


def policy(app: web.Application) -> RenderPolicy:
    return app[POLICY]


def origins(app: web.Application) -> OpenOrigins:
    return app[ORIGINS]


def renders(app: web.Application) -> RenderService:
    return app[RENDERS]


def locator(app: web.Application) -> Locator:
    return app[LOCATOR]


def metrics(app: web.Application) -> Metrics:
    return app[METRICS]


def fallback(app: web.Application) -> Fallback | None:
    return app[FALLBACK]


def overlay_fingerprints(app: web.Application) -> dict[str, str]:
    return app[OVERLAY_FINGERPRINTS]


def lifecycle(app: web.Application) -> Lifecycle:
    return app[LIFECYCLE]


def output_settings(app: web.Application) -> str:
    return app[OUTPUT_SETTINGS]


def purge_stamp(app: web.Application) -> PurgeStamp:
    return app[PURGE_STAMP]


def hit_memo(app: web.Application) -> HitMemo:
    return app[HIT_MEMO]
