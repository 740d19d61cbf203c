"""The fallback image: what /picture answers instead of a 404 or a 422.

A page whose original is missing or broken shows an image of the size and
format it asked for, not a broken ``<img>``. The real status is kept
(``--fallback-status 200`` for sites whose CDN or crawler wants a 200),
with ``X-Fallback: 1`` and a short ``max-age`` so that the real image shows
up soon once it exists. The fallback is rendered and cached like any
variant, under its own key (the fallback file's digest, the size, the
format), never under the variant's: its ETag is its own, so once the real
image exists no client is answered ``304`` for the fallback it holds.
Only size and format apply to it (w, h, dpr, fit, gravity, format, q, bg),
and the overlay, which a deployment may force on every image it serves;
the other operations (crop, rotate, trim, ...) were meant for the missing
original.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from dataclasses import dataclass, replace

from ..settings import Settings
from ..sources import Original
from ..spec import Flip, RequestSpec


@dataclass(frozen=True, slots=True)
class Fallback:
    original: Original
    status: int | None  # None: the real status (404 or 422)
    max_age: int


def open_fallback(settings: Settings) -> Fallback | None:
    """The configured fallback (checked at start by ``check_fallback``)."""
    if settings.fallback_image is None:
        return None
    path = os.path.realpath(settings.fallback_image)
    with open(path, "rb") as handle:
        digest = hashlib.file_digest(handle, "sha256").hexdigest()
        info = os.fstat(handle.fileno())
    original = Original(
        relative="fallback",
        path=path,
        size=info.st_size,
        mtime_ns=info.st_mtime_ns,
        inode=info.st_ino,
        # The bytes name it, wherever it lives: every replica keys it alike.
        remote_identity=f"fallback\0sha256:{digest}",
    )
    return Fallback(original, settings.fallback_status, settings.fallback_max_age)


def fallback_spec(spec: RequestSpec) -> RequestSpec:
    """The request as the fallback takes it: its size and format only."""
    return replace(
        spec,
        crop=None,
        trim=None,
        rotate=0,
        flip=Flip.NONE,
        focal_point=None,
        blur=None,
        sharpen=None,
    )


def check_fallback(settings: Settings) -> str | None:
    """Before serving: None when the fallback image renders, else why not.
    In a process of its own (render/check.py), so the supervisor never loads
    libvips."""
    if settings.fallback_image is None:
        return None
    command = [sys.executable, "-m", "service.render.check", settings.fallback_image]
    command += ["--max-source-pixels", str(settings.max_source_pixels)]
    if settings.enable_svg:
        command.append("--enable-svg")
    checked = subprocess.run(command, capture_output=True, text=True, check=False)  # noqa: S603 - our own module
    if checked.returncode == 0:
        return None
    reason = checked.stderr.strip().splitlines()
    return f"--fallback-image: {reason[-1] if reason else 'the check failed'}"
