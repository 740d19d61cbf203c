"""Which embedded ICC profiles are plain sRGB, so that converting from them
to sRGB would change nothing.

Cameras, phones and Photoshop embed HP's "sRGB IEC61966-2.1" profile (3,144
bytes, ``profiles/``) in a large share of the web's photos. Converting from
it to libvips' sRGB gives the same 8-bit pixels (maximum difference 0 on
``astronaut.png``) and costs about half as much again as the rest of a small
render (27.7 against 18.4 ms of CPU for that 512x512 PNG), so the render
skips the transform for it.

Recognised by content, not by name: everything after the 128-byte header
(the tag table and the tags: primaries, white point, curves) must equal a
known sRGB profile's byte for byte, and the header must say RGB to XYZ. The
other header fields (creator, date, flags, profile ID) do not describe the
colours and may differ. A profile merely *called* sRGB (the ICC's "black
scaled" variant, for one) still converts. Plain byte comparison, no hashing:
``hashlib`` would map OpenSSL into a render process that may not have it.
"""

from __future__ import annotations

import os

_HEADER_BYTES = 128


# The profiles ship in service/profiles, beside this package.
_PROFILES = os.path.join(os.path.dirname(os.path.dirname(__file__)), "profiles")


def _bundled(name: str) -> bytes:
    with open(os.path.join(_PROFILES, name), "rb") as handle:
        return handle.read()


HP_SRGB = _bundled("srgb-iec61966-2.1.icc")


def is_srgb(profile: bytes, *, also: tuple[bytes, ...] = ()) -> bool:
    """Whether ``profile`` describes the colours of HP's sRGB profile or of
    one of ``also`` (libvips' own sRGB profile, which the caller supplies)."""
    if len(profile) <= _HEADER_BYTES:
        return False
    if profile[16:20] != b"RGB " or profile[20:24] != b"XYZ ":  # device and connection spaces
        return False
    # Same length first, then compared in place: no copy of a profile that
    # may be hundreds of KB (the corpus has a 400 KB one) on every render.
    tags = memoryview(profile)[_HEADER_BYTES:]
    return any(
        len(known) == len(profile) and tags == memoryview(known)[_HEADER_BYTES:]
        for known in (HP_SRGB, *also)
    )
