"""The quality harness (``python -m benchmarks.quality``, ``make bench-quality``):
bytes, encode time, SSIMULACRA2 and SSIM of every encoder's output against
the unencoded render at the same size.

- ``scores``: SSIMULACRA2 (checked against libjxl's own scores) and SSIM;
- ``images``: the photos (the corpus) and the drawn images (screenshots,
  diagrams, logos, a palette PNG, a chart) and their lossless reference
  renders through the service's render path;
- ``encoders``: what is encoded: the service's defaults (its save step's
  options), the sweeps, Pillow's baseline, sharp's defaults;
- ``sharp``: sharp's encodes, by ``sharp_encode.mjs`` in ``.bench-node-quality/``;
- ``harness``: encode every setting (timed), then score every output;
- ``analysis``: the answers (best settings, ratios against sharp, the
  downscaled probe); ``report`` the JSON and Markdown; ``plots`` the chart.
"""
