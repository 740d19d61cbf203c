"""What a decoder holds for the whole image at once, estimated from the header.

Most originals stream (shrink-on-load, sequential access: a few lines in
memory whatever the size). These do not, and their estimate is what the
decode budget reserves and what ``--max-decode-bytes`` refuses.
"""

from __future__ import annotations

import pyvips

from .fields import int_field, str_field

# What a HEIF/AVIF and a GIF decode hold per pixel (and byte of sample).
_HEIF_BYTES_PER_PIXEL = 18
_GIF_BYTES_PER_PIXEL = 6
# Bytes of one sample, per libvips band format.
_SAMPLE_BYTES = {"uchar": 1, "char": 1, "ushort": 2, "short": 2, "uint": 4, "int": 4}
_SAMPLE_BYTES |= {"float": 4, "double": 8, "complex": 8, "dpcomplex": 16}


def whole_image_bytes(header: pyvips.Image) -> int:
    """Bytes held at once for the whole image; 0 when it streams."""
    loader = str(header.get("vips-loader"))
    pixels = header.width * header.height  # one page: loaders default to n=1
    interlaced = bool(int_field(header, "interlaced", 0))
    sample_bytes = 2 if header.format in ("ushort", "short") else 1
    if is_multiscan_jpeg(header):
        # Progressive, or any JPEG in several scans: libjpeg keeps every DCT
        # coefficient (2 bytes each) of every component until the last scan,
        # at full size whatever the shrink-on-load.
        return pixels * _jpeg_coefficient_bytes_per_pixel(header)
    if loader == "pngload_source" and interlaced:
        return pixels * header.bands * sample_bytes  # Adam7: read whole
    if loader == "gifload_source":
        # libnsgif decodes each frame into a full-size RGBA canvas: 5.5 bytes
        # a pixel above idle for a 6000x6000 GIF shrunk to 800 px.
        return pixels * _GIF_BYTES_PER_PIXEL
    if loader == "heifload_source":
        # libheif decodes the whole image (the AV1/HEVC decoder's planes,
        # then RGB(A)) and libvips copies it, as heifload cannot stream:
        # 16.9-17.5 bytes a pixel above idle for 6 and 19 MP 8-bit AVIFs.
        return pixels * _HEIF_BYTES_PER_PIXEL * sample_bytes
    return 0


def decoded_bytes(header: pyvips.Image) -> int:
    """Bytes of one frame decoded whole, at full size, as the loader gives
    it (bands and sample size): what a render holds when it keeps the
    decoded original in memory (trim)."""
    return header.width * header.height * header.bands * _SAMPLE_BYTES[str(header.format)]


def is_multiscan_jpeg(header: pyvips.Image) -> bool:
    """A JPEG in several scans (progressive, or sequential in parts), which
    libjpeg decodes whole, coefficients first, before any pixel comes out."""
    if str(header.get("vips-loader")) != "jpegload_source":
        return False
    return bool(int_field(header, "interlaced", 0) or int_field(header, "jpeg-multiscan", 0))


def _jpeg_coefficient_bytes_per_pixel(header: pyvips.Image) -> int:
    """2 bytes per coefficient, one coefficient per sample: 4:2:0 colour
    has 1.5 samples a pixel, 4:2:2 has 2, unsubsampled one per band."""
    subsampling = str_field(header, "jpeg-chroma-subsample")
    if header.bands == 3 and subsampling == "4:2:0":
        return 3
    if header.bands == 3 and subsampling in ("4:2:2", "4:4:0"):
        return 4
    return 2 * header.bands
