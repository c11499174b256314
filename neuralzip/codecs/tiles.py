"""What the neural codecs share: tiling, tile payloads, per-image failures.

A neural codec cuts an image into tiles (raster order, edge tiles smaller) and codes each
tile as its own ANS stream, so that many tiles decode as one batch. A payload holding n
tile streams is ``n - 1`` varint byte lengths followed by the streams' bytes
(:func:`~neuralzip.coding.stream_to_bytes`); the last length is implied.
"""

from __future__ import annotations

import numpy as np

from ..coding import CodingError, bytes_to_stream, stream_to_bytes
from ..container import varint
from .base import PayloadError


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


def raise_first_error(results: list) -> list:
    """``results`` of a ``decode_each``: raise the first PayloadError, else return them."""
    for result in results:
        if isinstance(result, PayloadError):
            raise result
    return results
