"""Placeholders: what a page shows of an image before the image itself.

Pure Python over plain RGBA bytes (row by row, 4 bytes a pixel, not
premultiplied), no libvips: ``render.info`` makes the small render and
hands its pixels here.

- ``thumbhash``: Evan Wallace's ThumbHash (about 25 bytes, with alpha and
  the aspect ratio), bit for bit as the reference JavaScript encodes it;
- ``blurhash``: Wolt's BlurHash (a base-83 string), as the reference
  TypeScript package (npm ``blurhash``) encodes it;
- ``dominant``: the most common colour of the picture, as ``#rrggbb``.

tests/vectors/ holds the reference encoders' outputs for the same pixels
(and the script that made them); the tests compare exactly.
"""
