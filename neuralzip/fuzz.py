"""Decoder fuzzing: random and mutated .nzip files must end in a clean error or the exact image.

Every case is one of: random bytes (with or without the magic number), or a valid file of
some codec mutated by bit flips, byte overwrites, truncation, insertion, deletion, splicing
with another file, or header fields set to extremes (huge or zero sides, huge lengths and
counts, unknown ids). Each case is parsed and decoded in-process with the decoder's pixel
limit; the outcome is classified as

* ``error``: a :class:`~neuralzip.container.FormatError` (what ``nzip decompress`` reports
  as one line with exit code 1),
* ``exact``: decoded and identical to the original image (a harmless mutation),
* ``wrong``: decoded to different pixels (must never happen),
* ``crash``: any other exception (must never happen),
* ``hang``: over the time limit (must never happen).

Neural payloads are decoded in batches (each case still succeeds or fails on its own), so
the expensive network runs once per batch rather than once per case.
"""

from __future__ import annotations

import signal
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field

import numpy as np

from . import api
from . import codecs as codec_table
from .codecs.base import ImageShape
from .container import ARCHIVE_FLAG, COMPACT_MAGIC, MAGIC, FormatError, unpack, varint
from .images import PixelImage, pixel_checksum

FUZZ_MAX_PIXELS = 1 << 18
MUTATIONS = ("bitflip", "overwrite", "truncate", "insert", "delete", "splice", "extreme", "random", "random_magic")


class Hang(Exception):
    pass


@dataclass
class Seed:
    codec: str
    data: bytes
    images: list[PixelImage]


@dataclass
class FuzzReport:
    cases: int = 0
    outcomes: Counter = field(default_factory=Counter)
    by_codec: dict = field(default_factory=lambda: defaultdict(Counter))
    by_mutation: dict = field(default_factory=lambda: defaultdict(Counter))
    failures: list = field(default_factory=list)
    seconds: float = 0.0

    def add(self, codec: str, mutation: str, outcome: str, data: bytes, detail: str = "") -> None:
        self.cases += 1
        self.outcomes[outcome] += 1
        self.by_codec[codec][outcome] += 1
        self.by_mutation[mutation][outcome] += 1
        if outcome in ("wrong", "crash", "hang") and len(self.failures) < 50:
            self.failures.append({"codec": codec, "mutation": mutation, "outcome": outcome,
                                  "detail": detail[:300], "hex": data[:400].hex()})

    @property
    def bad(self) -> int:
        return sum(self.outcomes[k] for k in ("wrong", "crash", "hang"))

    def to_dict(self) -> dict:
        return {"cases": self.cases, "outcomes": dict(self.outcomes), "bad": self.bad, "seconds": round(self.seconds, 1),
                "by_codec": {k: dict(v) for k, v in self.by_codec.items()},
                "by_mutation": {k: dict(v) for k, v in self.by_mutation.items()}, "failures": self.failures}


def _varint_end(data: bytes, pos: int) -> int:
    while pos < len(data) and data[pos] & 0x80:
        pos += 1
    return min(pos + 1, len(data))


def _extreme(data: bytes, rng: np.random.Generator) -> bytes:
    """Set one header field to an extreme value (either layout: versions 1/2 or compact)."""
    if len(data) < 12:
        return data
    compact = data[: len(COMPACT_MAGIC)] == COMPACT_MAGIC
    choice = int(rng.integers(0, 7))
    if compact:
        model_end = _varint_end(data, 3)
        if choice == 0:  # the model version
            value = int(rng.choice([0, 1, 99, 2**20, 2**20 + 1, 2**35]))
            return data[:3] + varint(value) + data[model_end:]
        if choice == 1:  # codec id
            return data[:2] + bytes([int(rng.integers(0, 256))]) + data[3:]
        flags = model_end
    else:
        if choice == 0:  # version
            return data[:4] + bytes([int(rng.integers(0, 256))]) + data[5:]
        if choice == 1:  # codec id
            return data[:5] + bytes([int(rng.integers(0, 256))]) + data[6:]
        flags = 10
    if choice == 2:  # flags / mode
        return data[:flags] + bytes([int(rng.integers(0, 256))]) + data[flags + 1:]
    sides = flags + 1
    if not compact and data[flags] & ARCHIVE_FLAG:  # archive: count
        end = _varint_end(data, sides)
        return data[:sides] + varint(int(rng.choice([0, 1, 2**24, 2**40, 10**6]))) + data[end:]
    value = int(rng.choice([0, 1, 100000, 2**20, 2**20 + 1, 2**35, 65536, 33]))
    width_end = _varint_end(data, sides)
    height_end = _varint_end(data, width_end)
    if choice == 3:
        return data[:sides] + varint(value) + data[width_end:]
    if choice == 4:
        return data[:width_end] + varint(value) + data[height_end:]
    if choice == 5 or compact:  # both sides (a compact file has no payload length)
        return data[:sides] + varint(value) + varint(value) + data[height_end:]
    length_pos = height_end + 4
    length_end = _varint_end(data, length_pos)
    return data[:length_pos] + varint(int(rng.choice([0, 1, 2**31, 2**40, len(data)]))) + data[length_end:]


def mutate(seeds: list[Seed], seed: Seed, kind: str, rng: np.random.Generator) -> bytes:
    data = bytearray(seed.data)
    if kind == "bitflip":
        for _ in range(int(rng.integers(1, 9))):
            position = int(rng.integers(0, len(data)))
            data[position] ^= 1 << int(rng.integers(0, 8))
        return bytes(data)
    if kind == "overwrite":
        for _ in range(int(rng.integers(1, 5))):
            data[int(rng.integers(0, len(data)))] = int(rng.integers(0, 256))
        return bytes(data)
    if kind == "truncate":
        return bytes(data[: int(rng.integers(0, len(data)))])
    if kind == "insert":
        position = int(rng.integers(0, len(data) + 1))
        return bytes(data[:position]) + rng.bytes(int(rng.integers(1, 64))) + bytes(data[position:])
    if kind == "delete":
        start = int(rng.integers(0, len(data)))
        return bytes(data[:start] + data[start + int(rng.integers(1, 64)):])
    if kind == "splice":
        other = seeds[int(rng.integers(0, len(seeds)))].data
        return bytes(data[: int(rng.integers(0, len(data)))]) + other[int(rng.integers(0, len(other))):]
    if kind == "extreme":
        return _extreme(bytes(data), rng)
    if kind == "random":
        return rng.bytes(int(rng.integers(0, 2048)))
    if rng.integers(0, 2):
        return COMPACT_MAGIC + rng.bytes(int(rng.integers(0, 2048)))
    return MAGIC + bytes([1]) + rng.bytes(int(rng.integers(0, 2048)))


def _alarm(seconds: float):
    def handler(signum, frame):
        raise Hang()
    previous = signal.signal(signal.SIGALRM, handler)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    return previous


def _disarm(previous) -> None:
    signal.setitimer(signal.ITIMER_REAL, 0)
    signal.signal(signal.SIGALRM, previous)


def _fingerprint(image: PixelImage) -> tuple:
    return image.mode, image.pixels.shape, image.pixels.tobytes()


def _classify(decoded, originals: list[PixelImage], genuine: set) -> str:
    """``exact``: the seed's images, or (a splice of two valid files can itself be a valid
    file) every decoded image one of the seeds' original images; anything else is ``wrong``."""
    if len(decoded) == len(originals) and all(
            image.mode == original.mode and np.array_equal(image.pixels, original.pixels)
            for (_, image), original in zip(decoded, originals)):
        return "exact"
    return "exact" if decoded and all(_fingerprint(image) in genuine for _, image in decoded) else "wrong"


def run_cases(seeds: list[Seed], cases: int, rng: np.random.Generator, report: FuzzReport,
              time_limit: float = 20.0, neural_batch: int = 512) -> None:
    """Run ``cases`` mutated or random files; neural ones are decoded together."""
    pending: dict[str, list] = defaultdict(list)
    genuine = {_fingerprint(image) for seed in seeds for image in seed.images}
    for _ in range(cases):
        seed = seeds[int(rng.integers(0, len(seeds)))]
        kind = MUTATIONS[int(rng.integers(0, len(MUTATIONS)))]
        data = mutate(seeds, seed, kind, rng)
        label = seed.codec if kind not in ("random", "random_magic") else "random"
        previous = _alarm(time_limit)
        try:
            container = unpack(data)
            for entry in container.entries:
                if entry.width * entry.height > FUZZ_MAX_PIXELS:
                    raise api.TooLargeError("too large")
            codec = api.codec_for(container)
            if codec.kind == "neural" and hasattr(codec, "decode_each") and not container.chained:
                pending[codec.name].append((label, kind, data, container, seed))
                continue
            decoded = api.decode_container(container, codec, max_pixels=FUZZ_MAX_PIXELS)
            report.add(label, kind, _classify(decoded, seed.images, genuine), data)
        except FormatError:
            report.add(label, kind, "error", data)
        except Hang:
            report.add(label, kind, "hang", data)
        except Exception as error:  # anything else is a crash: record it
            report.add(label, kind, "crash", data, f"{type(error).__name__}: {error}")
        finally:
            _disarm(previous)
        for name, items in list(pending.items()):
            if len(items) >= neural_batch:
                _run_neural(name, items, report, time_limit * len(items), genuine)
                pending[name] = []
    for name, items in pending.items():
        if items:
            _run_neural(name, items, report, time_limit * len(items), genuine)


def _checksum_holds(entry, shape: ImageShape, image) -> bool:
    """What api's verification decides (a ChecksumError or CorruptError otherwise)."""
    try:
        return pixel_checksum(image) == api._recorded_checksum(entry, shape.seal)
    except FormatError:
        return False


def _run_neural(name: str, items: list, report: FuzzReport, time_limit: float, genuine: set) -> None:
    """Decode many single-image neural files in one batch; each case is judged alone."""
    codec = codec_table.get_codec(name)
    singles = [item for item in items if not item[3].archive]
    for item in [item for item in items if item[3].archive]:  # archives: one by one
        label, kind, data, container, seed = item
        try:
            report.add(label, kind, _classify(api.decode_container(container, codec, FUZZ_MAX_PIXELS), seed.images, genuine), data)
        except FormatError:
            report.add(label, kind, "error", data)
        except Exception as error:
            report.add(label, kind, "crash", data, f"{type(error).__name__}: {error}")
    if not singles:
        return
    entries = [item[3].entries[0] for item in singles]
    previous = _alarm(time_limit)
    try:
        shapes = [ImageShape(e.mode, e.width, e.height) for e in entries]
        results = codec.decode_each([e.payload for e in entries], shapes)
    except Hang:
        for label, kind, data, _, _ in singles:
            report.add(label, kind, "hang", data)
        return
    except Exception as error:
        for label, kind, data, _, _ in singles:
            report.add(label, kind, "crash", data, f"batch: {type(error).__name__}: {error}")
        return
    finally:
        _disarm(previous)
    for (label, kind, data, container, seed), entry, shape, result in zip(singles, entries, shapes, results):
        if isinstance(result, Exception):
            report.add(label, kind, "error", data)  # api.decode_container turns it into CorruptError
        elif not _checksum_holds(entry, shape, result):
            report.add(label, kind, "error", data)  # ChecksumError
        else:
            report.add(label, kind, _classify([("", result)], seed.images, genuine), data)


def make_seeds(codec_names: list[str], rng: np.random.Generator) -> list[Seed]:
    """Valid files of every codec: single images of several modes and sizes, and archives."""
    def smooth(h, w, c, s):
        y, x = np.mgrid[0:h, 0:w]
        base = np.stack([(x * (3 + k) + y * (2 + s) + 50 * k) % 256 for k in range(c)], axis=-1).astype(np.float64)
        return np.clip(base + rng.normal(0, 5, base.shape), 0, 255).astype(np.uint8)

    candidates = [PixelImage("RGB", smooth(8, 8, 3, 1)), PixelImage("RGB", smooth(6, 10, 3, 2)),
                  PixelImage("L", smooth(7, 9, 1, 3)), PixelImage("RGBA", smooth(6, 11, 4, 4)),
                  PixelImage("LA", smooth(5, 5, 2, 5))]
    if "jpeg" in codec_names:  # JPEG files, which the jpeg codec keeps as files
        import io

        from PIL import Image

        from .images import decode_image_bytes

        for pixels in (smooth(16, 24, 3, 6), smooth(9, 13, 1, 7)[:, :, 0]):
            buffer = io.BytesIO()
            Image.fromarray(pixels).save(buffer, "JPEG", quality=85)
            candidates.append(decode_image_bytes(buffer.getvalue()))
    seeds = []
    for name in codec_names:
        codec = codec_table.get_codec(name)
        usable = [im for im in candidates if codec.supports(im)]
        for image in usable:
            seeds.append(Seed(name, api.compress(image, model=name), [image]))
        if len(usable) >= 2:
            archive = api.compress_archive(usable[:2], ["a.png", "b.png"], model=name)
            seeds.append(Seed(name, archive.data, usable[:2]))
        if getattr(codec, "head_offsets", False):  # large enough to carry the head offsets block
            large = PixelImage("RGB", smooth(128, 128, 3, 8))
            seeds.append(Seed(name, api.compress(large, model=name), [large]))
    return seeds


def fuzz(codec_names: list[str], cases: int, seed: int = 0, time_limit: float = 20.0) -> FuzzReport:
    rng = np.random.default_rng(seed)
    report = FuzzReport()
    started = time.time()
    run_cases(make_seeds(codec_names, rng), cases, rng, report, time_limit)
    report.seconds = time.time() - started
    return report
