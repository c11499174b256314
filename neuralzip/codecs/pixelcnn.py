"""PixelCNN++ codec: every sub-pixel coded with its exact discretized-logistic-mixture table.

Encoding runs the integer network once over whole tiles (all pixels are known) and codes
each sub-pixel as 8 binary decisions with exact integer probabilities
(:mod:`neuralzip.exact.mixture`). Decoding runs the same integer network incrementally
(:class:`~neuralzip.exact.network.IncrementalRun`): after each pixel it computes only the
activations that pixel makes computable, for a whole batch of tiles at once, popping bits
from one ANS stream per tile with :class:`~neuralzip.coding.BatchAnsDecoder`. Integer
arithmetic makes the two paths agree exactly, on any batch size, thread count or machine.

Images are cut into tiles of at most ``TILE`` x ``TILE`` pixels (raster order), each with its
own stream, so a large image decodes as one batch. A tile whose sides are not multiples of
the network's downsampling factor is padded on the right by repeating each row's last pixel
and at the bottom with zeros; padding is never coded (the decoder repeats the pixel it just
decoded, and no real pixel depends on the bottom rows).

Payload of an image with n tiles: n-1 varint tile lengths in bytes, then each tile's ANS
stream as bytes (:func:`~neuralzip.coding.stream_to_bytes`), in tile order.
"""

from __future__ import annotations

import hashlib
import math

import numpy as np
import torch

from ..coding import TOTAL, BatchAnsDecoder, CodingError, bytes_to_stream, stream_to_bytes
from ..coding import encode as ans_encode
from ..distributions import MixtureLayout
from ..exact.fixedpoint import ACT_ONE
from ..exact.mixture import ExactMixture, pixel_to_input
from ..exact.network import ExactNetwork, IncrementalRun
from ..images import PixelImage
from ..nets.graph import param_key
from ..nets.pixelcnn import PixelCNN, PixelCNNConfig, build_pixelcnn
from .base import Codec, Encoded, ImageShape, PayloadError, UnsupportedImageError

TILE = 32
ENCODE_CHUNK = 32
DECODE_BATCH = 1024


def tile_grid(height: int, width: int, tile: int = TILE) -> list[tuple[int, int, int, int]]:
    """(top, left, height, width) of each tile in raster order."""
    return [(top, left, min(tile, height - top), min(tile, width - left))
            for top in range(0, height, tile) for left in range(0, width, tile)]


def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte, value = value & 0x7F, value >> 7
        out.append(byte | (0x80 if value else 0))
        if not value:
            return bytes(out)


def _read_varint(data: bytes, pos: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        if pos >= len(data):
            raise PayloadError("pixelcnn payload is truncated (tile table)")
        byte = data[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return value, pos
        shift += 7
        if shift > 35:
            raise PayloadError("pixelcnn payload has a corrupt tile table")


class PixelCNNCodec(Codec):
    name, codec_id, kind = "pixelcnn", 16, "neural"
    description = "PixelCNN++ (autoregressive, discretized logistic mixtures, exact integer inference)"

    def __init__(self, config: PixelCNNConfig, exact: ExactNetwork, model_hash: bytes, card: dict | None = None):
        self.config = config
        self.exact = exact
        self._hash = model_hash
        self.card = card or {}
        self.mixture = ExactMixture(MixtureLayout(config.channels, config.mixtures))
        self.multiple = config.downsampling

    @property
    def model_hash(self) -> bytes:
        return self._hash

    # ---- construction ----------------------------------------------------------------------
    @classmethod
    def from_shipped(cls, shipped) -> "PixelCNNCodec":
        config = PixelCNNConfig.from_dict(shipped.card["config"])
        graph = build_pixelcnn(config)
        weights = {}
        for node in graph.nodes:
            for i, _ in enumerate(node.terms):
                key = param_key(node.name, i)
                weights[key] = (shipped.tensors[f"exact.{key}.weight"].numpy().astype(np.int64),
                                shipped.tensors[f"exact.{key}.bias"].numpy().astype(np.int64))
        return cls(config, ExactNetwork(graph, weights), shipped.model_hash, shipped.card)

    @classmethod
    def from_float(cls, model: PixelCNN) -> "PixelCNNCodec":
        """Quantise a float model (tests, export). The hash covers the integer weights."""
        exact = ExactNetwork.from_float(model.network.graph, model.network.folded_weights())
        return cls(model.config, exact, integer_weights_hash(exact))

    def integer_tensors(self) -> dict[str, torch.Tensor]:
        """The integer weights as tensors, for shipping."""
        out = {}
        for key, (weight, bias) in self.exact.integer_weights.items():
            out[f"exact.{key}.weight"] = torch.from_numpy(np.asarray(weight, np.int32))
            out[f"exact.{key}.bias"] = torch.from_numpy(np.asarray(bias, np.int64))
        return out

    # ---- interface -------------------------------------------------------------------------
    def check(self, image: PixelImage) -> None:
        expected = {3: "RGB", 1: "L"}.get(self.config.channels)
        if image.mode != expected or image.pixels.dtype != np.uint8:
            raise UnsupportedImageError(f"pixelcnn codes {expected} images with 8-bit samples, not {image.mode}")

    def encode(self, images: list[PixelImage]) -> Encoded:
        for image in images:
            self.check(image)
        tiles, owners = self._tiles([im.pixels for im in images])
        streams: list[np.ndarray] = [None] * len(tiles)  # type: ignore[list-item]
        bits = np.zeros(len(tiles))
        for (h, w), members in self._groups(tiles).items():
            for start in range(0, len(members), ENCODE_CHUNK):
                chunk = members[start : start + ENCODE_CHUNK]
                words, lengths = self._encode_tiles(np.stack([tiles[i] for i in chunk]))
                for i, stream, length in zip(chunk, words, lengths):
                    streams[i], bits[i] = stream, length
        payloads, nll = [], []
        for index in range(len(images)):
            mine = [i for i, owner in enumerate(owners) if owner == index]
            parts = [stream_to_bytes(streams[i]) for i in mine]
            payloads.append(b"".join(_varint(len(part)) for part in parts[:-1]) + b"".join(parts))
            nll.append(float(bits[mine].sum()))
        return Encoded(payloads, nll)

    def decode(self, payloads: list[bytes], shapes: list[ImageShape]) -> list[PixelImage]:
        tile_shapes, owners, streams = [], [], []
        for index, (payload, shape) in enumerate(zip(payloads, shapes)):
            grid = tile_grid(shape.height, shape.width)
            words = self._split(payload, len(grid))
            for (_, _, h, w), stream in zip(grid, words):
                tile_shapes.append((h, w))
                owners.append(index)
                streams.append(stream)
        decoded: list[np.ndarray] = [None] * len(streams)  # type: ignore[list-item]
        groups: dict[tuple[int, int], list[int]] = {}
        for i, hw in enumerate(tile_shapes):
            groups.setdefault(hw, []).append(i)
        for (h, w), members in groups.items():
            for start in range(0, len(members), DECODE_BATCH):
                chunk = members[start : start + DECODE_BATCH]
                for i, tile in zip(chunk, self._decode_tiles([streams[i] for i in chunk], h, w)):
                    decoded[i] = tile
        images = []
        for index, shape in enumerate(shapes):
            pixels = np.zeros((shape.height, shape.width, self.config.channels), dtype=np.uint8)
            mine = [i for i, owner in enumerate(owners) if owner == index]
            for (top, left, h, w), i in zip(tile_grid(shape.height, shape.width), mine):
                pixels[top : top + h, left : left + w] = decoded[i]
            images.append(PixelImage(shape.mode, pixels))
        return images

    # ---- tiles -----------------------------------------------------------------------------
    def _tiles(self, arrays: list[np.ndarray]) -> tuple[list[np.ndarray], list[int]]:
        tiles, owners = [], []
        for index, pixels in enumerate(arrays):
            for top, left, h, w in tile_grid(*pixels.shape[:2]):
                tiles.append(pixels[top : top + h, left : left + w])
                owners.append(index)
        return tiles, owners

    @staticmethod
    def _groups(tiles: list[np.ndarray]) -> dict[tuple[int, int], list[int]]:
        groups: dict[tuple[int, int], list[int]] = {}
        for i, tile in enumerate(tiles):
            groups.setdefault(tile.shape[:2], []).append(i)
        return groups

    def _padded(self, h: int, w: int) -> tuple[int, int]:
        m = self.multiple
        return math.ceil(h / m) * m, math.ceil(w / m) * m

    def _network_input(self, pixels: np.ndarray) -> torch.Tensor:
        """uint8 [n, H, W, C] -> integer network input [n, H*W, C+1] (ones channel last)."""
        n, hh, ww, c = pixels.shape
        x = pixel_to_input(pixels).reshape(n, hh * ww, c).astype(np.float64)
        ones = np.full((n, hh * ww, 1), float(ACT_ONE))
        return torch.from_numpy(np.concatenate([x, ones], axis=2))

    def _tile_decisions(self, tiles: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Binary decisions and their left frequencies for same-size tiles [n, h, w, C],
        each [n, h*w, C, 8] in decoding order."""
        n, h, w, c = tiles.shape
        hh, ww = self._padded(h, w)
        padded = np.zeros((n, hh, ww, c), dtype=np.uint8)
        padded[:, :h, :w] = tiles
        padded[:, :h, w:] = tiles[:, :, w - 1 : w]
        head = self.exact.run({"x": self._network_input(padded)}, hh, ww).numpy().astype(np.int64)
        head = head.reshape(n, hh, ww, -1)[:, :h, :w].reshape(n * h * w, -1)
        bits, frequencies = self.mixture.decisions(head, tiles.reshape(n * h * w, c))
        return bits.reshape(n, h * w, c, -1), frequencies.reshape(n, h * w, c, -1)

    def _encode_tiles(self, tiles: np.ndarray) -> tuple[list[np.ndarray], np.ndarray]:
        bits, frequencies = self._tile_decisions(tiles)
        n = len(tiles)
        bits, frequencies = bits.reshape(n, -1), frequencies.reshape(n, -1)
        lengths = self.mixture.code_length_bits(frequencies, bits)
        words = [ans_encode(bits[i], np.stack([frequencies[i], TOTAL - frequencies[i]], axis=1)) for i in range(n)]
        return words, lengths

    def pixel_bits(self, image: PixelImage) -> np.ndarray:
        """The model's code length of every pixel in bits (channels summed), float [H, W]."""
        self.check(image)
        out = np.zeros((image.height, image.width))
        for top, left, h, w in tile_grid(image.height, image.width):
            tile = image.pixels[None, top : top + h, left : left + w]
            bits, frequencies = self._tile_decisions(tile)
            per_pixel = self.mixture.code_length_bits(frequencies.reshape(h * w, -1), bits.reshape(h * w, -1))
            out[top : top + h, left : left + w] = per_pixel.reshape(h, w)
        return out

    def _split(self, payload: bytes, count: int) -> list[np.ndarray]:
        pos, lengths = 0, []
        for _ in range(count - 1):
            length, pos = _read_varint(payload, pos)
            lengths.append(length)
        if len(payload) - pos < sum(lengths):
            raise PayloadError("pixelcnn payload is truncated (stream sizes)")
        bounds = np.cumsum([pos] + lengths + [len(payload) - pos - sum(lengths)])
        try:
            return [bytes_to_stream(payload[bounds[i] : bounds[i + 1]]) for i in range(count)]
        except CodingError as error:
            raise PayloadError(f"pixelcnn payload is corrupt ({error})") from None

    def _decode_tiles(self, streams: list[np.ndarray], h: int, w: int) -> np.ndarray:
        n, c = len(streams), self.config.channels
        hh, ww = self._padded(h, w)
        try:
            decoder = BatchAnsDecoder(streams)
        except CodingError as error:
            raise PayloadError(f"pixelcnn payload is corrupt ({error})") from None
        run = IncrementalRun(self.exact, n, hh, ww)
        out = np.zeros((n, h, w, c), dtype=np.uint8)
        ones = np.full((n, 1), float(ACT_ONE))
        for y in range(h):
            for x in range(ww):
                t = y * ww + x
                head = run.advance(t)
                if x < w:
                    values = self.mixture.decode_pixel(head.numpy().astype(np.int64), decoder.decode_binary)
                    out[:, y, x] = values
                else:
                    values = out[:, y, w - 1]
                run.set_pixel(t, torch.from_numpy(np.concatenate([pixel_to_input(values).astype(np.float64), ones], axis=1)))
        if np.any(decoder.remaining_words() != 0) or not np.all(decoder.exhausted()):
            raise PayloadError("pixelcnn payload is corrupt (stream not fully consumed)")
        return out


def integer_weights_hash(exact: ExactNetwork) -> bytes:
    digest = hashlib.sha256()
    for key in sorted(exact.integer_weights):
        weight, bias = exact.integer_weights[key]
        digest.update(key.encode())
        digest.update(np.asarray(weight, np.int64).tobytes())
        digest.update(np.asarray(bias, np.int64).tobytes())
    return digest.digest()[:4]
