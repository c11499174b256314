"""What an image file holds besides pixels, kept so that a round trip displays identically.

Metadata is carried as PNG ancillary chunks (type, data), in the order the input had them,
because the restored file is a PNG:

* from a PNG input, every ancillary chunk is kept byte for byte: iCCP, sRGB, gAMA, cHRM,
  cICP, sBIT, pHYs, bKGD, tRNS (transparency keys in every mode and bit depth), tEXt, zTXt,
  iTXt, eXIf, tIME and any other; only the palette's tRNS, which the pixels' palette
  already carries, is left to it;
* from other formats, the ICC profile (as iCCP), EXIF (eXIf), XMP (iTXt
  ``XML:com.adobe.xmp``) and the resolution (pHYs).

:func:`splice` puts the chunks into a written PNG where the PNG specification wants them
(colour-space chunks before PLTE, the rest before the first IDAT), replacing the writer's
own ancillary chunks. :func:`serialize` is the form stored in a .nzip entry and covered by
its checksum. What cannot be kept (a JPEG comment, say) is reported by :func:`unkept`, and
the command line refuses such an input unless ``--strip`` accepts dropping metadata.
"""

from __future__ import annotations

import struct
import zlib

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
CRITICAL = {b"IHDR", b"PLTE", b"IDAT", b"IEND"}
ANIMATION = {b"acTL", b"fcTL", b"fdAT"}  # APNG frames: never stored (multi-frame inputs are refused or cut)
BEFORE_PLTE = {b"iCCP", b"sRGB", b"gAMA", b"cHRM", b"cICP", b"sBIT", b"mDCV", b"cLLI"}
# Pillow's im.info keys that describe the file's own structure, not how the image displays.
STRUCTURAL_KEYS = {"jfif", "jfif_version", "jfif_unit", "jfif_density", "progressive", "progression", "adobe",
                   "adobe_transform", "compression", "interlace", "dpi", "icc_profile", "exif", "xmp", "transparency",
                   "background", "loop", "duration", "version", "extension", "aspect", "gamma", "srgb", "chromaticity",
                   "photoshop", "resolution", "tile", "lossless", "mp", "mpoffset", "mpentries", "dqt", "quality"}

Chunks = tuple[tuple[bytes, bytes], ...]


class MetadataError(Exception):
    """Metadata that cannot be parsed (a corrupt .nzip block or PNG chunk stream)."""


def png_chunks(data: bytes) -> list[tuple[bytes, bytes]]:
    """All chunks (type, data) of a PNG file, in order; MetadataError if malformed."""
    if not data.startswith(PNG_SIGNATURE):
        raise MetadataError("not a PNG file")
    out, pos = [], len(PNG_SIGNATURE)
    while pos + 8 <= len(data):
        length, kind = struct.unpack(">I4s", data[pos : pos + 8])
        if pos + 12 + length > len(data):
            raise MetadataError("PNG chunk runs past the end of the file")
        out.append((kind, bytes(data[pos + 8 : pos + 8 + length])))
        pos += 12 + length
        if kind == b"IEND":
            break
    return out


def from_png(data: bytes, palette: bool) -> Chunks:
    """The ancillary chunks of a PNG file worth keeping (see the module notes)."""
    kept = []
    for kind, body in png_chunks(data):
        if kind in CRITICAL or kind in ANIMATION or (palette and kind == b"tRNS"):
            continue
        kept.append((kind, body))
    return tuple(kept)


def from_info(info: dict) -> Chunks:
    """ICC profile, EXIF, XMP and resolution of a non-PNG input as PNG chunks."""
    out = []
    if info.get("icc_profile"):
        out.append((b"iCCP", b"ICC Profile\x00\x00" + zlib.compress(info["icc_profile"], 9)))
    dpi = info.get("dpi")
    if dpi and all(isinstance(d, (int, float)) and d > 0 for d in dpi):
        x, y = (int(round(d / 0.0254)) for d in dpi)
        out.append((b"pHYs", struct.pack(">IIB", x, y, 1)))
    if info.get("exif"):
        exif = info["exif"]
        out.append((b"eXIf", exif[6:] if exif.startswith(b"Exif\x00\x00") else exif))
    xmp = info.get("xmp")
    if xmp:
        xmp = xmp if isinstance(xmp, bytes) else str(xmp).encode("utf-8")
        out.append((b"iTXt", b"XML:com.adobe.xmp\x00\x00\x00\x00\x00" + xmp))
    return tuple(out)


def unkept(info: dict, text: dict | None) -> list[str]:
    """What a non-PNG input holds that :func:`from_info` does not keep."""
    lost = [key for key, value in info.items() if key not in STRUCTURAL_KEYS and value not in (None, b"", "")]
    if text:
        lost.append("text")
    return sorted(lost)


def _chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF)


def splice(png: bytes, chunks: Chunks) -> bytes:
    """``png`` (as an image writer made it) with ``chunks`` in their places and the writer's
    own ancillary chunks removed, except the palette's tRNS."""
    if not chunks:
        return png
    parsed = png_chunks(png)
    has_palette = any(kind == b"PLTE" for kind, _ in parsed)
    early = [c for c in chunks if c[0] in BEFORE_PLTE]
    late = [c for c in chunks if c[0] not in BEFORE_PLTE]
    out = bytearray(PNG_SIGNATURE)
    placed_late = False
    for kind, body in parsed:
        if kind not in CRITICAL and not (has_palette and kind == b"tRNS"):
            continue  # replaced by the kept chunks
        if kind == b"IDAT" and not placed_late:
            out += b"".join(_chunk(*c) for c in late)
            placed_late = True
        out += _chunk(kind, body)
        if kind == b"IHDR":
            out += b"".join(_chunk(*c) for c in early)
    return bytes(out)


def serialize(chunks: Chunks) -> bytes:
    """The .nzip form: per chunk its 4-byte type, a 4-byte big-endian length, its data."""
    return b"".join(kind + struct.pack(">I", len(body)) + body for kind, body in chunks)


def parse(data: bytes) -> Chunks:
    """Inverse of :func:`serialize`; MetadataError if malformed."""
    out, pos = [], 0
    while pos < len(data):
        if pos + 8 > len(data):
            raise MetadataError("metadata block is cut short")
        kind = bytes(data[pos : pos + 4])
        (length,) = struct.unpack(">I", data[pos + 4 : pos + 8])
        if not all(65 <= b <= 90 or 97 <= b <= 122 for b in kind) or pos + 8 + length > len(data):
            raise MetadataError("metadata block is corrupt")
        out.append((kind, bytes(data[pos + 8 : pos + 8 + length])))
        pos += 8 + length
    return tuple(out)


NAMES = {b"iCCP": "ICC profile", b"eXIf": "EXIF", b"tEXt": "text", b"zTXt": "text", b"iTXt": "text",
         b"tRNS": "transparency key", b"pHYs": "resolution", b"gAMA": "gamma", b"cHRM": "chromaticities",
         b"sRGB": "sRGB intent", b"bKGD": "background colour", b"tIME": "modification time"}


def describe(chunks: Chunks) -> str:
    """``"ICC profile, EXIF, 2 text"`` for messages."""
    counts: dict[str, int] = {}
    for kind, body in chunks:
        name = "XMP" if kind == b"iTXt" and body.startswith(b"XML:com.adobe.xmp\x00") else NAMES.get(kind, kind.decode("ascii", "replace"))
        counts[name] = counts.get(name, 0) + 1
    return ", ".join(name if n == 1 else f"{n} {name}" for name, n in counts.items())
