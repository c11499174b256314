"""Bits-back ANS codec for the local-VAE (:mod:`neuralzip.nets.local_vae`): a latent for an
image's global structure, the local autoregressive model for its detail.

Images are coded as 32x32 tiles, chained through ANS stacks as every bits-back codec's
(:mod:`~neuralzip.codecs.chains`); all chains live in one
:class:`~neuralzip.coding.BatchAnsStack` (one stack each) and step together, one tile of
each chain at a time. Pushing a tile (BB-ANS)::

    pop z ~ q(z|x)        latents one by one, each one symbol of the exact logistic
                          window with its escape (ExactLatentPrior), q from the exact posterior
    push x ~ p(x|z)       every sub-pixel one symbol, in the reverse of the local codec's
                          wavefront pop order (one pass of the exact decoder network)
    push z ~ p(z)         the learned prior

and popping it is the exact reverse: pop z with p(z), pop x along the wavefront (the local
codec's decoder, conditioned on z's features), push z with q(z|x) to give the bits back.
The decoder computes every table from the same integers as the encoder, on any batch size,
chain count or thread count. A single image pays its first latents' initial bits (they are
popped from the seed), an archive once per chain.

Payload: :func:`~neuralzip.codecs.chains.chain_payload` (the layout of the old VAE codec).
"""

from __future__ import annotations

import numpy as np

from ..coding import BatchAnsStack, CodingError, TOTAL
from ..exact.latent import ExactLatentPrior, HALF
from ..exact.local_vae import ExactLocalVAE
from ..images import PixelImage
from ..nets.local_vae import LocalVAEConfig
from ..exact.network import tensors_hash
from .base import Codec, Encoded, ImageShape, PayloadError, UnsupportedImageError
from .chains import chain_bounds, chain_count, chain_payload, parse_chain_payload, seed
from .bitsback import latent_rows, tiles_of, untile
from .local import LocalCodec
from .tiles import tile_grid

TILE = 32
MAX_CHAINS, TILES_PER_CHAIN = 64, 300
SEPARATE_BATCH = 1000  # single-image files coded or decoded side by side
TABULATED_CHAINS = 4  # up to this many chains pop latents from whole tables (8 KiB per latent)


class StreamView:
    """Some streams of a :class:`~neuralzip.coding.BatchAnsStack` seen as a decoder with
    one stream each (what :meth:`ExactLatentPrior.decode_symbols` pops from)."""

    def __init__(self, stack: BatchAnsStack, streams: np.ndarray):
        self.stack, self.streams = stack, np.asarray(streams, dtype=np.int64)

    def quantiles(self) -> np.ndarray:
        return self.stack.quantiles(self.streams)

    def advance(self, left: np.ndarray, frequency: np.ndarray, active: np.ndarray | None = None) -> None:
        rows = slice(None) if active is None else np.asarray(active, dtype=bool)
        self.stack.advance_streams(self.streams[rows], np.asarray(left)[rows], np.asarray(frequency)[rows])

    def decode_binary(self, left_frequency: np.ndarray, active: np.ndarray | None = None) -> np.ndarray:
        f = np.asarray(left_frequency, dtype=np.int64)
        bit = (self.quantiles() >= f).astype(np.int64)
        self.advance(np.where(bit == 1, f, 0), np.where(bit == 1, TOTAL - f, f), active)
        return bit if active is None else np.where(active, bit, 0)


class LocalVAECodec(Codec):
    name, codec_id, kind, chained = "vae", 48, "neural", True
    description = "VAE with a local autoregressive decoder, bits-back ANS, exact integer inference"

    def __init__(self, config: LocalVAEConfig, networks: ExactLocalVAE, model_hash: bytes, card: dict | None = None):
        self.config = config
        self.networks = networks
        self._hash = model_hash
        self.card = card or {}
        self.latent = ExactLatentPrior(1, config.window_bits)
        # the pixels: the local codec's exact network, tables and wavefront decoder
        self.pixels = LocalCodec(config.decoder_config(), networks.decoder, model_hash)

    @property
    def model_hash(self) -> bytes:
        return self._hash

    # ---- construction ----------------------------------------------------------------------
    @classmethod
    def from_float(cls, model, calibration: np.ndarray) -> "LocalVAECodec":
        """Quantise a float LocalVAE (activation scales from ``calibration`` images)."""
        import torch

        from ..exact.local_vae import quantize_vae

        networks = quantize_vae(model, calibration)
        tensors = {k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in networks.tensors().items()}
        return cls(model.config, networks, tensors_hash(tensors))

    @classmethod
    def from_shipped(cls, shipped) -> "LocalVAECodec":
        config = LocalVAEConfig.from_dict(shipped.card["config"])
        return cls(config, ExactLocalVAE.from_tensors(config, shipped.tensors), shipped.model_hash, shipped.card)

    def integer_tensors(self) -> dict[str, np.ndarray]:
        return self.networks.tensors()

    # ---- interface -------------------------------------------------------------------------
    def check(self, image: PixelImage) -> None:
        if image.mode != "RGB" or image.pixels.dtype != np.uint8:
            raise UnsupportedImageError(f"vae codes RGB images with 8-bit samples, not {image.mode}")

    def chains(self, tiles: int) -> int:
        return chain_count(tiles, TILES_PER_CHAIN, MAX_CHAINS)

    def encode(self, images: list[PixelImage]) -> Encoded:
        """One payload coding all ``images`` (as tiles) through the chains' stacks."""
        tiles, owners = self._tiles(images)
        bounds = chain_bounds(len(tiles), self.chains(len(tiles)))
        chains = [list(range(a, b)) for a, b in zip(bounds[:-1], bounds[1:])]
        words, tile_bits = self._push_chains([[tiles[k] for k in chain] for chain in chains])
        bits = np.zeros(len(images))
        for chain, chain_bits in zip(chains, tile_bits):
            for k, b in zip(chain, chain_bits):
                bits[owners[k]] += b
        return Encoded([chain_payload(words)], list(bits))

    def encode_separately(self, images: list[PixelImage]) -> Encoded:
        """One payload per image, each a chain of its own (what ``encode([image])`` gives
        each), the chains of up to ``SEPARATE_BATCH`` images coded side by side."""
        payloads, bits = [], []
        for start in range(0, len(images), SEPARATE_BATCH):
            chains, owner = [], []
            for i, image in enumerate(images[start : start + SEPARATE_BATCH]):
                tiles, _ = self._tiles([image])
                bounds = chain_bounds(len(tiles), self.chains(len(tiles)))  # as encode([image]) splits it
                chains += [tiles[a:b] for a, b in zip(bounds[:-1], bounds[1:])]
                owner += [i] * (len(bounds) - 1)
            words, tile_bits = self._push_chains(chains)
            for i in range(owner[-1] + 1 if owner else 0):
                mine = [j for j, o in enumerate(owner) if o == i]
                payloads.append(chain_payload([words[j] for j in mine]))
                bits.append(float(sum(sum(tile_bits[j]) for j in mine)))
        return Encoded(payloads, bits)

    def decode(self, payloads: list[bytes], shapes: list[ImageShape]) -> list[PixelImage]:
        if len(payloads) != 1:
            raise PayloadError("a vae archive has exactly one shared payload")
        grids = self._grids(shapes)
        total = sum(len(grid) for grid in grids)
        words = parse_chain_payload(payloads[0], min(MAX_CHAINS, total), "vae")
        bounds = chain_bounds(total, len(words))
        chains, ended = self._pop_chains(words, [b - a for a, b in zip(bounds[:-1], bounds[1:])])
        if not all(ended):
            raise PayloadError("vae payload is corrupt (a stack does not end at its seed)")
        return untile([tile for chain in chains for tile in chain], shapes, grids)

    def decode_separately(self, payloads: list[bytes], shapes: list[ImageShape]) -> list[PixelImage]:
        """Images of single-image payloads (:meth:`encode_separately`), decoded side by
        side; the first damaged one raises its :class:`PayloadError`."""
        results = self.decode_each(payloads, shapes)
        for result in results:
            if isinstance(result, PayloadError):
                raise result
        return results

    def decode_each(self, payloads: list[bytes], shapes: list[ImageShape]) -> list:
        """Like :meth:`decode_separately`, but a damaged payload only fails its own image:
        per image, the image or the :class:`PayloadError` that stopped it."""
        results: list = [None] * len(payloads)
        for start in range(0, len(payloads), SEPARATE_BATCH):
            members, words, lengths, owner = [], [], [], []
            for i in range(start, min(len(payloads), start + SEPARATE_BATCH)):
                try:
                    (grid,) = self._grids([shapes[i]])
                    mine = parse_chain_payload(payloads[i], min(MAX_CHAINS, len(grid)), "vae")
                except PayloadError as error:
                    results[i] = error
                    continue
                bounds = chain_bounds(len(grid), len(mine))
                members.append(i)
                words += mine
                lengths += [b - a for a, b in zip(bounds[:-1], bounds[1:])]
                owner += [i] * len(mine)
            if not members:
                continue
            try:
                chains, ended = self._pop_chains(words, lengths)
            except PayloadError:  # a damaged stream stopped the batch: find out which, one by one
                for i in members:
                    try:
                        results[i] = self.decode([payloads[i]], [shapes[i]])[0]
                    except PayloadError as error:
                        results[i] = error
                continue
            for i in members:
                mine = [j for j, o in enumerate(owner) if o == i]
                if not all(ended[j] for j in mine):
                    results[i] = PayloadError("vae payload is corrupt (a stack does not end at its seed)")
                else:
                    results[i] = untile([t for j in mine for t in chains[j]], [shapes[i]], self._grids([shapes[i]]))[0]
        return results

    def _tiles(self, images: list[PixelImage]) -> tuple[list[np.ndarray], list[int]]:
        for image in images:
            self.check(image)
        return tiles_of(images)

    @staticmethod
    def _grids(shapes: list[ImageShape]) -> list:
        grids = []
        for shape in shapes:
            if shape.mode != "RGB":
                raise PayloadError(f"vae payload for an image of mode {shape.mode}")
            grids.append(tile_grid(shape.height, shape.width, TILE))
        return grids

    def _push_chains(self, chains: list[list[np.ndarray]]) -> tuple[list[np.ndarray], list[list[float]]]:
        """Code each chain's tiles on a stack of its own, all chains stepped together (last
        tile first). Returns each stack's words and each tile's cost in bits."""
        stack = BatchAnsStack([seed() for _ in chains])
        lengths = np.array([len(chain) for chain in chains])
        bits = [[0.0] * len(chain) for chain in chains]
        for step in range(int(lengths.max(initial=0)) - 1, -1, -1):
            active = np.nonzero(lengths > step)[0]
            before = stack.num_bits()[active]
            self._push_tiles(stack, active, np.stack([chains[j][step] for j in active]))
            for j, grown in zip(active, stack.num_bits()[active] - before):
                bits[j][step] = float(grown)
        return stack.streams(), bits

    def _pop_chains(self, words: list[np.ndarray], lengths: list[int]) -> tuple[list[list[np.ndarray]], list[bool]]:
        """Pop ``lengths[j]`` tiles from each chain's stack (``words[j]``), all chains
        stepped together. Returns the tiles and, per chain, whether its stack ended exactly
        at the seed (a chain that did not is damaged)."""
        try:
            stack = BatchAnsStack(words)
        except CodingError as error:
            raise PayloadError(f"vae payload is corrupt ({error})") from None
        lengths = np.asarray(lengths)
        chains: list[list[np.ndarray]] = [[] for _ in words]
        try:
            for step in range(int(lengths.max(initial=0))):
                active = np.nonzero(lengths > step)[0]
                for j, tile in zip(active, self._pop_tiles(stack, active)):
                    chains[j].append(tile)
        except (ValueError, CodingError) as error:
            raise PayloadError(f"vae payload is corrupt ({error})") from None
        start = seed()
        return chains, [np.array_equal(w, start) for w in stack.streams()]

    # ---- latents ---------------------------------------------------------------------------
    def _prior(self, count: int) -> np.ndarray:
        return np.broadcast_to(self.networks.prior[None], (count,) + self.networks.prior.shape)

    def _pop_latents(self, stack: BatchAnsStack, active: np.ndarray, params: np.ndarray) -> np.ndarray:
        """Pop each active chain's latents (one by one, in raster order per channel) under
        ``params`` [A, 2C, h, w]: int64 [A, C, h, w]."""
        a, c2, h, w = params.shape
        per = c2 // 2 * h * w
        prepared = self.latent.prepare(latent_rows(params))
        view = StreamView(stack, active)
        z = np.zeros((a, per), dtype=np.int64)
        chain_rows = np.arange(a, dtype=np.int64) * per
        # Few chains (a photo's single file: one) pop their latents one by one in Python:
        # their whole tables are computed at once and each pop is a lookup, not a search.
        tabulated = self.latent.tabulate(prepared, slice(None)) if a <= TABULATED_CHAINS else None
        for k in range(per):
            rows = chain_rows + k
            z[:, k] = self.latent.decode_symbols(prepared, rows, view,
                                                 tabulated=None if tabulated is None else tabulated[rows])
        return z.reshape(a, c2 // 2, h, w)

    def _push_latents(self, stack: BatchAnsStack, active: np.ndarray, params: np.ndarray, z: np.ndarray) -> None:
        """Push latents so that :meth:`_pop_latents` with the same ``params`` pops them."""
        a = len(active)
        per = z[0].size
        left, frequency, (e_row, e_bits, e_order) = self.latent.symbols(latent_rows(params), z.reshape(-1))
        # each chain's sequence in pop order: latent k's symbol, then its escape bits
        extra = np.bincount(e_row, minlength=a * per)
        slots = 1 + extra
        start = np.concatenate([[0], np.cumsum(slots)[:-1]])
        owner = np.arange(a * per) // per
        chain_start = start[np.arange(a) * per]
        lengths = np.bincount(owner, weights=slots, minlength=a).astype(np.int64)
        seq_left = np.zeros((a, int(lengths.max())), dtype=np.int64)
        seq_freq = np.ones_like(seq_left)
        position = start - chain_start[owner]
        seq_left[owner, position] = left
        seq_freq[owner, position] = frequency
        if len(e_row):
            e_position = start[e_row] - chain_start[e_row // per] + 1 + e_order
            seq_left[e_row // per, e_position] = np.where(e_bits == 1, HALF, 0)
            seq_freq[e_row // per, e_position] = HALF
        stack.push_sequences(active, seq_left, seq_freq, lengths)

    # ---- tiles -----------------------------------------------------------------------------
    def _push_tiles(self, stack: BatchAnsStack, active: np.ndarray, tiles: np.ndarray) -> None:
        """Push one tile per active chain (``tiles`` [A, 32, 32, 3])."""
        posterior = self.networks.posterior_params(tiles)
        z = self._pop_latents(stack, active, posterior)
        left, frequency, lengths, _ = self.pixels.stream_sequences(tiles, self.networks.condition(z))
        stack.push_sequences(active, left, frequency, lengths)  # one stream per 32x32 tile
        self._push_latents(stack, active, self._prior(len(active)), z)

    def _pop_tiles(self, stack: BatchAnsStack, active: np.ndarray) -> np.ndarray:
        """Pop one tile per active chain: [A, 32, 32, 3]."""
        z = self._pop_latents(stack, active, self._prior(len(active)))
        tiles = self.pixels.pop_images(stack, active, TILE, TILE, 3, self.networks.condition(z))
        self._push_latents(stack, active, self.networks.posterior_params(tiles), z)
        return tiles
