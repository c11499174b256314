"""The .nzip container (specified in docs/FORMAT.md). Pure bytes: no torch, no pickle.

Single image (all integers little-endian; ``varint`` = unsigned LEB128)::

    magic        4  b"NZIP"
    version      1  FORMAT_VERSION
    codec id     1  stable id of the codec/model (see neuralzip.codecs.registry)
    model hash   4  first 4 bytes of the model weights' SHA-256 (zeros for classical codecs)
    flags        1  bit 7: archive; bits 0-6: image mode id (MODES)
    width        varint
    height       varint
    checksum     4  CRC-32 of the canonical pixel bytes (see neuralzip.images.pixel_checksum)
    payload len  varint
    payload      payload len bytes

A 32x32 RGB image with a payload under 16 KiB has a 19-byte header.

Version 2 (written only when an image carries metadata, so files without any are the
bytes version 1 gives, and version 1 files stay readable): in ``flags`` bit 6 says the image
has a metadata block, which follows its checksum: ``varint length``, then the block
(:func:`neuralzip.metadata.serialize`). In archives the per-image tag becomes
``4 x name length + 2 x metadata bit + same-shape bit``.

Archive (flags bit 7 set, mode bits zero)::

    magic, version, codec id, model hash, flags   (11 bytes, as above)
    count        varint  number of images
    chained      1       1: one shared payload for all images (bits-back), 0: one each
    per image:   tag varint (2 x name length + same-shape bit), name (UTF-8),
                 [mode id 1, width varint, height varint]  (absent when the same-shape bit
                 says: mode and size as the previous image), checksum 4,
                 [payload len varint, payload]  (payload here unless chained)
    if chained:  payload len varint, payload

An unnamed 32x32 image in an archive thus costs 5 bytes besides its payload.

Version 3, the compact single image (written for every single image whose weights are a
shipped model version, or that has none): what versions 1 and 2 hold, minus what a small
file cannot afford (a 32x32 RGB image pays 7 bytes instead of 19)::

    magic        2  b"Nz" (never the start of b"NZIP": byte 1 differs)
    codec id     1
    model        varint  0: no weights (classical codecs); N: version N of the codec's model
    flags        1  bit 7 clear (reserved); bit 6: metadata block; bits 0-5: image mode id
    width        varint
    height       varint
    checksum     4  absent when the codec seals it in its payload (``sealed``, below)
    [metadata    varint length, block]  if flags bit 6
    payload      the rest of the file

The version number stands for the weights' hash because shipped versions are frozen; a file
made with weights that are not a shipped version gets a version 1 or 2 header. ``sealed``
(a property of the codec id, :data:`SEALED_CODECS`): the codec stores the checksum at the
bottom of its ANS stream, where the coder's initial state has room for it almost free
(``Entry.checksum`` is None after parsing; the codec returns it on decoding).

Parsing never allocates more than the bytes present: every length is checked against the
remaining input first, and image sides against MAX_SIDE.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field

MAGIC = b"NZIP"
COMPACT_MAGIC = b"Nz"
COMPACT_VERSION = 3  # compact single images: COMPACT_MAGIC, no version byte
FORMAT_VERSION = 2  # the newest version byte this nzip writes after MAGIC
READ_VERSIONS = (1, 2)  # the version bytes it reads after MAGIC (and every compact file)
COMPACT_RESERVED = 0x80
METADATA_FLAG = 0x40
MAX_METADATA = 1 << 26
MAX_SIDE = 1 << 20
MAX_NAME = 1024
MAX_COUNT = 1 << 24
ARCHIVE_FLAG = 0x80
NO_MODEL_HASH = bytes(4)
# Codec ids whose payloads hold the image's checksum (local, local-photo; see docs/FORMAT.md):
# their compact files leave the header's checksum out.
SEALED_CODECS = frozenset({64, 65})

# Stable ids: never renumber, only append.
MODES = {
    "L": 1, "LA": 2, "RGB": 3, "RGBA": 4, "1": 5, "P": 6, "PA": 7, "I;16": 8, "I": 9, "F": 10,
    "CMYK": 11, "YCbCr": 12, "LAB": 13, "HSV": 14, "I;16B": 15, "RGB;16": 16, "RGBA;16": 17,
    "LA;16": 18,
}
MODE_NAMES = {v: k for k, v in MODES.items()}


class FormatError(Exception):
    """A .nzip file that cannot be decoded; subclasses say why."""


class NotNzipError(FormatError):
    pass


class UnsupportedVersionError(FormatError):
    pass


class UnknownModelError(FormatError):
    pass


class ModelMismatchError(FormatError):
    pass


class TruncatedError(FormatError):
    pass


class CorruptError(FormatError):
    pass


class ChecksumError(FormatError):
    pass


@dataclass
class Entry:
    """One image in a container: its metadata and (unless chained) its payload."""

    name: str
    mode: str
    width: int
    height: int
    checksum: int | None  # None: sealed in the payload (compact files of sealing codecs)
    payload: bytes = b""
    metadata: bytes = b""  # serialized PNG chunks (format version 2)


@dataclass
class Container:
    """``model_hash`` names the weights in versions 1 and 2; compact files name the model
    version instead (``model_version``; 0 for codecs without weights) and are parsed with
    ``model_hash`` None, for the caller to look up (:func:`neuralzip.api.codec_for`)."""

    codec_id: int
    model_hash: bytes | None
    entries: list[Entry] = field(default_factory=list)
    archive: bool = False
    chained_payload: bytes | None = None  # archives of chained codecs only
    version: int = 0  # the format version read (0: not read from bytes; pack chooses)
    model_version: int | None = None  # set: a single image may be packed compact (version 3)

    @property
    def chained(self) -> bool:
        return self.chained_payload is not None


def has_magic(prefix: bytes) -> bool:
    """Whether bytes start like a .nzip file (either magic number)."""
    return prefix[: len(MAGIC)] == MAGIC or prefix[: len(COMPACT_MAGIC)] == COMPACT_MAGIC


def varint(value: int) -> bytes:
    """Unsigned LEB128: 7 bits per byte, low groups first, high bit on all but the last."""
    if value < 0:
        raise ValueError("varint of a negative number")
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


class _Reader:
    def __init__(self, data: bytes):
        self.data = memoryview(data)
        self.pos = 0

    def take(self, n: int, what: str) -> bytes:
        if n > len(self.data) - self.pos:
            raise TruncatedError(f"file is truncated (in {what}: needs {n} more bytes, {len(self.data) - self.pos} left)")
        out = bytes(self.data[self.pos : self.pos + n])
        self.pos += n
        return out

    def byte(self, what: str) -> int:
        return self.take(1, what)[0]

    def varint(self, what: str, limit: int) -> int:
        value, shift = 0, 0
        while True:
            byte = self.byte(what)
            value |= (byte & 0x7F) << shift
            if value > limit:
                raise CorruptError(f"corrupt header: {what} {value} exceeds {limit}")
            if not byte & 0x80:
                return value
            shift += 7
            if shift > 63:
                raise CorruptError(f"corrupt header: {what} is not a valid number")

    def remaining(self) -> int:
        return len(self.data) - self.pos


def _prefix(version: int, codec_id: int, model_hash: bytes, flags: int) -> bytes:
    if len(model_hash) != 4:
        raise ValueError("model hash must be 4 bytes")
    return MAGIC + bytes([version, codec_id]) + model_hash + bytes([flags])


def _image_fields(entry: Entry) -> bytes:
    return varint(entry.width) + varint(entry.height) + struct.pack("<I", entry.checksum)


def _metadata_field(entry: Entry) -> bytes:
    return varint(len(entry.metadata)) + entry.metadata if entry.metadata else b""


def _pack_compact(container: Container, entry: Entry) -> bytes:
    flags = MODES[entry.mode] | (METADATA_FLAG if entry.metadata else 0)
    checksum = b"" if container.codec_id in SEALED_CODECS else struct.pack("<I", entry.checksum)
    return (COMPACT_MAGIC + bytes([container.codec_id]) + varint(container.model_version) + bytes([flags])
            + varint(entry.width) + varint(entry.height) + checksum + _metadata_field(entry) + entry.payload)


def pack(container: Container) -> bytes:
    """Serialise a container (single image unless ``archive`` or several entries): a single
    image compact (version 3) when ``model_version`` is set, else version 1 or 2."""
    version = 2 if any(entry.metadata for entry in container.entries) else 1
    if not container.archive:
        if len(container.entries) != 1 or container.chained:
            raise ValueError("a single-image container holds exactly one entry and its own payload")
        entry = container.entries[0]
        if container.model_version is not None:
            return _pack_compact(container, entry)
        if entry.checksum is None:
            raise ValueError("only compact files leave the checksum to the payload")
        flags = MODES[entry.mode] | (METADATA_FLAG if entry.metadata else 0)
        return (_prefix(version, container.codec_id, container.model_hash, flags)
                + _image_fields(entry) + _metadata_field(entry) + varint(len(entry.payload)) + entry.payload)
    out = bytearray(_prefix(version, container.codec_id, container.model_hash, ARCHIVE_FLAG))
    out += varint(len(container.entries)) + bytes([1 if container.chained else 0])
    previous = None
    for entry in container.entries:
        name = entry.name.encode("utf-8")
        shape = (entry.mode, entry.width, entry.height)
        same = shape == previous
        tag = 2 * len(name) + same if version == 1 else 4 * len(name) + 2 * bool(entry.metadata) + same
        out += varint(tag) + name
        if not same:
            out += bytes([MODES[entry.mode]]) + varint(entry.width) + varint(entry.height)
        out += struct.pack("<I", entry.checksum) + _metadata_field(entry)
        previous = shape
        if not container.chained:
            out += varint(len(entry.payload)) + entry.payload
    if container.chained:
        out += varint(len(container.chained_payload)) + container.chained_payload
    return bytes(out)


def _mode(mode_id: int) -> str:
    if mode_id not in MODE_NAMES:
        raise CorruptError(f"corrupt header: unknown image mode id {mode_id}")
    return MODE_NAMES[mode_id]


def _size(reader: _Reader) -> tuple[int, int]:
    width = reader.varint("width", MAX_SIDE)
    height = reader.varint("height", MAX_SIDE)
    if width == 0 or height == 0:
        raise CorruptError("corrupt header: zero image side")
    return width, height


def _checksum(reader: _Reader) -> int:
    return struct.unpack("<I", reader.take(4, "checksum"))[0]


def _payload(reader: _Reader, what: str, limit: int = 1 << 40) -> bytes:
    length = reader.varint(f"{what} length", limit)
    left = reader.remaining()
    if length > 2 * left + 4096:  # far more than a cut file would miss: the length itself is damaged
        raise CorruptError(f"corrupt header: the {what} length says {length} bytes, the file has {left} left")
    return reader.take(length, what)


def _unpack_compact(data: bytes) -> Container:
    reader = _Reader(data)
    reader.take(len(COMPACT_MAGIC), "magic")
    codec_id = reader.byte("codec id")
    model_version = reader.varint("model version", 1 << 20)
    flags = reader.byte("flags")
    if flags & COMPACT_RESERVED:
        raise UnsupportedVersionError("this compact .nzip file uses a feature this nzip does not know "
                                      "(made by a newer nzip?)")
    mode = _mode(flags & 0x3F)
    width, height = _size(reader)
    checksum = None if codec_id in SEALED_CODECS else _checksum(reader)
    entry = Entry("", mode, width, height, checksum)
    if flags & METADATA_FLAG:
        entry.metadata = _payload(reader, "metadata", MAX_METADATA)
    entry.payload = reader.take(reader.remaining(), "payload")
    model_hash = NO_MODEL_HASH if model_version == 0 else None
    return Container(codec_id, model_hash, [entry], version=COMPACT_VERSION, model_version=model_version)


def unpack(data: bytes) -> Container:
    """Parse a container. Raises a :class:`FormatError` subclass naming the problem."""
    if len(data) == 0:
        raise NotNzipError("empty file, not a .nzip file")
    if data[: len(COMPACT_MAGIC)] == COMPACT_MAGIC:
        return _unpack_compact(data)
    if len(data) < len(MAGIC) or data[: len(MAGIC)] != MAGIC:
        if len(data) < len(MAGIC) and MAGIC.startswith(bytes(data)):
            raise TruncatedError("file is truncated (inside the magic number)")
        raise NotNzipError("not a .nzip file (wrong magic number)")
    reader = _Reader(data)
    reader.take(len(MAGIC), "magic")
    version = reader.byte("version")
    if version not in READ_VERSIONS:
        raise UnsupportedVersionError(f"unsupported .nzip format version {version} (this nzip reads versions "
                                      f"{', '.join(map(str, READ_VERSIONS))}; made by a newer nzip?)")
    codec_id = reader.byte("codec id")
    model_hash = reader.take(4, "model hash")
    flags = reader.byte("flags")
    if not flags & ARCHIVE_FLAG:
        has_metadata = version >= 2 and bool(flags & METADATA_FLAG)
        mode = _mode(flags & (0x3F if version >= 2 else 0x7F))
        width, height = _size(reader)
        entry = Entry("", mode, width, height, _checksum(reader))
        if has_metadata:
            entry.metadata = _payload(reader, "metadata", MAX_METADATA)
        entry.payload = _payload(reader, "payload")
        _expect_end(reader)
        return Container(codec_id, model_hash, [entry], version=version)
    if flags & 0x7F:
        raise CorruptError("corrupt header: archive flags carry a mode")
    count = reader.varint("image count", MAX_COUNT)
    chained_flag = reader.byte("chained flag")
    if chained_flag not in (0, 1):
        raise CorruptError("corrupt header: bad chained flag")
    if count > reader.remaining():  # every entry takes at least one byte
        raise TruncatedError(f"file is truncated (announces {count} images)")
    entries = []
    shape = None
    for _ in range(count):
        wide = version >= 2
        tag = reader.varint("name length", (4 if wide else 2) * MAX_NAME + 3)
        has_metadata = wide and bool(tag & 2)
        try:
            name = reader.take(tag >> (2 if wide else 1), "name").decode("utf-8")
        except UnicodeDecodeError:
            raise CorruptError("corrupt archive: an image name is not UTF-8") from None
        if tag & 1:
            if shape is None:
                raise CorruptError("corrupt archive: the first image refers to a previous image's size")
        else:
            shape = (_mode(reader.byte("mode")), *_size(reader))
        entry = Entry(name, *shape, _checksum(reader))
        if has_metadata:
            entry.metadata = _payload(reader, "metadata", MAX_METADATA)
        if not chained_flag:
            entry.payload = _payload(reader, "payload")
        entries.append(entry)
    chained = _payload(reader, "shared payload") if chained_flag else None
    _expect_end(reader)
    return Container(codec_id, model_hash, entries, archive=True, chained_payload=chained, version=version)


def _expect_end(reader: _Reader) -> None:
    if reader.remaining():
        raise CorruptError(f"corrupt file: {reader.remaining()} unexpected bytes after the payload")
