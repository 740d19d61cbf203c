"""Which embedded ICC profiles are plain sRGB, so that converting from them
to sRGB would change nothing.

Cameras, phones and Photoshop embed HP's "sRGB IEC61966-2.1" profile (3,144
bytes) in a large share of the web's photos. Converting from it to libvips'
sRGB gives the same 8-bit pixels (maximum difference 0 on
``astronaut.png``) and costs about half as much again as the rest of a small
render (27.7 against 18.4 ms of CPU for that 512x512 PNG), so the render
skips the transform for it.

Recognised by content, not by name: the tag table and tag data must match a
known sRGB profile byte for byte. Only header fields that do not describe the
colour (creator, date, flags, the profile ID) may differ. A profile merely
*called* sRGB (the ICC's "black scaled" variant, for one) still converts.
"""

from __future__ import annotations

import hashlib

_HEADER_BYTES = 128

# SHA-256 of everything after the header of HP's sRGB IEC61966-2.1 profile
# (tests/corpus/srgb-iec61966-2.1.icc).
_HP_SRGB_TAGS = "2c4d46e1e255995e1d2592fecec4d8bf7e1dc78179a1cbf2d607301debc630b3"


def colour_tags_digest(profile: bytes) -> str:
    """The digest under which a profile's colour description is compared."""
    return hashlib.sha256(profile[_HEADER_BYTES:]).hexdigest()


def is_srgb(profile: bytes, *, also: frozenset[str] = frozenset()) -> bool:
    """Whether ``profile`` is HP's sRGB profile, or one whose
    ``colour_tags_digest`` is in ``also`` (libvips' own sRGB profile)."""
    if len(profile) <= _HEADER_BYTES:
        return False
    # Device colour space and connection space, from the header.
    if profile[16:20] != b"RGB " or profile[20:24] != b"XYZ ":
        return False
    digest = colour_tags_digest(profile)
    return digest == _HP_SRGB_TAGS or digest in also
