"""Integer discrete flow codec: one exact network pass each way, latents coded with their
exact prior tables.

Encoding runs the flow forward (:class:`~neuralzip.nets.flow.IntegerFlow`'s structure, with
every coupling and prior network an :class:`~neuralzip.exact.network.ExactNetwork`), then
codes every latent as one symbol with :class:`~neuralzip.exact.latent.ExactLatentPrior`
(its interval from the exact CDF at two points; a numpy ANS encoder pushes one symbol per
tile stream at a time), top level first.
Decoding pops the top latents, inverts the last level's couplings (subtracting the same
integer translations, recomputed exactly), predicts the next level's prior from the result,
pops those latents, and so on down to the pixels. All latents of a level are decoded for a
whole batch of tiles at once, one ANS stream per tile.

Images are coded as 32x32 tiles (the flow's training size); an edge tile is padded to 32x32
by repeating its last row and column, and the padding is coded with the tile (the decoder
crops it). Payload: n-1 varint tile lengths in bytes, then the tiles' ANS streams
(:func:`~neuralzip.coding.stream_to_bytes`).
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import numpy as np
import torch

from ..coding import BatchAnsDecoder, BatchAnsEncoder, CodingError
from ..exact.fixedpoint import ACT_FRAC, ACT_LIMIT, to_fixed
from ..exact.latent import HALF, ExactLatentPrior
from ..exact.network import ExactNetwork, tensors_hash
from ..images import PixelImage
from ..nets.flow import FlowConfig, IntegerFlow, coupling_graph, prior_graph, squeeze, unsqueeze
from .base import Encoded, PerImageCodec, ImageShape, PayloadError, UnsupportedImageError
from .tiles import join_streams, pad_tile, split_streams, tile_grid

TILE = 32
BATCH = 4096  # tiles decoded together: the per-latent loop is cheaper per tile in large batches
NETWORK_CHUNK = 128
TOP_WINDOW_BITS = 10  # the top level's latents are coded in windows of 1024 values, the others 256
SYMBOL_BLOCK = 16  # tiles per block of latent symbol computation (~50k rows)
PREPARE_BLOCK = 16  # latent positions per block of decoder tables
INPUT_SHIFT = ACT_FRAC - 7  # latents / 128 in fixed point: multiply by 2**5


class FlowCodec(PerImageCodec):
    name, codec_id, kind = "flow", 32, "neural"
    description = "integer discrete flow, exact integer inference, one pass each way"

    def __init__(self, config: FlowConfig, couplings: list[ExactNetwork], priors: list[ExactNetwork],
                 top_params: np.ndarray, model_hash: bytes, card: dict | None = None):
        self.config = config
        self.couplings = couplings
        self.priors = priors
        self.top_params = np.asarray(top_params, dtype=np.int64)  # [C*3K, h, w]
        self._hash = model_hash
        self.card = card or {}
        # per level, top first (decoding order): the top level's unconditional prior is
        # wide, so its window is too (escapes there would be frequent and cost uniform bits)
        self.latent_priors = [ExactLatentPrior(config.mixtures, TOP_WINDOW_BITS)] + \
            [ExactLatentPrior(config.mixtures)] * (config.levels - 1)

    @property
    def model_hash(self) -> bytes:
        return self._hash

    # ---- construction ----------------------------------------------------------------------
    @classmethod
    def from_float(cls, model: IntegerFlow) -> "FlowCodec":
        couplings = [ExactNetwork.from_float(net.graph, net.folded_weights()) for net in model.couplings]
        priors = [ExactNetwork.from_float(net.graph, net.folded_weights()) for net in model.priors]
        top = to_fixed(model.top_prior.detach().double().numpy()[0], ACT_FRAC)
        codec = cls(model.config, couplings, priors, top, b"")
        codec._hash = tensors_hash(codec.integer_tensors())
        return codec

    @classmethod
    def from_shipped(cls, shipped) -> "FlowCodec":
        config = FlowConfig.from_dict(shipped.card["config"])
        channels = config.level_channels()
        couplings, priors = [], []
        for level, c in enumerate(channels):
            for k in range(config.couplings):
                couplings.append(ExactNetwork.from_tensors(coupling_graph(c, config.hidden), shipped.tensors,
                                                           f"exact.coupling{level}.{k}."))
            if level < config.levels - 1:
                graph = prior_graph(c - c // 2, c // 2, config.hidden, config.mixtures)
                priors.append(ExactNetwork.from_tensors(graph, shipped.tensors, f"exact.prior{level}."))
        return cls(config, couplings, priors, shipped.tensors["exact.top"].numpy(), shipped.model_hash, shipped.card)

    def integer_tensors(self) -> dict[str, torch.Tensor]:
        out = {"exact.top": torch.from_numpy(self.top_params.astype(np.int64))}
        for prefix, network in self._named_networks():
            out.update(network.tensors(prefix))
        return out

    def _named_networks(self):
        k = self.config.couplings
        for i, network in enumerate(self.couplings):
            yield f"exact.coupling{i // k}.{i % k}.", network
        for level, network in enumerate(self.priors):
            yield f"exact.prior{level}.", network

    # ---- interface -------------------------------------------------------------------------
    def check(self, image: PixelImage) -> None:
        if image.mode != "RGB" or image.pixels.dtype != np.uint8:
            raise UnsupportedImageError(f"flow codes RGB images with 8-bit samples, not {image.mode}")

    def encode(self, images: list[PixelImage]) -> Encoded:
        for image in images:
            self.check(image)
        tiles, owners = [], []
        for index, image in enumerate(images):
            for top, left, h, w in tile_grid(image.height, image.width, TILE):
                tiles.append(pad_tile(image.pixels[top : top + h, left : left + w], TILE))
                owners.append(index)
        streams, bits = [], []
        for start in range(0, len(tiles), BATCH):
            s, b = self._encode_tiles(np.stack(tiles[start : start + BATCH]))
            streams += s
            bits += list(b)
        payloads, nll = [], []
        for index in range(len(images)):
            mine = [i for i, owner in enumerate(owners) if owner == index]
            payloads.append(join_streams([streams[i] for i in mine]))
            nll.append(float(sum(bits[i] for i in mine)))
        return Encoded(payloads, nll)

    def decode_each(self, payloads: list[bytes], shapes: list[ImageShape]) -> list:
        """Per image the decoded image or the PayloadError that stopped it."""
        results: list = [None] * len(payloads)
        grids, owners, streams = [], [], []
        for index, (payload, shape) in enumerate(zip(payloads, shapes)):
            grid = tile_grid(shape.height, shape.width, TILE)
            grids.append(grid)
            try:
                if shape.mode != "RGB":
                    raise PayloadError(f"flow payload for an image of mode {shape.mode}")
                parts = split_streams(payload, len(grid), self.name)
            except PayloadError as error:
                results[index] = error
                continue
            streams += parts
            owners += [index] * len(parts)
        decoded: list = []
        for start in range(0, len(streams), BATCH):
            decoded += self._decode_tiles(streams[start : start + BATCH])
        for index, shape in enumerate(shapes):
            if results[index] is not None:
                continue
            mine = [i for i, owner in enumerate(owners) if owner == index]
            if any(decoded[i] is None for i in mine):
                results[index] = PayloadError("flow payload is corrupt")
                continue
            pixels = np.zeros((shape.height, shape.width, 3), dtype=np.uint8)
            for (top, left, h, w), i in zip(grids[index], mine):
                pixels[top : top + h, left : left + w] = decoded[i][:h, :w]
            results[index] = PixelImage("RGB", pixels)
        return results

    def nll_bits_per_location(self, image: PixelImage) -> list[np.ndarray]:
        """Code length of each latent, per level (top first) as [C, h, w] arrays (explain)."""
        tiles = [pad_tile(image.pixels[t : t + h, l : l + w], TILE) for t, l, h, w in tile_grid(image.height, image.width, TILE)]
        latents = self._forward(np.stack(tiles))
        out = []
        for prior, (z, params) in zip(self.latent_priors, latents):
            n, c, h, w = z.shape
            rows = params.transpose(0, 2, 3, 4, 1).reshape(-1, params.shape[1])
            _, frequency, escapes = prior.symbols(rows, z.reshape(-1))
            out.append(prior.symbol_bits(frequency, escapes, z.size).reshape(n, c, h, w))
        return out

    # ---- the flow, exactly ---------------------------------------------------------------
    def _translation(self, network: ExactNetwork, a: np.ndarray) -> np.ndarray:
        """round(128 * NN(a / 128)) for integer latents ``a`` [n, C, h, w]."""
        out = self._run(network, "a", a)
        return out.div_(1 << INPUT_SHIFT).round_().to(torch.int64).numpy()

    def _prior_params(self, network: ExactNetwork, kept: np.ndarray) -> np.ndarray:
        """Integer prior parameters [n, Cz*3K, h, w] from the kept latents."""
        return self._run(network, "y", kept).to(torch.int64).numpy()

    def _run(self, network: ExactNetwork, name: str, latents: np.ndarray) -> torch.Tensor:
        """The network on integer latents [n, C, h, w] (as latent / 128 in fixed point,
        clamped): its integer output [n, C', h, w] as float64. Conversions run in torch
        (multi-threaded)."""
        n, c, h, w = latents.shape
        x = torch.from_numpy(np.ascontiguousarray(latents)).to(torch.float64).mul_(1 << INPUT_SHIFT).clamp_(-ACT_LIMIT, ACT_LIMIT)
        x = x.permute(0, 2, 3, 1).reshape(n, h * w, c)
        out = network.run({name: x}, h, w, chunk=NETWORK_CHUNK)
        return out.view(n, h, w, -1).permute(0, 3, 1, 2)

    def _forward(self, tiles: np.ndarray) -> list[tuple[np.ndarray, np.ndarray]]:
        """Latents and their prior parameters, top level first: [(z [n,C,h,w], params
        [n, 3K, C, h, w])]."""
        cfg = self.config
        x = tiles.transpose(0, 3, 1, 2).astype(np.int64) - 128
        out = []
        for level in range(cfg.levels):
            x = squeeze(torch.from_numpy(x)).numpy()
            c = x.shape[1]
            for k in range(cfg.couplings):
                a, b = x[:, : c // 2], x[:, c // 2 :]
                b = b + self._translation(self.couplings[level * cfg.couplings + k], a)
                x = np.concatenate([a, b], axis=1)[:, ::-1]
            if level < cfg.levels - 1:
                kept, factored = x[:, : c - c // 2], x[:, c - c // 2 :]
                out.append((np.ascontiguousarray(factored), self._grouped(self._prior_params(self.priors[level], kept))))
                x = np.ascontiguousarray(kept)
            else:
                top = np.broadcast_to(self.top_params[None], (len(x),) + self.top_params.shape)
                out.append((np.ascontiguousarray(x), self._grouped(top)))
        return out[::-1]

    def _grouped(self, params: np.ndarray) -> np.ndarray:
        """[n, C*3K, h, w] -> [n, 3K, C, h, w] (per latent channel its 3K parameters)."""
        n, ck, h, w = params.shape
        k3 = 3 * self.config.mixtures
        return params.reshape(n, ck // k3, k3, h, w).transpose(0, 2, 1, 3, 4)

    def _encode_tiles(self, tiles: np.ndarray) -> tuple[list[np.ndarray], np.ndarray]:
        n = len(tiles)
        latents = self._forward(tiles)
        count = sum(z[0].size for z, _ in latents)

        def symbols(start: int, stop: int):
            """Symbols of tiles [start, stop) in decoding order: small blocks keep numpy's
            passes in cache, and blocks run in parallel threads (numpy releases the GIL)."""
            m = stop - start
            lefts, frequencies, escapes, bits = [], [], [], np.zeros(m)
            offset = 0
            for prior, (z, params) in zip(self.latent_priors, latents):
                size = z[0].size
                rows = params[start:stop].reshape(m, params.shape[1], size).transpose(0, 2, 1).reshape(m * size, -1)
                left, frequency, (row, bit, _) = prior.symbols(rows, z[start:stop].reshape(-1))
                bits += prior.symbol_bits(frequency, (row, bit, None), m * size).reshape(m, size).sum(axis=1)
                lefts.append(left.reshape(m, size))
                frequencies.append(frequency.reshape(m, size))
                escapes += zip((start + row // size).tolist(), (offset + row % size).tolist(), bit.tolist())
                offset += size
            return np.concatenate(lefts, axis=1), np.concatenate(frequencies, axis=1), escapes, bits

        blocks = [(start, min(start + SYMBOL_BLOCK, n)) for start in range(0, n, SYMBOL_BLOCK)]
        with ThreadPoolExecutor(max(1, torch.get_num_threads())) as pool:
            results = list(pool.map(lambda block: symbols(*block), blocks))
        left = np.concatenate([r[0] for r in results])
        frequency = np.concatenate([r[1] for r in results])
        lengths = np.concatenate([r[3] for r in results])
        escaping = {}  # element -> {tile: [escape bits in code order]}
        for _, _, escapes, _ in results:
            for tile, element, bit in escapes:
                escaping.setdefault(element, {}).setdefault(tile, []).append(bit)
        encoder = BatchAnsEncoder(n, capacity=count // 2)
        for e in range(count - 1, -1, -1):  # reverse of the decoding order
            if e in escaping:
                self._push_escapes(encoder, n, escaping[e])
            encoder.push(left[:, e], frequency[:, e])
        return encoder.streams(), lengths

    @staticmethod
    def _push_escapes(encoder: BatchAnsEncoder, n: int, tiles_bits: dict[int, list[int]]) -> None:
        """Push the escape bits of one element for the tiles that have them (last bit first)."""
        longest = max(len(bits) for bits in tiles_bits.values())
        for position in range(longest - 1, -1, -1):
            active = np.zeros(n, dtype=bool)
            bits = np.zeros(n, dtype=np.int64)
            for tile, tile_bits in tiles_bits.items():
                if position < len(tile_bits):
                    active[tile] = True
                    bits[tile] = tile_bits[position]
            encoder.push_binary(bits, np.full(n, HALF), active)

    def _decode_tiles(self, streams: list[np.ndarray]) -> list:
        cfg = self.config
        n = len(streams)
        decoder = BatchAnsDecoder(streams)

        def decode_level(prior: ExactLatentPrior, params: np.ndarray, shape: tuple[int, int, int]) -> np.ndarray:
            """Latents [n, c, h, w] under prior parameters ``params`` [n, c*3K, h, w]."""
            c, h, w = shape
            per_channel = params.reshape(n, c, -1, h * w)
            # Element-major tables, built in blocks of positions in parallel threads before
            # the sequential loop (numpy releases the GIL; small blocks stay in cache).
            blocks = [(channel, start, min(start + PREPARE_BLOCK, h * w))
                      for channel in range(c) for start in range(0, h * w, PREPARE_BLOCK)]

            def prepare(block):
                channel, start, stop = block
                rows = per_channel[:, channel, :, start:stop].transpose(2, 0, 1).reshape((stop - start) * n, -1)
                return prior.prepare(rows)

            with ThreadPoolExecutor(max(1, torch.get_num_threads())) as pool:
                tables = list(pool.map(prepare, blocks))
            z = np.zeros((n, c, h * w), dtype=np.int64)
            for (channel, start, stop), table in zip(blocks, tables):
                for j in range(stop - start):
                    z[:, channel, start + j] = prior.decode_symbols(table, slice(j * n, (j + 1) * n), decoder)
            return z.reshape(n, c, h, w)

        channels = cfg.level_channels()
        side = TILE // cfg.multiple
        try:
            x = decode_level(self.latent_priors[0], np.broadcast_to(self.top_params[None], (n,) + self.top_params.shape),
                             (channels[-1], side, side))
            for level in range(cfg.levels - 1, -1, -1):
                c = x.shape[1]
                for k in range(cfg.couplings - 1, -1, -1):
                    x = x[:, ::-1]
                    a, b = x[:, : c // 2], x[:, c // 2 :]
                    b = b - self._translation(self.couplings[level * cfg.couplings + k], np.ascontiguousarray(a))
                    x = np.concatenate([a, b], axis=1)
                x = unsqueeze(torch.from_numpy(np.ascontiguousarray(x))).numpy()
                if level > 0:
                    below = channels[level - 1]
                    params = self._prior_params(self.priors[level - 1], x)
                    z = decode_level(self.latent_priors[cfg.levels - level], params, (below // 2, x.shape[2], x.shape[3]))
                    x = np.concatenate([x, z], axis=1)
        except (ValueError, CodingError):
            return [None] * n
        ok = (decoder.remaining_words() == 0) & decoder.exhausted()
        pixels = x.transpose(0, 2, 3, 1) + 128
        ok &= np.all((pixels >= 0) & (pixels <= 255), axis=(1, 2, 3))
        return [pixels[i].astype(np.uint8) if ok[i] else None for i in range(n)]

