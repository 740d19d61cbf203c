"""Encode every setting of every image (timed, one at a time), then score
every output against its reference (two processes: scoring is numpy).

Encode times are the median of ``repeat`` runs of the encoder alone, on
pixels already in memory (libvips, Pillow and sharp alike); the scoring
phase comes after all encodes, so it never competes with a timed encode.
"""

from __future__ import annotations

import multiprocessing
import os
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass, replace
from functools import partial
from typing import Any

import numpy as np
import pyvips

from service.render.header import read_facts

from .. import libcost
from ..competitors import service_defaults
from . import encoders, images, scores, sharp
from .encoders import Setting

WIDTH = 800
CHUNK = 30  # outputs per scoring task: both workers stay busy


@dataclass(frozen=True, slots=True)
class Row:
    """One output: what made it, its size and time, its scores."""

    image: str
    kind: str
    width: int
    height: int
    encoder: str
    format: str
    family: str
    q: int | None
    bytes: int
    encode_ms: float | None  # None for the probes (not timed)
    probe: bool = False  # at half the width (a quarter of the area)
    ssimulacra2: float = float("nan")
    ssim: float = float("nan")

    def as_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(slots=True)
class _Pending:
    row: Row
    reference: str  # the reference PNG it is scored against
    output: str


def _pixels(image: pyvips.Image) -> scores.Pixels:
    flat = images.flatten(image)
    return np.ndarray(
        buffer=flat.write_to_memory(), dtype=np.uint8, shape=(flat.height, flat.width, flat.bands)
    )


def _score_image(reference: str, outputs: list[str]) -> list[tuple[float, float]]:
    """In a worker: (SSIMULACRA2, SSIM) of each output against ``reference``."""
    pixels = _pixels(pyvips.Image.new_from_file(reference))
    prepared = scores.Reference(pixels)
    found = []
    for output in outputs:
        distorted = _pixels(pyvips.Image.new_from_file(output))
        found.append((prepared.ssimulacra2(distorted), scores.ssim(pixels, distorted)))
    return found


def renderer() -> libcost.Renderer:
    """The service's render path in process, at its default quality and effort."""
    quality, effort = service_defaults()
    libcost.QUALITY.update(quality)
    libcost.AVIF_EFFORT = effort
    return libcost.service_renderer()


class Harness:
    """Encodes into ``workdir``; ``run`` returns the scored rows."""

    def __init__(self, workdir: str, repeat: int, *, probe: bool = True) -> None:
        self.workdir = workdir
        self.repeat = repeat
        self.probe = probe
        self.render = renderer()
        self.pending: list[_Pending] = []
        self.sharp_jobs: list[tuple[_Pending, sharp.Job]] = []
        self.identical: dict[str, dict[str, bool]] = {}

    def _path(self, stem: str, fmt: str) -> str:
        return os.path.join(self.workdir, f"{len(self.pending)}-{stem}{encoders.SUFFIX[fmt]}")

    def _reference(self, original: images.Original, width: int) -> tuple[pyvips.Image, str]:
        image = images.flatten(
            pyvips.Image.new_from_buffer(self.render(original.path, width, "png"), "")
        )
        path = os.path.join(self.workdir, f"ref-{width}-{original.name}.png")
        image.write_to_file(path, compression=1)
        return image, path

    def add(self, original: images.Original) -> None:
        """Encode every setting of ``original`` (sharp's are queued for ``run``)."""
        with open(original.path, "rb") as handle:
            facts = read_facts(handle.fileno(), allow_svg=False)  # as the service reads it
        width = min(WIDTH, facts.stored_width)
        # As service.render.encoding.requantises_original: at its own size,
        # upright as stored and needing no colour conversion.
        unchanged = (
            width == facts.stored_width
            and facts.orientation == 1
            and not facts.needs_colour_management
        )
        kinds: dict[str, Any] = {
            "has_alpha": facts.has_alpha,
            "drawn": facts.drawn,
            "unchanged_annex_k": facts.jpeg_annex_k_quality if unchanged else None,
        }
        reference, ref_path = self._reference(original, width)
        base = Row(original.name, original.kind, reference.width, reference.height,
                   "", "", "", None, 0, None)  # fmt: skip
        ours = encoders.ours(**kinds)
        if not facts.has_alpha:  # the service's own output, to check ours against
            self.identical[original.name] = {
                s.format: self.render(original.path, width, s.format)
                == encoders.encode_vips(reference, s)
                for s in ours
            }
        for setting in ours + encoders.sweeps(**kinds):
            data, ms = encoders.timed(
                partial(encoders.encode_vips, reference, setting), self.repeat
            )
            self._keep(base, setting, data, ms, ref_path)
        picture = encoders.to_pillow(reference)
        for setting in encoders.pillow():
            data, ms = encoders.timed(
                partial(encoders.encode_pillow, picture, setting), self.repeat
            )
            self._keep(base, setting, data, ms, ref_path)
        for setting in encoders.sharp():
            output = self._path(f"sharp-{setting.family}", setting.format)
            pending = _Pending(self._row(base, setting, 0, None), ref_path, output)
            self.pending.append(pending)
            self.sharp_jobs.append(
                (pending, sharp.Job(ref_path, setting.format, setting.options, output))
            )
        if self.probe and original.kind == "photo":
            small, small_path = self._reference(original, width // 2)
            probe = replace(base, width=small.width, height=small.height, probe=True)
            resized = {**kinds, "unchanged_annex_k": None}  # a probe is always resampled
            for setting in encoders.sweeps(**resized):
                if setting.family == "default" and setting.format != "png":
                    data = encoders.encode_vips(small, setting)
                    self._keep(probe, setting, data, None, small_path)

    @staticmethod
    def _row(base: Row, setting: Setting, size: int, ms: float | None) -> Row:
        return replace(base, encoder=setting.encoder, format=setting.format,
                       family=setting.family, q=setting.q, bytes=size, encode_ms=ms)  # fmt: skip

    def _keep(self, base: Row, setting: Setting, data: bytes, ms: float | None, ref: str) -> None:
        output = self._path(setting.encoder, setting.format)
        with open(output, "wb") as handle:
            handle.write(data)
        self.pending.append(_Pending(self._row(base, setting, len(data), ms), ref, output))

    def run(self) -> tuple[list[Row], dict[str, object]]:
        """sharp's encodes, then every score; the rows and sharp's versions."""
        times, about = sharp.encode([job for _, job in self.sharp_jobs], self.repeat, self.workdir)
        for (pending, job), ms in zip(self.sharp_jobs, times, strict=True):
            pending.row = replace(pending.row, bytes=os.path.getsize(job.output), encode_ms=ms)
        by_reference: dict[str, list[_Pending]] = {}
        for pending in self.pending:
            by_reference.setdefault(pending.reference, []).append(pending)
        spawn = multiprocessing.get_context("spawn")
        chunks = [
            (ref, group[start : start + CHUNK])
            for ref, group in by_reference.items()
            for start in range(0, len(group), CHUNK)
        ]
        with ProcessPoolExecutor(max_workers=2, mp_context=spawn) as pool:
            futures = [pool.submit(_score_image, ref, [p.output for p in c]) for ref, c in chunks]
            for (_, chunk), future in zip(chunks, futures, strict=True):
                for pending, (s2, s1) in zip(chunk, future.result(), strict=True):
                    pending.row = replace(pending.row, ssimulacra2=s2, ssim=s1)
        return [p.row for p in self.pending], about
