"""Every image of the conformance corpus through the real server."""

from __future__ import annotations

import pytest

from .conftest import (
    Client,
    CorpusImage,
    corpus_images,
    decode,
    original_has_alpha,
    upright_size,
)

IMAGES = corpus_images()
BOX = (80, 60)
PILLOW_FORMAT = {
    "image/jpeg": "JPEG",
    "image/png": "PNG",
    "image/webp": "WEBP",
    "image/avif": "AVIF",
    "image/gif": "GIF",
}
# What the wheel's libvips cannot decode at all: these must be refused.
ALWAYS_REFUSED = {"heic_hevc.heif", "avifs_animated.avifs", "svg_logo.svg"}


MEDIA_TYPE = {
    "jpeg": "image/jpeg",
    "png": "image/png",
    "webp": "image/webp",
    "avif": "image/avif",
    "gif": "image/gif",
}


def native_media_type(image: CorpusImage) -> str:
    """The contract's default: the original's format, or PNG/JPEG by alpha
    when that format cannot be written (TIFF here)."""
    suffix = image.name.rsplit(".", 1)[-1]
    if suffix == "jpg":
        return "image/jpeg"
    if suffix in MEDIA_TYPE:
        return MEDIA_TYPE[suffix]
    return "image/png" if original_has_alpha(image.path) else "image/jpeg"


@pytest.mark.parametrize("requested", [None, "jpeg", "png", "webp", "avif", "gif"])
@pytest.mark.parametrize("image", IMAGES, ids=[image.name for image in IMAGES])
async def test_corpus_image_renders_or_is_refused_cleanly(
    client: Client, image: CorpusImage, requested: str | None
) -> None:
    """A 200 that decodes at the right size and format, or an allowed 422."""
    query = f"scalex={BOX[0]}&scaley={BOX[1]}"
    if requested:
        query += f"&encoding={requested}"
    response = await client.get(f"/picture/{image.name}?{query}")
    body = await response.read()
    if image.name in ALWAYS_REFUSED:
        assert response.status == 422, body
    if response.status == 422:
        assert image.may_be_refused, f"{image.name} refused: {body!r}"
        assert response.content_type == "application/json"
        assert (await response.json())["status"] == 422
        return
    assert response.status == 200, body
    assert int(response.headers["Content-Length"]) == len(body)
    decoded = decode(body)
    assert PILLOW_FORMAT[response.content_type] == decoded.format
    expected_type = MEDIA_TYPE[requested] if requested else native_media_type(image)
    assert response.content_type == expected_type
    width, height = upright_size(image.path)
    scale = min(BOX[0] / width, BOX[1] / height, 1.0)
    assert decoded.width <= min(BOX[0], width)
    assert decoded.height <= min(BOX[1], height)
    assert abs(decoded.width - width * scale) <= 1
    assert abs(decoded.height - height * scale) <= 1
