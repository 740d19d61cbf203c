"""libvips, set up once per process the way a thumbnail server should drive it.

- one libvips worker thread per render (``VIPS_CONCURRENCY=1``, set by the
  package before pyvips is first imported: libvips reads it once):
  parallelism comes from running ``--concurrency`` renders at once, which
  keeps the cores busy without oversubscribing them (with libvips' default
  of one thread per core in every render, a naive server ran at 0.7x the
  Pillow baseline on two cores);
- the operation cache off (``cache_set_max(0)``): every request is a
  different file or size, so it only holds memory;
- untrusted loaders blocked, and an allow-list of loaders on top of that
  (``formats.ACCEPTED_LOADERS``, checked by ``header``).
"""

from __future__ import annotations

import pyvips

# Every pixel load's options: truncated originals are errors, not
# grey-filled images. thumbnail_source ignores its ``fail_on`` keyword
# (libvips 8.18): it must go in the load option string, which is our
# constant, never user text.
LOAD_OPTIONS = "fail_on=truncated"
# Whether any app of this process reads mezzanines (configure_libvips).
_NATIVE_LOADER = {"allowed": False}


def configure_libvips(*, enable_svg: bool = False, mezzanine: bool = False) -> None:
    """Once per process, before any render."""
    # pyvips forwards every GLib message of libvips to Python logging through
    # a Python callback, run inside libvips' own logging. If that callback
    # triggers garbage collection, a finalised image can log again on the
    # same thread: GLib sees a recursive log call and the process aborts
    # (SIGABRT, found by the fuzz tests). Its ~10 info lines per render also
    # cost CPU. Without it, GLib's own handlers apply: warnings are dropped
    # (VIPS_WARNING), info is silent, criticals go to stderr.
    remove_python_log_handler = getattr(pyvips, "_remove_log_handler", None)
    if remove_python_log_handler is not None:
        remove_python_log_handler()
    pyvips.cache_set_max(0)
    pyvips.block_untrusted_set(True)
    if enable_svg:
        # librsvg reading from a Source has no base URI, so it resolves no
        # file or network references; scripts are never run by librsvg.
        pyvips.operation_block_set("VipsForeignLoadSvg", False)
    if mezzanine:
        _NATIVE_LOADER["allowed"] = True
    if _NATIVE_LOADER["allowed"]:
        # libvips' native format, from named files only: the mezzanine
        # store's own (render/mezzanine.py). Originals are opened by
        # descriptor, which this loader cannot read, and held to the
        # loader allow-list besides. Once allowed it stays allowed in the
        # process: block_untrusted_set above would block it again for an
        # app made later in the same process (tests make several).
        pyvips.operation_block_set("VipsForeignLoadVipsSource", False)


def libvips_version() -> str:
    return f"{pyvips.version(0)}.{pyvips.version(1)}.{pyvips.version(2)}"
