"""PixelCNN++ codec: every sub-pixel coded with its exact discretized-logistic-mixture table.

Encoding runs the integer network once over whole tiles (all pixels are known) and codes
each sub-pixel as 8 binary decisions with exact integer probabilities
(:mod:`neuralzip.exact.mixture`). Decoding runs the same integer network incrementally
(:class:`~neuralzip.exact.network.IncrementalRun`): after each pixel it computes only the
activations that pixel makes computable, for a whole batch of tiles at once, popping bits
from one ANS stream per tile with :class:`~neuralzip.coding.BatchAnsDecoder`. Integer
arithmetic makes the two paths agree exactly, on any batch size, thread count or machine.

Images are cut into tiles of at most ``TILE`` x ``TILE`` pixels (``LARGE_TILE`` for large
images; raster order), each with its own stream, so a large image decodes as one batch.
Grey images are seen by the network as R = G = B and only the first channel is coded; an
alpha plane is coded beside the colour by the smaller of PNG and JPEG-XL. A tile whose sides are not multiples of
the network's downsampling factor is padded on the right by repeating each row's last pixel
and at the bottom with zeros; padding is never coded (the decoder repeats the pixel it just
decoded, and no real pixel depends on the bottom rows).

Payload: [tile side / 4, one byte, only if a side exceeds ``TILE``] [alpha plane, only for
RGBA/LA: codec id byte, varint length, bytes] [n-1 varint tile lengths in bytes] [each tile's
ANS stream as bytes (:func:`~neuralzip.coding.stream_to_bytes`), in tile order].
"""

from __future__ import annotations

import math

import numpy as np
import torch

from ..coding import TOTAL, BatchAnsDecoder, CodingError
from ..coding import encode as ans_encode
from ..distributions import MixtureLayout
from ..exact.fixedpoint import ACT_ONE
from ..exact.mixture import ExactMixture, pixel_to_input
from ..exact.network import ExactNetwork, IncrementalRun, tensors_hash
from ..images import PixelImage
from ..progress import progress
from ..nets.pixelcnn import PixelCNN, PixelCNNConfig, build_pixelcnn
from .base import Encoded, PerImageCodec, ImageShape, PayloadError, UnsupportedImageError
from .tiles import ALPHA_MODES, COLOUR_CHANNELS, decode_alpha, encode_alpha, join_streams, split_streams, tile_grid

TILE = 32
LARGE_TILE = 64
ENCODE_CHUNK = 32
DECODE_BATCH = 1024


def tile_side(height: int, width: int) -> int:
    """Tile side used for an image: larger tiles for large images (fewer tile borders without
    context, still enough tiles to decode in parallel)."""
    return LARGE_TILE if min(height, width) >= 4 * LARGE_TILE else TILE


def _several_tiles_possible(height: int, width: int) -> bool:
    """Whether the payload records the tile side (not for images that fit one small tile)."""
    return height > TILE or width > TILE


class PixelCNNCodec(PerImageCodec):
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
        exact = ExactNetwork.from_tensors(build_pixelcnn(config), shipped.tensors, "exact.")
        return cls(config, exact, shipped.model_hash, shipped.card)

    @classmethod
    def from_float(cls, model: PixelCNN) -> "PixelCNNCodec":
        """Quantise a float model (tests, export). The hash covers the integer weights."""
        exact = ExactNetwork.from_float(model.network.graph, model.network.folded_weights())
        return cls(model.config, exact, tensors_hash(exact.tensors("exact.")))

    def integer_tensors(self) -> dict[str, torch.Tensor]:
        """The integer weights as tensors, for shipping."""
        return self.exact.tensors("exact.")

    # ---- interface -------------------------------------------------------------------------
    def check(self, image: PixelImage) -> None:
        if self.config.channels != 3 or image.mode not in COLOUR_CHANNELS or image.pixels.dtype != np.uint8:
            raise UnsupportedImageError(f"pixelcnn codes RGB, RGBA, L and LA images with 8-bit samples, not {image.mode}")

    def encode(self, images: list[PixelImage]) -> Encoded:
        for image in images:
            self.check(image)
        tiles, owners, sides = [], [], []
        for index, image in enumerate(images):
            side = tile_side(image.height, image.width)
            sides.append(side)
            colour = image.pixels[:, :, : COLOUR_CHANNELS[image.mode]]
            for top, left, h, w in tile_grid(image.height, image.width, side):
                tiles.append(colour[top : top + h, left : left + w])
                owners.append(index)
        streams: list[np.ndarray] = [None] * len(tiles)  # type: ignore[list-item]
        bits = np.zeros(len(tiles))
        for members in self._groups(tiles).values():
            for start in range(0, len(members), ENCODE_CHUNK):
                chunk = members[start : start + ENCODE_CHUNK]
                words, lengths = self._encode_tiles(np.stack([tiles[i] for i in chunk]))
                for i, stream, length in zip(chunk, words, lengths):
                    streams[i], bits[i] = stream, length
        payloads, nll = [], []
        for index, image in enumerate(images):
            mine = [i for i, owner in enumerate(owners) if owner == index]
            header = bytes([sides[index] // 4]) if _several_tiles_possible(image.height, image.width) else b""
            alpha = encode_alpha(image.pixels[:, :, -1]) if image.mode in ALPHA_MODES else b""
            payloads.append(header + alpha + join_streams([streams[i] for i in mine]))
            nll.append(float(bits[mine].sum()) + 8 * len(alpha))
        return Encoded(payloads, nll)

    def decode_each(self, payloads: list[bytes], shapes: list[ImageShape]) -> list:
        """Like :meth:`decode`, but a bad payload only fails its own image: returns, per
        image, the decoded image or the :class:`PayloadError` that stopped it."""
        results: list = [None] * len(payloads)
        tile_keys, owners, streams, layouts, alphas = [], [], [], [], []
        for index, (payload, shape) in enumerate(zip(payloads, shapes)):
            try:
                grid, alpha, tile_streams = self._parse(payload, shape)
            except PayloadError as error:
                results[index] = error
                layouts.append(None)
                alphas.append(None)
                continue
            channels = COLOUR_CHANNELS[shape.mode]
            for (_, _, h, w), stream in zip(grid, tile_streams):
                tile_keys.append((h, w, channels))
                owners.append(index)
                streams.append(stream)
            layouts.append(grid)
            alphas.append(alpha)
        decoded: list = [None] * len(streams)
        groups: dict[tuple[int, int, int], list[int]] = {}
        for i, key in enumerate(tile_keys):
            groups.setdefault(key, []).append(i)
        for (h, w, channels), members in groups.items():
            for start in range(0, len(members), DECODE_BATCH):
                chunk = members[start : start + DECODE_BATCH]
                tiles, complete = self._decode_tiles([streams[i] for i in chunk], h, w, channels)
                for i, tile, ok in zip(chunk, tiles, complete):
                    decoded[i] = tile if ok else None
        for index, shape in enumerate(shapes):
            if results[index] is not None:
                continue
            mine = [i for i, owner in enumerate(owners) if owner == index]
            if any(decoded[i] is None for i in mine):
                results[index] = PayloadError("pixelcnn payload is corrupt (a stream was not consumed exactly)")
                continue
            channels = COLOUR_CHANNELS[shape.mode]
            pixels = np.zeros((shape.height, shape.width, channels + (shape.mode in ALPHA_MODES)), dtype=np.uint8)
            for (top, left, h, w), i in zip(layouts[index], mine):
                pixels[top : top + h, left : left + w, :channels] = decoded[i]
            if alphas[index] is not None:
                pixels[:, :, -1] = alphas[index]
            results[index] = PixelImage(shape.mode, pixels)
        return results

    def _parse(self, payload: bytes, shape: ImageShape):
        """(tile grid, alpha plane or None, tile streams) of one payload."""
        if shape.mode not in COLOUR_CHANNELS:
            raise PayloadError(f"pixelcnn payload for an image of mode {shape.mode}")
        pos, side = 0, TILE
        if _several_tiles_possible(shape.height, shape.width):
            if not payload:
                raise PayloadError("pixelcnn payload is truncated (tile size)")
            side, pos = 4 * payload[0], 1
            if side < 4 or side % self.multiple:
                raise PayloadError(f"pixelcnn payload has an invalid tile size {side}")
        alpha = None
        if shape.mode in ALPHA_MODES:
            alpha, pos = decode_alpha(payload, pos, shape, self.name)
        grid = tile_grid(shape.height, shape.width, side)
        return grid, alpha, split_streams(payload[pos:], len(grid), self.name)

    # ---- tiles -----------------------------------------------------------------------------
    @staticmethod
    def _groups(tiles: list[np.ndarray]) -> dict[tuple[int, ...], list[int]]:
        """Tiles of the same size and channel count, coded together."""
        groups: dict[tuple[int, ...], list[int]] = {}
        for i, tile in enumerate(tiles):
            groups.setdefault(tile.shape, []).append(i)
        return groups

    def _padded(self, h: int, w: int) -> tuple[int, int]:
        m = self.multiple
        return math.ceil(h / m) * m, math.ceil(w / m) * m

    def _network_input(self, pixels: np.ndarray) -> torch.Tensor:
        """uint8 [n, H, W, C] -> integer network input [n, H*W, 3+1] (ones channel last);
        a grey tile (C = 1) is seen by the network as R = G = B."""
        if pixels.shape[3] == 1:
            pixels = np.repeat(pixels, 3, axis=3)
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
        colour = image.pixels[:, :, : COLOUR_CHANNELS[image.mode]]
        for top, left, h, w in tile_grid(image.height, image.width, tile_side(image.height, image.width)):
            tile = colour[None, top : top + h, left : left + w]
            bits, frequencies = self._tile_decisions(tile)
            per_pixel = self.mixture.code_length_bits(frequencies.reshape(h * w, -1), bits.reshape(h * w, -1))
            out[top : top + h, left : left + w] = per_pixel.reshape(h, w)
        return out

    def _decode_tiles(self, streams: list[np.ndarray], h: int, w: int, c: int) -> tuple[np.ndarray, np.ndarray]:
        """Decode same-size tiles with ``c`` coded channels (3, or 1 for grey). Returns the
        tiles and, per tile, whether its stream was consumed exactly (False: corrupt)."""
        n = len(streams)
        hh, ww = self._padded(h, w)
        try:
            decoder = BatchAnsDecoder(streams)
        except CodingError as error:
            raise PayloadError(f"pixelcnn payload is corrupt ({error})") from None
        run = IncrementalRun(self.exact, n, hh, ww)
        out = np.zeros((n, h, w, c), dtype=np.uint8)
        ones = np.full((n, 1), float(ACT_ONE))
        rows = progress(range(h), desc=f"pixelcnn: {n} tiles", unit="row", leave=False, disable=None if n * h * w > 50_000 else True)
        for y in rows:
            for x in range(ww):
                t = y * ww + x
                head = run.advance(t)
                if x < w:
                    values = self.mixture.decode_pixel(head.numpy().astype(np.int64), decoder.decode_binary, c)
                    out[:, y, x] = values
                else:
                    values = out[:, y, w - 1]
                rgb = np.repeat(values, 3, axis=1) if c == 1 else values
                run.set_pixel(t, torch.from_numpy(np.concatenate([pixel_to_input(rgb).astype(np.float64), ones], axis=1)))
        return out, (decoder.remaining_words() == 0) & decoder.exhausted()

