"""Python API: compress images to .nzip bytes and back.

>>> import numpy as np, neuralzip
>>> pixels = np.zeros((8, 8, 3), dtype=np.uint8)
>>> data = neuralzip.compress(pixels, model="png")
>>> bool((neuralzip.decompress(data).pixels == pixels).all())
True

Guarantees: :func:`decompress` returns exactly the compressed pixels or raises a
:class:`~neuralzip.container.FormatError` subclass saying why (not a .nzip file, unsupported
version, unknown model, weights that differ from the encoder's, truncation, corrupt data,
checksum mismatch). It checks the CRC-32 of every decoded image before returning it.
"""

from __future__ import annotations

import functools
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from . import codecs as codec_table
from .codecs.base import Codec, ImageShape, PayloadError
from .container import (
    COMPACT_VERSION, ChecksumError, Container, CorruptError, Entry, FormatError, ModelMismatchError, UnknownModelError, pack, unpack,
)
from .images import DEFAULT_MAX_PIXELS, PixelImage, read_image
from .registry import ModelError


AUTO = "auto"


class TooLargeError(FormatError):
    """The file describes an image above the decoder's pixel limit."""


@dataclass
class Compressed:
    """Result of compressing: the file bytes and, for neural codecs, the model's ideal
    code length of each image in bits (without container and coder overhead); with
    ``model="auto"``, ``choice`` says what was tried and why the codec won."""

    data: bytes
    codec: str
    nll_bits: list[float] | None = None
    choice: object | None = None


def _as_image(image) -> PixelImage:
    if isinstance(image, PixelImage):
        return image
    if isinstance(image, (str, os.PathLike)):
        return read_image(image)
    return PixelImage.from_array(np.asarray(image))


def resolve_codec(model: str | None) -> Codec:
    """The codec called ``model`` (not for ``auto``, which chooses per image)."""
    return codec_table.get_codec(model or codec_table.default_codec_name())


def _entry(codec: Codec, name: str, image: PixelImage, payload: bytes = b"") -> Entry:
    """A container entry: shape, the codec's checksum (pixels and metadata, or the file it
    keeps), metadata (none where the codec keeps the file, which holds its own), payload."""
    from .metadata import serialize

    metadata = b"" if codec.keeps_file else serialize(image.metadata)
    return Entry(name, image.mode, image.width, image.height, codec.checksum(image), payload, metadata)


def shipped_version(codec: Codec) -> int | None:
    """What a compact file names the codec's weights by: 0 for a codec without weights, N
    for version N of a shipped model, None for weights that are no shipped version (models
    registered by tests or fresh exports: their files name the hash, format version 1/2)."""
    spec = codec_table.BY_ID.get(codec.codec_id)
    if spec is None or spec.model is None:
        return 0
    from .registry import models_dir

    return _version_of(str(models_dir()), spec.model, codec.model_hash)


@functools.lru_cache(maxsize=256)
def _version_of(directory: str, model: str, model_hash: bytes) -> int | None:
    """Cached: reading the cards took ~0.5 ms, half of what coding a thumbnail takes. Safe to
    keep, because shipped versions are frozen (a hash never changes its version)."""
    from .registry import installed_versions

    for version in installed_versions(model, Path(directory)):
        if version.model_hash == model_hash:
            return version.version
    return None


def _single(codec: Codec, image: PixelImage, payload: bytes) -> bytes:
    return pack(Container(codec.codec_id, codec.model_hash, [_entry(codec, "", image, payload)],
                          model_version=shipped_version(codec)))


def compress_batch(images: list, model: str | None = AUTO, budget: float | None = None,
                   keep_files: bool = True, candidates: str | list[str] | None = None) -> list[Compressed]:
    """One single-image .nzip file per image; the batch only makes neural coding faster.

    ``model``: a codec name, or ``"auto"``/None to keep, per image, the smallest of the
    suitable codecs auto tries (``candidates``: see :func:`neuralzip.auto.candidates`; within
    ``budget`` seconds per image); ``keep_files``: auto keeps a JPEG input as its file (the
    identical .jpg comes back) instead of coding its pixels."""
    images = [_as_image(im) for im in images]
    if model in (None, AUTO):
        from .auto import DEFAULT_BUDGET, candidates as auto_candidates, choose

        out = []
        names = auto_candidates(candidates)
        for image, choice in zip(images, choose(images, budget or DEFAULT_BUDGET, names, keep_files=keep_files)):
            codec = codec_table.get_codec(choice.codec)
            nll = [choice.nll_bits] if choice.nll_bits is not None else None
            out.append(Compressed(_single(codec, image, choice.payload), codec.name, nll, choice))
        return out
    codec = resolve_codec(model)
    for image in images:
        codec.check(image)
    if codec.chained:  # a chain of one image: its payload stands alone in a single-image file
        if hasattr(codec, "encode_separately"):  # the same payloads, the chains coded side by side
            encoded = codec.encode_separately(images)
            return [Compressed(_single(codec, image, payload), codec.name, [encoded.nll_bits[i]])
                    for i, (image, payload) in enumerate(zip(images, encoded.payloads))]
        out = []
        for image in images:
            encoded = codec.encode([image])
            out.append(Compressed(_single(codec, image, encoded.payloads[0]), codec.name, encoded.nll_bits))
        return out
    encoded = codec.encode(images)
    return [Compressed(_single(codec, image, payload), codec.name, [encoded.nll_bits[i]] if encoded.nll_bits else None)
            for i, (image, payload) in enumerate(zip(images, encoded.payloads))]


def encode_batch(images: list, model: str | None = "local", budget: float | None = None) -> list[bytes]:
    """The public batched encoder: a list of images (PixelImage, uint8 arrays or paths) to a
    list of single-image .nzip files, in order.

    Guarantees: each file is exactly what :func:`compress` would give for that image alone
    (the batch only lets a neural codec run its networks on many images at once), decodes
    anywhere with :func:`decode_batch` or :func:`decompress`, and carries its checksum.
    ``model``: a codec name (default ``local``) or ``auto``; images the codec cannot code (a
    mode it does not take) and a codec whose weights are not installed fall back to ``auto``."""
    images = [_as_image(im) for im in images]
    if model in codec_table.BY_NAME and not codec_table.spec_available(codec_table.BY_NAME[model]):
        model = AUTO
    if model not in (None, AUTO):
        codec = resolve_codec(model)
        if not all(codec.supports(im) for im in images):
            fallback = [AUTO if not codec.supports(im) else model for im in images]
            out: list[bytes] = [b""] * len(images)
            for choice in (model, AUTO):
                members = [i for i, m in enumerate(fallback) if m == choice]
                if members:
                    for i, result in zip(members, compress_batch([images[i] for i in members], choice, budget)):
                        out[i] = result.data
            return out
    return [result.data for result in compress_batch(images, model, budget)]


def decode_batch(files: list[bytes], errors: str = "raise", max_pixels: int = DEFAULT_MAX_PIXELS) -> list:
    """The public batched decoder: single-image .nzip files to PixelImages, in order, the
    files of each codec decoded as one batch (much faster than one at a time for neural
    codecs). Every image's checksum is verified. ``errors="raise"`` raises the first
    problem; ``errors="return"`` puts the exception in that file's place instead, so one
    damaged file never costs the others."""
    containers: list = []
    for data in files:
        try:
            containers.append(unpack(data))
        except FormatError as error:
            containers.append(error)
    parsed = [c for c in containers if not isinstance(c, Exception)]
    decoded = iter(decode_containers(parsed, max_pixels))
    out = []
    for item in containers:
        result = item if isinstance(item, Exception) else next(decoded)
        if isinstance(result, Exception):
            if errors == "raise":
                raise result
            out.append(result)
        else:
            out.append(result[0][1])
    return out


def compress(image, model: str | None = AUTO) -> bytes:
    """Compress one image (PixelImage, array [H, W, C] uint8, or path) to .nzip bytes."""
    return compress_batch([image], model)[0].data


def compress_archive(images: list, names: list[str], model: str | None = AUTO, budget: float | None = None,
                     candidates: str | list[str] | None = None) -> Compressed:
    """Several images in one archive file, in order, under their names.

    With ``auto`` the archive uses the codec of ``candidates`` (see
    :func:`neuralzip.auto.candidates`) that codes every image and gives the smallest archive of
    those auto could try within ``budget``: of the per-image codecs, the one whose single files
    are smallest in sum (an entry holds what the single file's payload holds); every chained
    (bits-back) codec among them has its whole archive coded to compare, since its single files
    each pay the initial bits that a chain pays once."""
    images = [_as_image(im) for im in images]
    if model not in (None, AUTO):
        codec = resolve_codec(model)
        data, nll = _archive(codec, images, names)
        return Compressed(data, codec.name, nll)
    from .auto import DEFAULT_BUDGET, candidates as auto_candidates, choose

    choices = choose(images, budget or DEFAULT_BUDGET, auto_candidates(candidates))
    common = set.intersection(*(set(c.sizes) for c in choices))
    if not common:
        raise codec_table.UnsupportedImageError("no single codec codes every image of this archive")
    per_image = sorted(name for name in common if not codec_table.get_codec(name).chained)
    tried = ([min(per_image, key=lambda name: sum(c.sizes[name] for c in choices))] if per_image else [])
    tried += sorted(common - set(per_image))
    archives = {name: _archive(resolve_codec(name), images, names) for name in tried}
    name = min(tried, key=lambda name: len(archives[name][0]))  # ties: the per-image codec, tried first
    data, nll = archives[name]
    return Compressed(data, name, nll, choices)


def _archive(codec: Codec, images: list[PixelImage], names: list[str]) -> tuple[bytes, list[float] | None]:
    """``images`` coded by ``codec`` as one archive: (the file, each image's NLL bits)."""
    for image in images:
        codec.check(image)
    encoded = codec.encode(images)
    entries = [_entry(codec, name, im) for name, im in zip(names, images)]
    if codec.chained:
        container = Container(codec.codec_id, codec.model_hash, entries, archive=True, chained_payload=encoded.payloads[0])
    else:
        for entry, payload in zip(entries, encoded.payloads):
            entry.payload = payload
        container = Container(codec.codec_id, codec.model_hash, entries, archive=True)
    return pack(container), encoded.nll_bits


def _version_hash(spec, model_version: int) -> bytes:
    """The hash of the installed weights a compact file names by version number."""
    from .registry import installed_versions

    versions = installed_versions(spec.model) if spec.model else []
    for version in versions:
        if version.version == model_version:
            return version.model_hash
    installed = ", ".join(f"v{v.version}" for v in versions) or "none"
    raise UnknownModelError(f"this file needs model {spec.model or spec.name!r} v{model_version}, which is not installed "
                            f"(installed versions: {installed}); a newer neuralzip decodes it")


def container_hash(container: Container) -> bytes:
    """The 4-byte hash of the weights that made ``container``: stored in versions 1 and 2,
    looked up from the model version a compact file names."""
    if container.model_hash is not None:
        return container.model_hash
    spec = codec_table.BY_ID.get(container.codec_id)
    if spec is None:
        raise UnknownModelError(f"unknown codec id {container.codec_id} (made by a newer nzip?)")
    return _version_hash(spec, container.model_version)


def codec_for(container: Container) -> Codec:
    """The codec that made ``container``, with its weights verified against the file (a
    compact file's ``model_hash`` is filled in from the model version it names)."""
    spec = codec_table.BY_ID.get(container.codec_id)
    if spec is None:
        raise UnknownModelError(f"unknown codec id {container.codec_id} (made by a newer nzip?)")
    if container.model_hash is None:
        container.model_hash = container_hash(container)
    try:
        codec = codec_table.get_codec(spec.name, container.model_hash)
    except ModelError as error:
        raise UnknownModelError(f"this file needs model {spec.name!r}: {error}") from None
    if codec.model_hash != container.model_hash:
        raise ModelMismatchError(
            f"this file was made with other {spec.name} weights (hash {container.model_hash.hex()}, "
            f"installed {codec.model_hash.hex()}); decode it with the nzip version that made it")
    return codec


def decode_container(container: Container, codec: Codec | None = None,
                     max_pixels: int = DEFAULT_MAX_PIXELS) -> list[tuple[str, PixelImage]]:
    """Decode every image of a parsed container, verifying checksums. Images above
    ``max_pixels`` are refused before anything is allocated for them."""
    for entry in container.entries:
        _check_size(entry, max_pixels)
    codec = codec or codec_for(container)
    shapes = [ImageShape(e.mode, e.width, e.height) for e in container.entries]
    payloads = [container.chained_payload] if container.chained else [e.payload for e in container.entries]
    try:
        images = codec.decode(payloads, shapes)
    except PayloadError as error:
        raise CorruptError(f"corrupt payload: {error}{_cut_hint(container)}") from None
    return [(entry.name, _verified(entry, image, codec, shape.seal))
            for entry, image, shape in zip(container.entries, images, shapes)]


def _cut_hint(container: Container) -> str:
    """Compact files carry no payload length (the payload is the rest of the file), so a
    cut one shows as a corrupt payload: say so."""
    return " (or the file is truncated)" if container.version == COMPACT_VERSION else ""


def _recorded_checksum(entry: Entry, seal: int | None) -> int:
    """The checksum the file recorded: the header's, or the one a sealing codec's payload
    carried (compact files). A payload of a version 1/2 file may carry one too (0 in files
    made before sealing); it must then agree with the header's."""
    if entry.checksum is None:
        if seal is None:
            raise CorruptError("corrupt file: neither the header nor the payload holds the checksum")
        return seal
    if seal and seal != entry.checksum:
        raise ChecksumError(f"checksum mismatch{' in ' + entry.name if entry.name else ''}: "
                            "the payload's checksum differs from the header's (corrupt file)")
    return entry.checksum


def _verified(entry: Entry, image: PixelImage, codec: Codec, seal: int | None = None) -> PixelImage:
    """``image`` with the entry's metadata, if their checksum is the one the file recorded
    (in its header, or ``seal``: what a sealing codec's payload held), else
    :class:`ChecksumError`."""
    if entry.metadata:
        from .metadata import MetadataError, parse

        try:
            image.metadata = parse(entry.metadata)
        except MetadataError as error:
            raise CorruptError(f"corrupt metadata{' in ' + entry.name if entry.name else ''}: {error}") from None
    if codec.checksum(image) != _recorded_checksum(entry, seal):
        raise ChecksumError(f"checksum mismatch{' in ' + entry.name if entry.name else ''}: "
                            "the decoded pixels differ from the original (corrupt or truncated file)")
    return image


def decode_containers(containers: list[Container], max_pixels: int = DEFAULT_MAX_PIXELS
                      ) -> list[list[tuple[str, PixelImage]] | Exception]:
    """Decode many parsed containers, each exactly as :func:`decode_container` would, but
    single-image files of the same codec in one codec call: neural decoders are only fast on
    batches. Returns, per container, its (name, image) list or the error that stopped it; one
    bad file never fails the others (a batch that fails is retried file by file, so each
    error is reported against its own file)."""
    out: list = [None] * len(containers)
    groups: dict[tuple, list[int]] = {}
    for i, container in enumerate(containers):
        if len(container.entries) == 1 and not container.chained:
            key = (container.codec_id, container.model_hash, container.model_version, container.version)
            groups.setdefault(key, []).append(i)
        else:
            out[i] = _decode_or_error(container, max_pixels)
    for members in groups.values():
        if len(members) == 1:
            out[members[0]] = _decode_or_error(containers[members[0]], max_pixels)
            continue
        try:
            codec = codec_for(containers[members[0]])
            entries = [containers[i].entries[0] for i in members]
            for entry in entries:
                _check_size(entry, max_pixels)
            shapes = [ImageShape(e.mode, e.width, e.height) for e in entries]
            if codec.chained:  # single-image files of a bits-back codec: one chain each
                if not hasattr(codec, "decode_separately"):
                    raise PayloadError("decoded one by one")
                images = codec.decode_separately([e.payload for e in entries], shapes)
            else:
                images = codec.decode([e.payload for e in entries], shapes)
        except (FormatError, ModelError, PayloadError):  # find out which file it was
            for i in members:
                out[i] = _decode_or_error(containers[i], max_pixels)
            continue
        for i, entry, image, shape in zip(members, entries, images, shapes):
            try:
                out[i] = [(entry.name, _verified(entry, image, codec, shape.seal))]
            except (ChecksumError, CorruptError) as error:
                out[i] = error
    return out


def _decode_or_error(container: Container, max_pixels: int):
    try:
        return decode_container(container, max_pixels=max_pixels)
    except (FormatError, ModelError) as error:
        return error


def _check_size(entry, max_pixels: int) -> None:
    if entry.width * entry.height > max_pixels:
        raise TooLargeError(f"image of {entry.width}x{entry.height} exceeds the limit of {max_pixels} pixels "
                            "(raise it with --max-pixels if the file is trusted)")


def decompress(data: bytes) -> PixelImage:
    """Decompress a single-image .nzip file (the first image of an archive)."""
    return decode_container(unpack(data))[0][1]


def decompress_all(data: bytes) -> list[tuple[str, PixelImage]]:
    """Every (name, image) of a .nzip file, in order."""
    return decode_container(unpack(data))


def info(data: bytes) -> dict:
    """What a .nzip file holds, without decoding it."""
    container = unpack(data)
    spec = codec_table.BY_ID.get(container.codec_id)
    try:
        model_hash = container_hash(container)
        model_version = _model_version(spec, model_hash)
    except UnknownModelError:  # an unknown codec, or a compact file naming a version this nzip lacks
        model_hash = container.model_hash
        model_version = f"{spec.model} v{container.model_version} (not installed)" if spec else None
    images = []
    for e in container.entries:
        subpixels = e.width * e.height * _channels(e.mode)
        payload = len(e.payload) if not container.chained else None
        images.append({
            "name": e.name, "mode": e.mode, "width": e.width, "height": e.height,
            "payload_bytes": payload,
            "bits_per_subpixel": (8 * payload / subpixels) if payload is not None else None,
            "checksum": f"{e.checksum:08x}" if e.checksum is not None else "sealed in the payload",
            "metadata": _metadata_summary(e.metadata),
        })
    total_subpixels = sum(e.width * e.height * _channels(e.mode) for e in container.entries)
    return {
        "format_version": container.version,
        "codec": spec.name if spec else f"unknown ({container.codec_id})",
        "codec_id": container.codec_id,
        "model_hash": model_hash.hex() if model_hash is not None else None,
        "model_version": model_version,
        "archive": container.archive,
        "chained": container.chained,
        "file_bytes": len(data),
        "bits_per_subpixel": 8 * len(data) / total_subpixels if total_subpixels else None,
        "images": images,
    }


def _metadata_summary(block: bytes) -> str | None:
    if not block:
        return None
    from .metadata import MetadataError, describe, parse

    try:
        return describe(parse(block))
    except MetadataError:
        return "corrupt"


def _model_version(spec, model_hash: bytes) -> str | None:
    """Which installed model version made a file ("local v2"), from the cards alone."""
    if spec is None or spec.model is None:
        return None
    from .registry import installed_versions

    for version in installed_versions(spec.model):
        if version.model_hash == model_hash:
            return version.label
    return f"{spec.model}, weights {model_hash.hex()} (not installed)"


def _channels(mode: str) -> int:
    return {"1": 1, "L": 1, "P": 1, "I;16": 1, "I": 1, "F": 1, "LA": 2, "PA": 2, "RGB": 3, "YCbCr": 3,
            "LAB": 3, "HSV": 3, "RGBA": 4, "CMYK": 4}.get(mode, 1)
