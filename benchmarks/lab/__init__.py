"""Research instruments: narrower measurements than ``make bench``'s side by
side comparison, each run on its own and none part of ``make bench``.

- ``instructions`` (``make bench-instructions``, about 12 minutes): the
  instructions each side executes for the same 24 uncached renders, counted
  by valgrind's callgrind (plain pyvips and the service's render path in
  process, the service over HTTP, Pillow in process, the Flask + Pillow
  baseline under gunicorn). A measure the machine's noise cannot move, but
  blind to the kernel's time, cache misses and idle cores.
- ``cores`` (``make bench-cores``, about 8 minutes): each server against its
  library's in-process loop at the same moment, each pinned to a CPU of its
  own, then swapped: what a server adds to its library, free of the
  minute-to-minute drift of a shared machine.
- ``tuning``: the libvips settings behind the service's defaults, in
  process over the corpus: threads per render x renders at once and the
  allocator, AVIF and WebP effort, JPEG and PNG save options (``--pngs``
  measures your own PNGs).
- ``encoder_options``: encoder options that cost no encode time (JPEG's
  quantisation tables, WebP's presets) against the service's, by
  SSIMULACRA2 at the same q and bytes at an equal score.
- ``shrink_quality``: what each competitor's JPEG shrink-on-load costs in
  quality, as PSNR against an exact reduction.
- ``cache_startup``: how long a restart takes to open a disk cache of N
  entries.
- ``filters``: what blur, sharpen and trim cost against a plain render of
  the same original to the same output (renders/s, CPU, peak RSS).
- ``origin_fetch``: remote originals from nginx on loopback: what a first
  download adds to a render, against ``curl`` of the same file, and the
  peak RSS of ten large originals downloaded and rendered at once, against
  the same from a local directory.
- ``operations``: what crop, rotate, flip and fp cost against a plain
  resize of an original the size of the crop (renders/s, peak RSS).
- ``overlay_cost``: a render with an overlay against the same without.
- ``handshake``: the parent's side of ``benchmarks.libcost``'s stdin/stdout
  handshake, shared by ``instructions`` and ``cores``.

Run each as ``.venv/bin/python -m benchmarks.lab.NAME --help``; the three that
write results put them in ``benchmarks/results/`` under their own prefix
(``instructions-<date>.*``, ``cores-<date>.*``, ``origin-fetch-<date>.*``).
"""
