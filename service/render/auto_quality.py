"""q=auto: per variant, the lowest q whose SSIMULACRA2 reaches the target.

The score is against the unencoded render at the output size (the image
the save step would encode), with the service's own scorer
(``ssimulacra2``), at most ``MAX_ENCODES`` encodes a variant:

1. two encodes of a *probe*, the render at half its width and height (a
   quarter of its pixels; renders under ``_PROBE_MIN_PIXELS`` are their
   own probe): the format's fixed default q, then the q that a nominal
   slope says reaches the target (at least ``_SPREAD`` steps away); the
   line through the two scores gives the q the probe needs
   (docs/quality.md: the probe's score predicts the full size's with
   r = 0.97-0.99, ±1-3 points image by image);
2. one encode at full size at that q, scored (the first full-size score;
   docs/quality.md: the probe is good enough to start near the answer,
   not to end it). Its difference from the line is the image's own probe
   error, and moves the line;
3. at most one more full-size encode at the q the moved line gives: lower,
   when step 2 passed the target by over ``_OVERSHOOT``, scored, and kept
   only if it still reaches the target; or higher, when step 2 missed,
   kept unscored (no encode is left to check it), a step above the line.

JPEG and AVIF keep chroma whole from q90 (``_FULL_CHROMA``), where score
and bytes jump. The line is fitted and moved on the default's side of
that q only (the second probe stays under it); where it cannot reach the
target there, step 2 tries q90 itself, a step up from a miss under it
lands on q90, and a lower try from q90 or above stays at or above it.
Lossy WebP subsamples chroma at every q: where its answer is q98, scored
short of the target, and an encode is left, the search encodes lossless
WebP (``LOSSLESS``, exact, so unscored) and keeps it if it is no larger.

A render that is its own probe is scored at full size from its first
encode, so it ends as soon as a score lands within ``_OVERSHOOT`` above
the target (one encode, when the default q does), and its answer is never
above a q whose score reached the target (it went a step above a miss,
past a q already seen to reach it, before this rule).

Each scored candidate is decoded as a browser decodes it
(``score_pixels``: AVIF by dav1d). The chosen encode's bytes are what the
save step writes: nothing is encoded twice. What it costs is counted like
any render's: every encode and score runs under the render's deadline
(checked between them; libvips kills an encode past it), and the memory
it holds (the render in memory, the reference's scales) is reserved in
the decode budget with the original's decode (``memory_bytes``, through
``limits``).

Animations are encoded at the format's fixed default q (``FIXED``): a
search over every frame would cost frames times as much. So are renders
under 8 pixels a side, which the metric cannot score (100 at any q).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import pyvips

from ..errors import RenderTimeout
from ..formats import AUTO_QUALITY, FIXED_QUALITY, OutputFormat
from . import score_pixels
from .encoding import FULL_CHROMA_FROM, encode_options
from .request import RenderPolicy, RenderRequest, quality_for

if TYPE_CHECKING:
    from .context import RenderContext
    from .header import HeaderFacts

MAX_ENCODES = 4
# Where the search starts, and what an animation is encoded at.
FIXED = FIXED_QUALITY
# The q range searched, per format.
_RANGE = {OutputFormat.JPEG: (20, 98), OutputFormat.WEBP: (20, 98), OutputFormat.AVIF: (15, 95)}
# SSIMULACRA2 points per q step, for the second probe (the harness' curves
# over the corpus photos at 800 px, q 60-90: 0.4-0.7).
_SLOPE = 0.5
_SLOPES = (0.15, 3.0)  # what a measured slope is held within
# The two probes' q at least this far apart: nearer, the scores' noise
# (a few tenths of a point) is the slope (AVIF q57 and q60 of one photo
# scored 0.2 apart, and the line's answer was q28).
_SPREAD = 5
# From this q libvips' jpegsave and heifsave keep chroma whole (their
# subsample_mode "auto"; JPEG also leaves table 5 for Annex K there), and
# score and bytes jump: on drawn images with coloured lines and text at
# 800 px, JPEG q89 -> q90 scored 9-17 points more in 25-60 % more bytes,
# AVIF 9-16 points; on photos JPEG 3.4 points in 37 %. A line fitted on one
# side says nothing about the other, so the search keeps its line on the
# default's side and, where that line cannot reach the target, tries q90.
_FULL_CHROMA = {OutputFormat.JPEG: FULL_CHROMA_FROM, OutputFormat.AVIF: FULL_CHROMA_FROM}
# The q a search reports for a lossless answer. Lossy WebP always
# subsamples chroma, so coloured text and lines can miss a target at q98
# that lossless reaches exactly, often in fewer bytes (the corpus' two
# such diagrams: 0.67x and 0.75x q98's bytes).
LOSSLESS = 100
# The probe scores WebP 1.8 points high on average (docs/quality.md).
_PROBE_BIAS = {OutputFormat.WEBP: 1.8}
# A full-size score this far above the target is worth one more encode
# and score a step or more lower; nearer, the q is kept (a full-size
# score costs more than the render it refines).
_OVERSHOOT = 1.0
# Renders of fewer pixels are their own probe: the probe of a small image
# predicts it badly (a 480x320 photo's 240-px probe scored 25 points under
# it; docs/quality.md: the worst pair was a 512-px photo's 256-px probe),
# and its full-size scores are cheap.
_PROBE_MIN_PIXELS = 300_000
# SSIMULACRA2 has no scale under 8 pixels a side: a narrower render scores
# 100 at any q, so it keeps the fixed default. ssimulacra2.SMALLEST, copied
# (importing it loads numba; a test holds the two equal).
_SCORED_MIN_SIDE = 8
# Memory a search holds per output pixel: the render in memory (libvips',
# 3-4 bytes), the references' scales (XYB, blur, blurred square in float32
# over all scales; twice over with alpha, scored on two greys), the
# linear scales a candidate is scored in and its decoded pixels.
# tracemalloc's peak of the rest (tests/test_auto_quality.py): 85 bytes
# opaque, 145 with alpha.
BYTES_PER_PIXEL = 170


@dataclass(slots=True)
class Search:
    """What a search did: every encode (q, full size or probe, its score
    or None when unscored), and the chosen q with its bytes (``LOSSLESS``:
    a lossless encode)."""

    quality: int = 0
    data: bytes = b""
    encodes: list[tuple[int, bool, float | None]] = field(default_factory=list)


def choose_quality(context: RenderContext) -> None:
    """Step: for q=auto, search the q and keep its encoded bytes for save."""
    output = context.output
    if not output.uses_quality:
        return
    if quality_for(output, context.policy, context.request) != AUTO_QUALITY:
        return
    if context.frames > 1 or min(context.image.width, context.image.height) < _SCORED_MIN_SIDE:
        context.quality = FIXED[output]
        return
    context.deadline.watch(context.image)
    image = context.image.copy_memory()  # the render, decoded and resized, once
    context.image = image

    def encoded(picture: pyvips.Image, options: dict[str, object]) -> bytes:
        if context.deadline.passed():
            raise RenderTimeout(f"the render took longer than {context.policy.timeout_seconds:g} s")
        context.deadline.watch(picture)
        data: bytes = picture.write_to_buffer(output.suffix, **options)
        return data

    def encode(picture: pyvips.Image, quality: int) -> bytes:
        # Table 5 at every q under 90, even where a fixed q would keep an
        # original's Annex K (encoding.py): the search's lines take the
        # score to rise steadily with q, and Annex K's window around the
        # original's own q scores 0.5-7 points above table 5's curve, a step
        # at each of its ends.
        return encoded(picture, encode_options(output, context.policy, quality, context.keep))

    def encode_lossless(picture: pyvips.Image) -> bytes:
        return encoded(picture, {"keep": context.keep, "lossless": True})

    # Lossy WebP subsamples chroma at every q; JPEG and AVIF keep it whole
    # from q90, and browsers show lossless JPEG nowhere.
    lossless = encode_lossless if output is OutputFormat.WEBP else None
    search = search_quality(image, output, context.policy.auto_quality_target, encode, lossless)
    if context.deadline.passed():  # the last score ran past it
        raise RenderTimeout(f"the render took longer than {context.policy.timeout_seconds:g} s")
    context.quality = search.quality
    context.encoded = search.data


class _Encodes:
    """A search's encodes of the render (``at_full``) or its probe, each
    decoded and scored once, and the bytes of each kept for the answer."""

    def __init__(
        self,
        image: pyvips.Image,
        output: OutputFormat,
        encode: Callable[[pyvips.Image, int], bytes],
    ) -> None:
        # Imported here, not at start: numpy, numba and LLVM add 190 MB
        # to a process's RSS, and only a q=auto render needs them.
        from .ssimulacra2 import Reference  # noqa: PLC0415

        self.image, self._output, self._encode = image, output, encode
        self.small = image.width * image.height < _PROBE_MIN_PIXELS
        self.probe = image if self.small else image.resize(0.5).copy_memory()
        self._references = {True: Reference(score_pixels.pixels_of(image))}
        self._references[False] = (
            self._references[True] if self.small else Reference(score_pixels.pixels_of(self.probe))
        )
        self.search = Search()
        self._done: dict[tuple[bool, int], tuple[bytes, float]] = {}

    def score(self, at_full: bool, quality: int) -> float:
        """The score of the render (or its probe) encoded at ``quality``;
        a render that is its own probe is scored at full size."""
        at_full = at_full or self.small
        if (at_full, quality) not in self._done:
            picture = self.image if at_full else self.probe
            data = self._encode(picture, quality)
            decoded = score_pixels.decoded_pixels(data, self._output, alpha=picture.hasalpha())
            score = self._references[at_full].score(decoded)
            self.search.encodes.append((quality, at_full, score))
            self._done[at_full, quality] = data, score
        return self._done[at_full, quality][1]

    def settle(self, quality: int) -> Search:
        """The answer: the full-size encode at ``quality``, scored or not."""
        if (True, quality) in self._done:
            self.search.data = self._done[True, quality][0]
        else:  # unscored: no encode is left to check it
            self.search.data = self._encode(self.image, quality)
            self.search.encodes.append((quality, True, None))
        self.search.quality = quality
        return self.search

    def full_score(self, quality: int) -> float | None:
        """The full-size score at ``quality``, if it was scored."""
        done = self._done.get((True, quality))
        return None if done is None else done[1]

    def highest_missing(self, target: float) -> int:
        """The highest q whose full-size score missed ``target`` (0: none)."""
        return max(
            (q for (at_full, q), (_, score) in self._done.items() if at_full and score < target),
            default=0,
        )

    def lowest_reaching(self, target: float) -> int | None:
        """The lowest q whose full-size score reached ``target``."""
        return min(
            (q for (at_full, q), (_, score) in self._done.items() if at_full and score >= target),
            default=None,
        )


def search_quality(
    image: pyvips.Image,
    output: OutputFormat,
    target: float,
    encode: Callable[[pyvips.Image, int], bytes],
    lossless: Callable[[pyvips.Image], bytes] | None = None,
) -> Search:
    """The lowest q (at most ``MAX_ENCODES`` encodes through ``encode``)
    whose encode of ``image`` scores ``target`` or more; or ``lossless``'s
    encode, where the top q misses and it is no larger."""
    low, high = _RANGE[output]
    first = FIXED[output]
    # The qs that share the default's chroma, where the line holds.
    whole = _FULL_CHROMA.get(output, high + 1)
    top = whole - 1 if first < whole else high
    encodes = _Encodes(image, output, encode)
    bias = 0.0 if encodes.small else _PROBE_BIAS.get(output, 0.0)

    def good_enough(score: float) -> bool:
        return target <= score < target + _OVERSHOOT

    # 1. Two probes: the line through them, at the target (plus the bias).
    # A render that is its own probe is scored at full size from its first
    # encode, so a score near enough the target ends the search there.
    s1 = encodes.score(False, first)
    if encodes.small and good_enough(s1):
        return encodes.settle(first)
    step = _steps(target + bias - s1, _SLOPE)
    direction = 1 if step > 0 or (step == 0 and s1 < target + bias) else -1
    step = direction * max(abs(step), _SPREAD)
    second = _clamp(first + step, low, top)
    if second == first:  # at an end of the range
        second = _clamp(first - step, low, top)
    s2 = encodes.score(False, second)
    if encodes.small and good_enough(s2):
        return encodes.settle(second)
    slope = _slope(first, s1, second, s2)

    # 2. The full size at the q the line gives; past the default's chroma,
    # the first q with whole chroma.
    guess = _clamp(first + _steps(target + bias - s1, slope), low, high)
    if guess > top:
        guess = whole
    score = encodes.score(True, guess)
    # 3. The line moved by this image's own probe error; one more encode:
    # lower when this one passed the target by a margin, scored; or, when
    # it missed, a step above the moved line, unscored (before this step,
    # 7 of 108 lab runs ended 0.02-1.1 short), unless a full-size score
    # at that q or lower has already reached the target.
    # At whole chroma the offset holds the jump, so the moved line stays
    # there; going up from the default's side it crosses to whole chroma's
    # first q, where the jump is up.
    offset = score - (s1 + slope * (guess - first))
    floor = whole if guess >= whole else low
    better = _clamp(first + _steps(target - offset - s1, slope), floor, high)
    answer = guess
    if score >= target + _OVERSHOOT and better < guess:
        if encodes.score(True, better) >= target:
            answer = better
    elif score < target and guess < high:
        # Above every q seen to miss at full size, too: a render that is
        # its own probe may have missed above the guess.
        answer = _clamp(max(better, guess, encodes.highest_missing(target)) + 1, low, high)
        if guess < whole < answer:
            answer = whole
    # Never above a q whose full-size score reached the target, nor a miss
    # when one did (a render that is its own probe may have four of them).
    seen = encodes.lowest_reaching(target)
    known = encodes.full_score(answer)
    if seen is not None and (seen < answer or (known is not None and known < target)):
        answer = seen
        known = encodes.full_score(answer)
    search = encodes.settle(answer)
    # The top q seen to miss: lossless instead, where an encode is left and
    # it takes no more bytes (exact, so it needs no score).
    if (
        lossless is not None
        and answer == high
        and known is not None
        and known < target
        and len(search.encodes) < MAX_ENCODES
    ):
        exact = lossless(image)
        search.encodes.append((LOSSLESS, True, 100.0))
        if len(exact) <= len(search.data):
            search.quality, search.data = LOSSLESS, exact
    return search


def _steps(points: float, slope: float) -> int:
    """Whole q steps that gain ``points`` at ``slope`` (up: reaching beats
    missing by a step)."""
    return math.ceil(points / slope - 1e-9)


def _slope(q1: int, s1: float, q2: int, s2: float) -> float:
    if q1 == q2:
        return _SLOPE
    measured = (s2 - s1) / (q2 - q1)
    low, high = _SLOPES
    return _SLOPE if not low <= measured <= high else measured


def _clamp(quality: int, low: int, high: int) -> int:
    return max(low, min(high, quality))


def memory_bytes(facts: HeaderFacts, request: RenderRequest, policy: RenderPolicy) -> int:
    """What a q=auto search holds at once for a render of ``facts`` (0
    without q=auto): ``BYTES_PER_PIXEL`` times the output's pixels, bounded
    from the request's box and the original's size."""
    output = request.format or facts.own_format
    if not output.uses_quality or quality_for(output, policy, request) != AUTO_QUALITY:
        return 0
    width, height = facts.width, facts.height
    if request.rotate % 180:
        width, height = height, width
    pixels = width * height
    if request.width is not None and request.height is not None:
        pixels = min(pixels, request.width * request.height)
    else:
        scale = 1.0
        if request.width is not None:
            scale = min(scale, request.width / width)
        if request.height is not None:
            scale = min(scale, request.height / height)
        pixels = math.ceil(pixels * scale * scale)
    side = policy.max_output_size
    return min(pixels, side * side) * BYTES_PER_PIXEL
