"""What the neural codecs share: tiling, stream payloads, alpha planes, per-image failures.

A neural codec cuts an image into tiles (raster order, edge tiles smaller) and codes each
tile as its own ANS stream, so that many tiles decode as one batch. A payload holding n
tile streams is ``n - 1`` varint byte lengths followed by the streams' bytes
(:func:`~neuralzip.coding.stream_to_bytes`); the last length is implied.
"""

from __future__ import annotations

import numpy as np

from ..coding import CodingError, bytes_to_stream, stream_to_bytes
from ..container import varint
from ..images import PixelImage
from .base import ImageShape, PayloadError

# Modes the neural codecs code: colour channels through the model, alpha beside it.
COLOUR_CHANNELS = {"RGB": 3, "RGBA": 3, "L": 1, "LA": 1}
ALPHA_MODES = ("RGBA", "LA")
ALPHA_CODECS = {1: "png", 3: "jxl"}


def tile_grid(height: int, width: int, tile: int) -> list[tuple[int, int, int, int]]:
    """(top, left, height, width) of each tile in raster order."""
    return [(top, left, min(tile, height - top), min(tile, width - left))
            for top in range(0, height, tile) for left in range(0, width, tile)]


def pad_tile(tile: np.ndarray, side: int) -> np.ndarray:
    """A tile padded to side x side by repeating its last row and column."""
    h, w = tile.shape[:2]
    if (h, w) == (side, side):
        return tile
    return np.pad(tile, ((0, side - h), (0, side - w), (0, 0)), mode="edge")


def encode_alpha(alpha: np.ndarray) -> bytes:
    """The alpha plane, coded with the smaller of PNG and JPEG-XL: codec id, length, bytes."""
    from . import get_codec

    plane = PixelImage("L", np.ascontiguousarray(alpha[:, :, None]))
    options = {cid: get_codec(name).encode([plane]).payloads[0] for cid, name in ALPHA_CODECS.items()}
    cid = min(options, key=lambda k: len(options[k]))
    return bytes([cid]) + varint(len(options[cid])) + options[cid]


def decode_alpha(payload: bytes, pos: int, shape: ImageShape, codec: str) -> tuple[np.ndarray, int]:
    """Inverse of :func:`encode_alpha` at ``pos`` of ``payload``: (alpha plane, next position)."""
    from . import get_codec

    if pos >= len(payload) or payload[pos] not in ALPHA_CODECS:
        raise PayloadError(f"{codec} payload has a corrupt alpha plane")
    cid = payload[pos]
    length, pos = read_varint(payload, pos + 1, "alpha plane")
    if len(payload) - pos < length:
        raise PayloadError(f"{codec} payload is truncated (alpha plane)")
    plane = get_codec(ALPHA_CODECS[cid]).decode([payload[pos : pos + length]], [ImageShape("L", shape.width, shape.height)])[0]
    return plane.pixels[:, :, 0], pos + length


def read_varint(data: bytes, pos: int, what: str) -> tuple[int, int]:
    """(value, next position) of the varint at ``pos``; PayloadError if cut short."""
    value = shift = 0
    while True:
        if pos >= len(data):
            raise PayloadError(f"payload is truncated ({what})")
        byte = data[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return value, pos
        shift += 7
        if shift > 63:
            raise PayloadError(f"payload is corrupt ({what})")


def join_streams(streams: list[np.ndarray]) -> bytes:
    parts = [stream_to_bytes(s) for s in streams]
    return b"".join(varint(len(p)) for p in parts[:-1]) + b"".join(parts)


def split_streams(payload: bytes, count: int, codec: str) -> list[np.ndarray]:
    """Inverse of :func:`join_streams` for ``count`` streams."""
    pos, lengths = 0, []
    for _ in range(count - 1):
        length, pos = read_varint(payload, pos, f"{codec} tile table")
        lengths.append(length)
    if len(payload) - pos < sum(lengths):
        raise PayloadError(f"{codec} payload is truncated (stream sizes)")
    bounds = np.cumsum([pos] + lengths + [len(payload) - pos - sum(lengths)])
    try:
        return [bytes_to_stream(payload[bounds[i] : bounds[i + 1]]) for i in range(count)]
    except CodingError as error:
        raise PayloadError(f"{codec} payload is corrupt ({error})") from None
