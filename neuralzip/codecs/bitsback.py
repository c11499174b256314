"""Bits-back ANS codec for the hierarchical VAE (BB-ANS with Bit-Swap's interleaving).

A codec is a push/pop pair on one ANS stack (:class:`~neuralzip.coding.AnsStack`):

* latents: ``pop`` samples them from the stack with an exact discretized-logistic table (the
  bits come back), ``push`` codes them; both use
  :class:`~neuralzip.exact.latent.ExactLatentPrior` (windowed, with escapes);
* pixels: :class:`~neuralzip.exact.mixture.ExactMixture` (channel by channel, 8 binary
  decisions each).

Pushing one image (Bit-Swap order, so that only the first pop needs initial bits)::

    pop z1 ~ q(z1|x);  push x ~ p(x|z1)
    pop z2 ~ q(z2|z1); push z1 ~ p(z1|z2)
    pop z3 ~ q(z3|z2); push z2 ~ p(z2|z3)
    push z3 ~ p(z3)

and popping it runs the exact reverse. Every network is an integer
:class:`~neuralzip.exact.network.ExactNetwork`, so the decoder recomputes the encoder's
tables bit for bit.

Archives chain all their images (as 32x32 tiles) through ANS stacks, the layout, seed and
payload of :mod:`~neuralzip.codecs.chains` (``C = 1`` below 2,000 tiles, then one chain per
1,000 tiles, at most 8).
"""

from __future__ import annotations

import numpy as np
import torch

from ..coding import AnsStack, CodingError
from ..distributions import MixtureLayout
from ..exact.fixedpoint import ACT_FRAC, ACT_LIMIT, ACT_ONE, to_fixed
from ..exact.latent import ExactLatentPrior
from ..exact.mixture import ExactMixture, pixel_to_input
from ..exact.network import ExactNetwork, tensors_hash
from ..images import PixelImage
from ..nets.vae import LATENT_LOG_SCALE_MIN, HierarchicalVAE, VAEConfig
from .base import Codec, Encoded, ImageShape, PayloadError, UnsupportedImageError
from .chains import chain_bounds, chain_count, chain_payload, check_ended_at_seed, longest, parse_chain_payload, seed
from .tiles import pad_tile, tile_grid

TILE = 32
MAX_CHAINS, TILES_PER_CHAIN = 8, 1000
LOG_SCALE_MIN_INT = int(to_fixed(LATENT_LOG_SCALE_MIN, ACT_FRAC))


class BitsBackCodec(Codec):
    name, codec_id, kind, chained = "vae", 48, "neural", True
    description = "hierarchical VAE, bits-back ANS (Bit-Swap order), exact integer inference"

    def __init__(self, config: VAEConfig, posteriors: list[ExactNetwork], priors: list[ExactNetwork],
                 top_params: np.ndarray, model_hash: bytes, card: dict | None = None):
        self.config = config
        self.posteriors = posteriors
        self.priors = priors
        self.top_params = np.asarray(top_params, dtype=np.int64)  # [2C, h, w]
        self._hash = model_hash
        self.card = card or {}
        self.latent = ExactLatentPrior(1, config.window_bits)
        self.pixels = ExactMixture(MixtureLayout(3, config.mixtures))

    @property
    def model_hash(self) -> bytes:
        return self._hash

    # ---- construction ----------------------------------------------------------------------
    @classmethod
    def from_float(cls, model: HierarchicalVAE) -> "BitsBackCodec":
        posteriors = [ExactNetwork.from_float(n.graph, n.folded_weights()) for n in model.posteriors]
        priors = [ExactNetwork.from_float(n.graph, n.folded_weights()) for n in model.priors]
        top = to_fixed(model.top_prior.detach().double().numpy()[0], ACT_FRAC)
        codec = cls(model.config, posteriors, priors, top, b"")
        codec._hash = tensors_hash(codec.integer_tensors())
        return codec

    @classmethod
    def from_shipped(cls, shipped) -> "BitsBackCodec":
        config = VAEConfig.from_dict(shipped.card["config"])
        reference = HierarchicalVAE(config)  # only for the graphs
        posteriors = [ExactNetwork.from_tensors(n.graph, shipped.tensors, f"exact.posterior{l}.")
                      for l, n in enumerate(reference.posteriors)]
        priors = [ExactNetwork.from_tensors(n.graph, shipped.tensors, f"exact.prior{l}.") for l, n in enumerate(reference.priors)]
        return cls(config, posteriors, priors, shipped.tensors["exact.top"].numpy(), shipped.model_hash, shipped.card)

    def integer_tensors(self) -> dict[str, torch.Tensor]:
        out = {"exact.top": torch.from_numpy(self.top_params.astype(np.int64))}
        for prefix, networks in (("posterior", self.posteriors), ("prior", self.priors)):
            for level, network in enumerate(networks):
                out.update(network.tensors(f"exact.{prefix}{level}."))
        return out

    # ---- interface -------------------------------------------------------------------------
    def check(self, image: PixelImage) -> None:
        if image.mode != "RGB" or image.pixels.dtype != np.uint8:
            raise UnsupportedImageError(f"vae codes RGB images with 8-bit samples, not {image.mode}")

    def chains(self, tiles: int) -> int:
        """How many chains the encoder splits ``tiles`` tiles into (see the module notes)."""
        return chain_count(tiles, TILES_PER_CHAIN, MAX_CHAINS)

    def encode(self, images: list[PixelImage]) -> Encoded:
        """One payload coding all ``images`` (as tiles) through the chains' ANS stacks."""
        for image in images:
            self.check(image)
        tiles, owners = self._tiles(images)
        bounds = chain_bounds(len(tiles), self.chains(len(tiles)))
        stacks = [AnsStack(seed()) for _ in bounds[:-1]]
        bits = np.zeros(len(images))
        for step in range(longest(bounds) - 1, -1, -1):  # last first
            active = [j for j in range(len(stacks)) if bounds[j] + step < bounds[j + 1]]
            if not active:
                continue
            before = [stacks[j].num_bits() for j in active]
            self._push_tiles([stacks[j] for j in active], np.stack([tiles[bounds[j] + step] for j in active]))
            for j, start in zip(active, before):
                bits[owners[bounds[j] + step]] += stacks[j].num_bits() - start
        return Encoded([chain_payload([stack.words() for stack in stacks])], list(bits))

    def decode(self, payloads: list[bytes], shapes: list[ImageShape]) -> list[PixelImage]:
        if len(payloads) != 1:
            raise PayloadError("a vae archive has exactly one shared payload")
        grids = []
        for shape in shapes:
            if shape.mode != "RGB":
                raise PayloadError(f"vae payload for an image of mode {shape.mode}")
            grids.append(tile_grid(shape.height, shape.width, TILE))
        total = sum(len(grid) for grid in grids)
        words = parse_chain_payload(payloads[0], min(MAX_CHAINS, total), "vae")
        try:
            stacks = [AnsStack(w) for w in words]
        except CodingError as error:
            raise PayloadError(f"vae payload is corrupt ({error})") from None
        bounds = chain_bounds(total, len(stacks))
        tiles: list = [None] * total
        try:
            for step in range(longest(bounds)):
                active = [j for j in range(len(stacks)) if bounds[j] + step < bounds[j + 1]]
                for j, tile in zip(active, self._pop_tiles([stacks[j] for j in active])):
                    tiles[bounds[j] + step] = tile
        except (ValueError, CodingError) as error:
            raise PayloadError(f"vae payload is corrupt ({error})") from None
        check_ended_at_seed([stack.words() for stack in stacks], "vae")
        return untile(tiles, shapes, grids)

    def _tiles(self, images: list[PixelImage]) -> tuple[list[np.ndarray], list[int]]:
        return tiles_of(images)

    # ---- networks --------------------------------------------------------------------------
    def _run(self, network: ExactNetwork, x: np.ndarray) -> np.ndarray:
        """Integer network input [B, C, h, w] (fixed point) -> output [B, C', h', w'] (ints)."""
        b, c, h, w = x.shape
        inputs = np.ascontiguousarray(x.reshape(b, c, h * w).transpose(0, 2, 1)).astype(np.float64)
        out = network.run({"x": torch.from_numpy(inputs)}, h, w, chunk=b).numpy().astype(np.int64)
        side = int(round(out.shape[1] ** 0.5))
        return out.transpose(0, 2, 1).reshape(b, -1, side, side)

    def _latent_input(self, z: np.ndarray) -> np.ndarray:
        return np.clip(z * (1 << (ACT_FRAC - self.config.bin_bits)), -ACT_LIMIT, ACT_LIMIT)

    def _pixel_input(self, tiles: np.ndarray) -> np.ndarray:
        """[B, 32, 32, 3] pixels -> [B, 4, 32, 32] network input (a channel of ones last)."""
        x = pixel_to_input(tiles).transpose(0, 3, 1, 2)
        return np.concatenate([x, np.full((len(x), 1) + x.shape[2:], ACT_ONE)], axis=1)

    # ---- push / pop ------------------------------------------------------------------------
    # Rows of every table are chain-major: chain j owns rows [j * per, (j + 1) * per).
    @staticmethod
    def _pop_each(stacks: list[AnsStack], frequencies: np.ndarray, active: np.ndarray | None) -> np.ndarray:
        """One binary decision per row, each chain's rows popped from its own stack."""
        per = len(frequencies) // len(stacks)
        return np.concatenate([stack.pop_binary(frequencies[j * per : (j + 1) * per],
                                                None if active is None else active[j * per : (j + 1) * per])
                               for j, stack in enumerate(stacks)])

    def _pop_latent(self, stacks: list[AnsStack], params: np.ndarray) -> np.ndarray:
        z = self.latent.decode(latent_rows(params), lambda f, active: self._pop_each(stacks, f, active))
        return z.reshape(params.shape[0], params.shape[1] // 2, *params.shape[2:])

    def _push_latent(self, stacks: list[AnsStack], params: np.ndarray, z: np.ndarray) -> None:
        element, bits, freqs = self.latent.decisions(latent_rows(params), z.reshape(-1))
        per = z[0].size
        bounds = np.searchsorted(element, np.arange(len(stacks) + 1) * per)
        for j, stack in enumerate(stacks):
            mine = slice(bounds[j], bounds[j + 1])
            b, f = self.latent.pop_order(element[mine] - j * per, bits[mine], freqs[mine])
            stack.push_binary(b, f)

    def _push_pixels(self, stacks: list[AnsStack], head: np.ndarray, tiles: np.ndarray) -> None:
        n, k = head.shape[0], head.shape[1]
        rows = head.reshape(n, k, -1).transpose(0, 2, 1).reshape(-1, k)
        bits, freqs = self.pixels.decisions(rows, tiles.reshape(-1, 3))
        per = tiles[0].size // 3
        for j, stack in enumerate(stacks):
            mine = slice(j * per, (j + 1) * per)
            stack.push_binary(bits[mine].transpose(1, 2, 0).reshape(-1), freqs[mine].transpose(1, 2, 0).reshape(-1))

    def _pop_pixels(self, stacks: list[AnsStack], head: np.ndarray) -> np.ndarray:
        n, k, h, w = head.shape
        rows = head.reshape(n, k, -1).transpose(0, 2, 1).reshape(-1, k)
        values = self.pixels.decode_pixel(rows, lambda f: self._pop_each(stacks, f, None))
        return values.reshape(n, h, w, 3)

    def _push_tiles(self, stacks: list[AnsStack], tiles: np.ndarray) -> None:
        """Push one tile per chain (``tiles`` [B, 32, 32, 3], B = len(stacks))."""
        levels = self.config.levels
        below_input = self._pixel_input(tiles)
        zs = []
        for level in range(levels):
            z = self._pop_latent(stacks, self._run(self.posteriors[level], below_input))
            if level == 0:
                self._push_pixels(stacks, self._run(self.priors[0], self._latent_input(z)), tiles)
            else:
                self._push_latent(stacks, self._run(self.priors[level], self._latent_input(z)), zs[-1])
            zs.append(z)
            below_input = self._latent_input(z)
        self._push_latent(stacks, np.broadcast_to(self.top_params[None], (len(stacks),) + self.top_params.shape), zs[-1])

    def _pop_tiles(self, stacks: list[AnsStack]) -> np.ndarray:
        """Pop one tile per chain: [B, 32, 32, 3]."""
        levels = self.config.levels
        z = self._pop_latent(stacks, np.broadcast_to(self.top_params[None], (len(stacks),) + self.top_params.shape))
        for level in range(levels - 1, 0, -1):
            below = self._pop_latent(stacks, self._run(self.priors[level], self._latent_input(z)))
            self._push_latent(stacks, self._run(self.posteriors[level], self._latent_input(below)), z)
            z = below
        tiles = self._pop_pixels(stacks, self._run(self.priors[0], self._latent_input(z)))
        self._push_latent(stacks, self._run(self.posteriors[0], self._pixel_input(tiles)), z)
        return tiles



def latent_rows(params: np.ndarray) -> np.ndarray:
    """[B, 2C, h, w] latent parameters (fixed point, the layout of
    :func:`~neuralzip.nets.vae.latent_params`) -> ExactLatentPrior rows [B*C*h*w, 3],
    image-major then channel then position: (0, mean, log scale floored at one bin)."""
    b, c2, h, w = params.shape
    p = params.reshape(b, c2 // 2, 2, h * w)
    mean = p[:, :, 0].reshape(-1)
    log_scale = np.maximum(p[:, :, 1].reshape(-1), LOG_SCALE_MIN_INT)
    return np.stack([np.zeros_like(mean), mean, log_scale], axis=1)


def tiles_of(images: list[PixelImage]) -> tuple[list[np.ndarray], list[int]]:
    """Every image's 32x32 tiles in order (edge tiles padded) and the image each came from."""
    tiles, owners = [], []
    for index, image in enumerate(images):
        for top, left, h, w in tile_grid(image.height, image.width, TILE):
            tiles.append(pad_tile(image.pixels[top : top + h, left : left + w], TILE))
            owners.append(index)
    return tiles, owners


def untile(tiles: list[np.ndarray], shapes: list[ImageShape], grids: list) -> list[PixelImage]:
    """RGB images from their 32x32 tiles in order (padding dropped)."""
    images, index = [], 0
    for shape, grid in zip(shapes, grids):
        pixels = np.zeros((shape.height, shape.width, 3), dtype=np.uint8)
        for top, left, h, w in grid:
            pixels[top : top + h, left : left + w] = tiles[index][:h, :w]
            index += 1
        images.append(PixelImage("RGB", pixels))
    return images
