"""The render: the only package of ``service`` that imports pyvips.

Its modules, in the order a render meets them (``pipeline.STEPS``):

- ``header``: the original's header, read once per original into plain
  ``HeaderFacts``; the output format and frames (the first step);
- ``limits``: refusals from those facts (side, pixels, scans, decode memory);
  ``memory``: the whole-image decode estimate; ``jpeg_markers``: the scan count;
- ``crop``: the region of the original to read, and its loader;
- ``trim``: the uniform border cut away (the original decoded whole);
- ``resize``: shrink-on-load to the fit mode's box, a focal point's cover
  window (``geometry``: the box arithmetic; ``frames``: animation strips);
- ``orient``: rotate and flip, on the resized image;
- ``colour``: ICC and CMYK to sRGB, 8 bits (``icc``: which profiles are sRGB);
- ``blur``, ``sharpen``: filters of the output pixels;
- ``pad``, ``flatten``: fit=pad's box, alpha onto ``bg``; between them
  ``overlay``: a named watermark on the final canvas (and its sizes' LRU);
- ``rights``: the creator and copyright fields, read with the header and
  written anew (``rights_codecs``: their EXIF, IPTC and XMP bytes);
- ``auto_quality``: q=auto's search for the lowest q whose score reaches
  the target (``ssimulacra2``: the score, with numpy);
- ``save``: encoder options, written through ``output``'s descriptor writer;
- ``mezzanine``: an original's smaller, fast-reading copy, built once and
  read by the resize step (and ``crop``'s region) where it holds enough pixels;
- ``info``: /info's document, from one small render of its own beside the
  steps (its hashes: ``service.placeholders``);
- ``failures``: libvips' messages made one line, and the render's deadline;
- ``request``: what is asked (per process, per request); ``context``: what
  the steps share; ``libvips``: process-wide setup; ``pipeline``: the steps.
"""

import os

# Before the first pyvips import, which every submodule makes: libvips reads
# these once, when it starts.
os.environ.setdefault("VIPS_CONCURRENCY", "1")
# Drop libvips' warnings ("error in tile", "read gave 1 warnings") in C: a
# corrupt original produces dozens, and failures reach us as exceptions.
os.environ.setdefault("VIPS_WARNING", "0")

from .geometry import FAST_DEPTH, LIBVIPS_DEPTH, SERVICE_DEPTH, ShrinkDepth
from .header import HeaderFacts, read_facts
from .info import INFO_VERSION, InfoRequest, write_info
from .libvips import configure_libvips, libvips_version
from .limits import decode_reservation
from .mezzanine import MezzanineUnusable, mezzanine_size, worth_building
from .mezzanine import build as build_mezzanine
from .output import OutputWriteError
from .overlay import OverlayLibrary, check_overlay
from .pipeline import STEPS, RenderResult, render
from .request import RenderPolicy, RenderRequest

# Bump whenever a change to the render changes output bytes (save options,
# colour handling, geometry): it is part of every cache key, so old renders
# are never served for new ones.
PIPELINE_VERSION = 19  # 19: q=auto WebP lossless where q98 misses (2 of 54 lab outputs moved)

__all__ = [
    "FAST_DEPTH",
    "INFO_VERSION",
    "LIBVIPS_DEPTH",
    "PIPELINE_VERSION",
    "SERVICE_DEPTH",
    "STEPS",
    "HeaderFacts",
    "InfoRequest",
    "MezzanineUnusable",
    "OutputWriteError",
    "OverlayLibrary",
    "RenderPolicy",
    "RenderRequest",
    "RenderResult",
    "ShrinkDepth",
    "build_mezzanine",
    "check_overlay",
    "configure_libvips",
    "decode_reservation",
    "libvips_version",
    "mezzanine_size",
    "read_facts",
    "render",
    "worth_building",
    "write_info",
]
