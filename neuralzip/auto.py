"""``--model auto``: code each image with the suitable codecs it tries and keep the smallest file.

Which codecs it tries: :func:`candidates` (by default all installed but the slow tiled torch
models of :data:`ON_REQUEST`, which on thumbnails and photographs almost never win).
Guarantees: the chosen file is the smallest among the codecs tried (at least one: the fastest
suitable codec runs even when the budget allows none). The classical codecs are tried first,
each unless its estimated time exceeds what is left of the per-image budget, so slow neural
codecs can never crowd them out: within the budget the result is never larger than the best
classical codec's output (files compare by :func:`coded_bytes`) on images up to
``SAMPLE_SIDE`` x ``SAMPLE_SIDE``, and never larger than the first codec's (JPEG-XL) on
larger ones. A neural codec is tried only when both its estimated encoding time fits what is
left of the budget and its estimated decoding time fits the whole budget, so that a file
auto writes also decodes in about that time. Time estimates come from each codec's measured
throughput on this project's 2-core machine (pixels per second, rounded down).

Estimate before coding: on an image larger than ``SAMPLE_SIDE`` x ``SAMPLE_SIDE``, a codec
after the first is coded in full only if an estimate of its size says it can win (within
``SAMPLE_MARGIN``; ``SAMPLED_MARGIN`` for the local models). Codecs with a model of their
own estimate exactly from a sample of pixels (:meth:`~neuralzip.codecs.local.LocalCodec.estimate_bits`); the other neural codecs
code 32x32 tiles on their own, so ``NEURAL_SAMPLE_TILES`` tiles spread over the image, coded
as the codec codes its tiles, give their density; classical codecs code a centre crop,
compared with the first codec's size on the same crop (a small crop would mislead: classical
codecs pay more per pixel on small images, tiled neural codecs do not). The local models
estimate from the same pixels, so their estimates compare pairwise: of two, the one whose
plain estimate is more than ``PAIRED_MARGIN`` above the other's is skipped before its
head-offset fit, and of two complete estimates (offsets fitted) the one more than
``FITTED_PAIRED_MARGIN`` above before its full encode. What the estimates need that does not
depend on the first codec's size (the samples, the crops, the local models' fits) is
computed while that codec encodes, in another thread (the classical encoders release the GIL
and use one core; the estimates take one core fewer meanwhile, since more threads than cores
slowed both: on kodim08 with two-thread estimates, JPEG-XL's encode beside them took 3.2 s,
with one-thread estimates 2.7 s). So on a photograph auto
costs about one JPEG-XL encode (the estimates beside it) plus the full encode of a codec
that comes close, not one full encode per codec.
"""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import nullcontext
from dataclasses import dataclass, field

import numpy as np

from . import codecs as codec_table
from .codecs.base import Codec
from .images import PixelImage
from .threads import fewer_threads

# Pixels per second on a 2-core machine (benchmarks/results/photos.md and cifar10.md), rounded
# down; used only to skip codecs that would overrun the time budget.
ENCODE_PIXELS_PER_SECOND = {"png": 1_000_000, "j2k": 2_000_000, "jxl": 100_000, "webp": 40_000, "pixelcnn": 10_000,
                            "flow": 25_000, "vae": 20_000, "local": 100_000, "local-photo": 100_000}
DECODE_PIXELS_PER_SECOND = {"pixelcnn": 5_000, "flow": 30_000, "vae": 20_000,  # classical ones: negligible
                            "local": 40_000, "local-photo": 40_000}
# Decoding time over encoding time, per neural codec (benchmarks/results): after a codec has
# encoded an image here, its decoding time is estimated from that measurement, on this machine.
DECODE_PER_ENCODE = {"pixelcnn": 1.3, "flow": 1.3, "vae": 1.2, "local": 1.6, "local-photo": 1.6}
# Codecs in the order they are tried: the classical ones first (cheap, and the guarantee rests
# on them), then the neural ones, likely winners first.
ORDER = ("jxl", "webp", "j2k", "png", "local", "local-photo", "pixelcnn", "flow", "vae")
# Tried only when asked (``candidates("all")``, ``nzip compress --try all``): the tiled torch
# models. On 1,000 class-spread CIFAR-10 test images, all three beside the others lowered
# auto's rate by 0.0001 bits per sub-pixel (PixelCNN++ won 6 of the 1,000 images by at most
# 0.11, the flow and the VAE none) for 10 times the time per image, and importing torch for
# them costs ~1.3 s per process (benchmarks/results/auto_candidates.md); on the Kodak photos
# their estimates never came near (photos.md).
ON_REQUEST = ("pixelcnn", "flow", "vae")
FASTEST = ("png", "j2k", "jxl", "webp", "local", "local-photo", "flow", "pixelcnn", "vae")
DEFAULT_BUDGET = 60.0
SAMPLE_SIDE = 192  # larger images: codecs after the first are estimated before a full encode
NEURAL_SAMPLE_TILES = 8  # 32x32 tiles that estimate a tiled neural codec's density
SAMPLE_MARGIN = 1.03  # code in full when the estimate is within 3% of the best so far
# The local models' estimates are exact code lengths of a pixel sample (offsets fitted): on
# the four Kodak photographs local-photo v3's were 0.03-0.5% below its coded size, so they
# are coded in full only within this margin of the best so far.
SAMPLED_MARGIN = 1.01
# Sample-estimating codecs (the local models) estimate from the same pixels: one whose plain
# (unadapted) estimate is more than this above another's is skipped on large images, its
# head-offset fit and full encode saved. On the four Kodak photographs local v13's plain
# estimate was 1.3-3.0% above local-photo v2's and its coded size 0.3-2.3% above: head
# offsets narrowed the gap by 0.7-1.0 points and never reversed it
# (benchmarks/results/photos.md).
PAIRED_MARGIN = 1.01
# Their complete estimates (head offsets fitted, each model its own, the same pixels) compare
# more finely: one more than this above another's is skipped before its full encode. On the
# four Kodak photographs the estimated difference between local v14 and local-photo v2 was
# within 0.006 bits per sub-pixel (0.2%) of the coded difference (0.011-0.055).
FITTED_PAIRED_MARGIN = 1.002


def coded_bytes(name: str, payload: bytes) -> int:
    """What codec ``name``'s single file costs beyond what every single file of the image
    pays: its payload, less the 4 checksum bytes a sealing codec keeps there (the others'
    compact headers hold them), so that comparing these compares whole files. (In archives
    every entry holds a checksum: there payload sizes compare the files.)"""
    return len(payload) - (4 if codec_table.get_codec(name).seals_checksum else 0)


@dataclass
class Choice:
    """What auto did for one image: the winner and every candidate's size or reason."""

    codec: str
    payload: bytes
    nll_bits: float | None
    sizes: dict[str, int] = field(default_factory=dict)  # payload bytes of each codec tried
    skipped: dict[str, str] = field(default_factory=dict)

    def explain(self, subpixels: int) -> str:
        ranked = sorted(self.sizes.items(), key=lambda kv: kv[1])
        parts = [f"{name} {8 * size / subpixels:.3f}" for name, size in ranked]
        reasons: dict[str, list[str]] = {}
        for name, why in self.skipped.items():
            reasons.setdefault(why, []).append(name)
        skipped = [f"{', '.join(names)} skipped ({why})" for why, names in reasons.items()]
        return (f"auto chose {self.codec}: payload bits/sub-pixel (the .nzip header aside; the local "
                "codecs' payloads hold the 4-byte checksum the others' headers do) ") + ", ".join(parts) + ("; " + ", ".join(skipped) if skipped else "")


def candidates(requested: str | list[str] | None = None) -> list[str]:
    """The installed codecs auto tries, in the order it tries them: by default every one but
    those of :data:`ON_REQUEST`; ``"all"``: every one; or those ``requested`` by name (a
    list, or one comma-separated string). An unknown name, or one auto cannot try or whose
    weights are not installed, raises :class:`~neuralzip.codecs.UnknownCodecError`."""
    available = {spec.name for spec in codec_table.available_specs()}
    if requested is None:
        return [name for name in ORDER if name in available and name not in ON_REQUEST]
    if isinstance(requested, str):
        requested = [part.strip() for part in requested.split(",") if part.strip()]
    if requested == ["all"]:
        return [name for name in ORDER if name in available]
    for name in requested:
        if name not in ORDER:
            raise codec_table.UnknownCodecError(f"auto cannot try {name!r} (it tries: all, {', '.join(ORDER)})")
        if name not in available:
            raise codec_table.UnknownCodecError(f"auto cannot try {name!r}: its weights are not installed")
    if not requested:
        raise codec_table.UnknownCodecError("auto needs at least one codec to try")
    return [name for name in ORDER if name in requested]


def _large(image: PixelImage) -> bool:
    return image.height > SAMPLE_SIDE and image.width > SAMPLE_SIDE


def _encode_seconds(name: str, image: PixelImage) -> float:
    """Codec ``name``'s estimated encoding time of ``image`` on this machine."""
    return image.width * image.height / ENCODE_PIXELS_PER_SECOND.get(name, 10_000)


def _over_budget(name: str, image: PixelImage, spent: float, budget: float) -> str | None:
    """Why codec ``name`` may not be tried on ``image`` with ``spent`` seconds of the budget
    gone (its estimated encoding time overruns what is left, or its decoding time the whole
    budget), or None."""
    estimate = _encode_seconds(name, image)
    if spent + estimate > budget:
        return f"~{estimate:.0f} s to encode estimated, {budget - spent:.0f} s of the budget left"
    decode_estimate = image.width * image.height / DECODE_PIXELS_PER_SECOND.get(name, 1e12)
    if decode_estimate > budget:
        return f"~{decode_estimate:.0f} s to decode estimated (benchmark rate), budget {budget:.0f} s"
    return None


def _encode(codec: Codec, images: list[PixelImage]) -> tuple[list[bytes], list[float | None]]:
    """(payloads, NLL bits or None) of ``images`` coded by ``codec``, each on its own (a
    chained codec codes its images as one payload: one chain per image here)."""
    if codec.chained:
        results = [codec.encode([image]) for image in images]
        return [r.payloads[0] for r in results], [r.nll_bits[0] if r.nll_bits else None for r in results]
    encoded = codec.encode(images)
    return encoded.payloads, encoded.nll_bits or [None] * len(images)


def _crop(image: PixelImage, side: int) -> PixelImage:
    top, left = (image.height - side) // 2, (image.width - side) // 2
    return PixelImage(image.mode, np.ascontiguousarray(image.pixels[top : top + side, left : left + side]),
                      image.palette, image.palette_mode, image.transparency)


class _Estimator:
    """Size estimates of a large image: exact-from-sample where the codec has a model of its
    own, else a centre crop coded by the codec and by the first codec tried."""

    def __init__(self, image: PixelImage, reference: str):
        self.image = image
        self.reference = reference
        self.crop_bits: dict[tuple[str, int], float] = {}
        self.plain: dict[str, float] = {}
        self.own: dict[str, float] = {}  # complete estimates from a codec's own model

    def _crop_bits(self, name: str, side: int) -> float:
        if (name, side) not in self.crop_bits:
            codec = codec_table.get_codec(name)
            crop = _crop(self.image, side)
            quick = getattr(codec, "estimate_payload", None)  # faster settings for a sample, where a codec has them
            self.crop_bits[(name, side)] = 8.0 * len(quick(crop) if quick else codec.encode([crop]).payloads[0])
        return self.crop_bits[(name, side)]

    def _tile_bits(self, codec: Codec) -> float:
        """The codec's bits for the whole image from ``NEURAL_SAMPLE_TILES`` of its 32x32
        tiles, spread evenly over the tile grid (a tiled codec's cost is the sum of its
        tiles')."""
        image, tile = self.image, 32
        rows, columns = image.height // tile, image.width // tile
        picks = np.linspace(0, rows * columns - 1, NEURAL_SAMPLE_TILES).round().astype(int)
        tiles = [PixelImage(image.mode, np.ascontiguousarray(
                     image.pixels[r * tile : (r + 1) * tile, c * tile : (c + 1) * tile]),
                     image.palette, image.palette_mode, image.transparency)
                 for r, c in (divmod(int(k), columns) for k in picks)]
        sampled = sum(len(p) for p in codec.encode(tiles).payloads)
        return 8.0 * sampled * image.width * image.height / (len(tiles) * tile * tile)

    def plain_bits(self, name: str) -> float:
        """A sample-estimating codec's unadapted estimate (cached): paired across codecs."""
        if name not in self.plain:
            self.plain[name] = float(codec_table.get_codec(name).estimate_bits(self.image, adapt=False))
        return self.plain[name]

    def better_rival(self, codec: Codec, rivals: list[str]) -> tuple[str, float, float] | None:
        """Among ``rivals`` (sample-estimating codecs that will be tried on this image), one
        whose paired estimate is clearly below ``codec``'s: the plain ones by more than
        ``PAIRED_MARGIN``, or the complete ones, where both are known (:meth:`prefetch`), by
        more than ``FITTED_PAIRED_MARGIN``. (rival, codec's bits, rival's bits) or None."""
        if not codec_table.BY_NAME[codec.name].paired_estimate:
            return None
        own = self.plain_bits(codec.name)
        for name in rivals:
            if name == codec.name:
                continue
            if self.plain_bits(name) * PAIRED_MARGIN < own:
                return name, own, self.plain_bits(name)
            if codec.name in self.own and name in self.own and self.own[name] * FITTED_PAIRED_MARGIN < self.own[codec.name]:
                return name, self.own[codec.name], self.own[name]
        return None

    def _own_bits(self, codec: Codec, target: float | None = None) -> float:
        """A neural codec's estimate from its own model (a pixel sample, or sample tiles),
        cached where it is complete (a tiled codec's, or a sampling codec's without
        ``target``: see ``LocalCodec.estimate_bits``)."""
        if codec.name in self.own:
            return self.own[codec.name]
        if hasattr(codec, "estimate_bits"):
            bits = float(codec.estimate_bits(self.image, target))
            if target is not None:
                return bits
        else:
            bits = self._tile_bits(codec)
        self.own[codec.name] = bits
        return bits

    def prefetch(self, names: list[str]) -> None:
        """Compute ahead what the estimates of codecs ``names`` will need and the reference
        codec's size does not decide: the paired plain estimates, the complete estimates of
        the paired codecs that :meth:`better_rival` will keep and of the other neural codecs,
        the classical codecs' crops and the reference's. Run while the reference encodes;
        fills caches only, decides nothing."""
        paired = [name for name in names if codec_table.BY_NAME[name].paired_estimate]
        for name in names:
            codec = codec_table.get_codec(name)
            if name in paired:
                self.plain_bits(name)
            elif codec.kind == "neural":
                self._own_bits(codec)
            else:
                self._crop_bits(name, SAMPLE_SIDE)
                self._crop_bits(self.reference, SAMPLE_SIDE)
        if paired:
            floor = min(self.plain_bits(name) for name in paired)
            for name in paired:
                if self.plain_bits(name) <= floor * PAIRED_MARGIN:
                    self._own_bits(codec_table.get_codec(name))

    def bits(self, codec: Codec, reference_bits: float, target: float) -> float:
        """The estimated bits of the image coded by ``codec``; ``target``: the best size so
        far (an estimate far above it may be rough: see ``LocalCodec.estimate_bits``)."""
        if codec.kind == "neural":
            return self._own_bits(codec, target)
        return reference_bits * self._crop_bits(codec.name, SAMPLE_SIDE) / max(1.0, self._crop_bits(self.reference, SAMPLE_SIDE))


def choose(images: list[PixelImage], budget: float = DEFAULT_BUDGET, names: list[str] | None = None,
           keep_files: bool = True) -> list[Choice]:
    """Code every image with each candidate codec (``names``, by default :func:`candidates`)
    in batches, and pick the smallest. With
    ``keep_files``, an input a codec keeps as its file (a JPEG: lossless transcoding, the
    original bytes restored) is coded that way alone: its pixels would be larger, and the
    file itself would be lost."""
    names = names or candidates()
    choices = [None] * len(images)
    tried: list[dict[str, tuple[bytes, float | None]]] = [{} for _ in images]
    skipped: list[dict[str, str]] = [{} for _ in images]
    keeper = codec_table.get_codec("jpeg") if keep_files and "jpeg" in codec_table.BY_NAME else None
    kept = set()
    for i, image in enumerate(images):
        if keeper is not None and keeper.supports(image):
            try:
                tried[i]["jpeg"] = (keeper.encode([image]).payloads[0], None)
                kept.add(i)
            except codec_table.UnsupportedImageError as error:
                skipped[i]["jpeg"] = str(error)
    estimators: dict[int, _Estimator] = {}
    paired = {name for name in names if codec_table.BY_NAME[name].paired_estimate}
    spent = [0.0] * len(images)
    for name in names:
        codec: Codec = codec_table.get_codec(name)
        todo = []
        for i, image in enumerate(images):
            if i in kept:
                skipped[i][name] = "a JPEG input is kept as its file (--pixels codes its pixels instead)"
                continue
            if not codec.supports(image):
                continue
            over = _over_budget(name, image, spent[i], budget)
            if over is not None:
                skipped[i][name] = over
                continue
            if tried[i] and _large(image):
                started = time.perf_counter()
                best_name = min(tried[i], key=lambda n: coded_bytes(n, tried[i][n][0]))
                best_bits = 8.0 * coded_bytes(best_name, tried[i][best_name][0])
                if i not in estimators:
                    estimators[i] = _Estimator(image, next(iter(tried[i])))
                rival = estimators[i].better_rival(codec, [n for n in names if n in paired and codec_table.get_codec(n).supports(image)])
                if rival is not None:
                    spent[i] += time.perf_counter() - started
                    rival_name, own_bits, rival_bits = rival
                    skipped[i][name] = (f"estimated {own_bits / image.subpixels:.4f} bits/sub-pixel from a sample, "
                                        f"{rival_name} {rival_bits / image.subpixels:.4f} from the same pixels")
                    continue
                reference_bits = 8.0 * len(tried[i][estimators[i].reference][0])
                guess = estimators[i].bits(codec, reference_bits, best_bits)
                spent[i] += time.perf_counter() - started
                if guess > best_bits * (SAMPLED_MARGIN if hasattr(codec, "estimate_bits") else SAMPLE_MARGIN):
                    skipped[i][name] = (f"estimated {guess / image.subpixels:.3f} bits/sub-pixel from a sample, "
                                        f"{best_name} has {best_bits / image.subpixels:.3f}")
                    continue
            todo.append(i)
        if not todo:
            continue
        started = time.perf_counter()
        # The first codec on a large image is the reference of the estimates that follow:
        # while a classical one encodes (in a thread, on one core), the estimates are prepared.
        ahead = [i for i in todo if not tried[i] and _large(images[i])] if codec.kind != "neural" else []
        with ThreadPoolExecutor(max_workers=1) as pool:
            running = pool.submit(_encode, codec, [images[i] for i in todo])
            with fewer_threads(1) if ahead else nullcontext():  # the encoder keeps one core busy
                for i in ahead:
                    image, first = images[i], _encode_seconds(name, images[i])
                    estimators[i] = _Estimator(image, name)
                    estimators[i].prefetch([n for n in names[names.index(name) + 1 :]
                                            if codec_table.get_codec(n).supports(image)
                                            and _over_budget(n, image, spent[i] + first, budget) is None])
            payloads, nll = running.result()
        elapsed = (time.perf_counter() - started) / len(todo)
        for k, i in enumerate(todo):
            spent[i] += elapsed
            measured = elapsed * DECODE_PER_ENCODE.get(name, 0.0)  # calibrated on this machine
            if measured > budget:
                skipped[i][name] = (f"~{measured:.0f} s to decode estimated from its {elapsed:.1f} s encode here, "
                                    f"budget {budget:.0f} s")
                continue
            tried[i][name] = (payloads[k], nll[k])
    for i, image in enumerate(images):
        if not tried[i]:  # the budget allowed nothing: the fastest codec that can, regardless
            fallback = next((n for n in FASTEST if n in names and codec_table.get_codec(n).supports(image)), None)
            if fallback is None:
                raise codec_table.UnsupportedImageError(f"none of the codecs auto tries ({', '.join(names)}) can code this {image.mode} image")
            encoded = codec_table.get_codec(fallback).encode([image])
            tried[i][fallback] = (encoded.payloads[0], encoded.nll_bits[0] if encoded.nll_bits else None)
        best = min(tried[i], key=lambda name: coded_bytes(name, tried[i][name][0]))
        choices[i] = Choice(best, tried[i][best][0], tried[i][best][1],
                            {name: len(p) for name, (p, _) in tried[i].items()}, skipped[i])
    return choices
