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

Archives chain all their images (as 32x32 tiles) through the one stack: the encoder pushes
the last tile first, so the decoder pops them in order. The stack starts from
``SEED_WORDS`` pseudo-random words (seed ``SEED``) known to both sides; the bottom words the
coding never touched are stripped from the payload and the decoder restores them, so the
only overhead is the unavoidable one (the first tile's latents are paid in full), and at the
end the decoder checks that it is left with exactly the seed.

Payload: varint count of stripped seed words, then the stack (stream bytes).
"""

from __future__ import annotations

import numpy as np
import torch

from ..coding import AnsStack, CodingError, bytes_to_stream, seed_words, stream_to_bytes
from ..distributions import MixtureLayout
from ..exact.fixedpoint import ACT_FRAC, ACT_LIMIT, ACT_ONE, to_fixed
from ..exact.latent import ExactLatentPrior
from ..exact.mixture import ExactMixture, pixel_to_input
from ..container import varint
from ..exact.network import ExactNetwork, tensors_hash
from ..images import PixelImage
from ..nets.vae import LATENT_LOG_SCALE_MIN, HierarchicalVAE, VAEConfig
from .base import Codec, Encoded, ImageShape, PayloadError, UnsupportedImageError
from .tiles import pad_tile, read_varint, tile_grid

TILE = 32
SEED, SEED_WORDS = 0x5EED, 4096
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

    def encode(self, images: list[PixelImage]) -> Encoded:
        """One payload chaining all ``images`` (as tiles) through one ANS stack."""
        for image in images:
            self.check(image)
        tiles, owners = self._tiles(images)
        stack = AnsStack(seed_words(SEED_WORDS, SEED))
        bits = np.zeros(len(images))
        for index in range(len(tiles) - 1, -1, -1):  # last first: the decoder pops in order
            before = stack.num_bits()
            self._push_tile(stack, tiles[index])
            bits[owners[index]] += stack.num_bits() - before
        words = stack.words()
        seed = seed_words(SEED_WORDS, SEED)
        kept = 0
        while kept < min(len(words), len(seed)) and words[kept] == seed[kept]:
            kept += 1
        kept = min(kept, len(words) - 1) if len(words) else 0
        payload = varint(kept) + stream_to_bytes(words[kept:])
        return Encoded([payload], list(bits))

    def decode(self, payloads: list[bytes], shapes: list[ImageShape]) -> list[PixelImage]:
        if len(payloads) != 1:
            raise PayloadError("a vae archive has exactly one shared payload")
        payload = payloads[0]
        kept, pos = read_varint(payload, 0, "seed length")
        if kept > SEED_WORDS:
            raise PayloadError("vae payload is corrupt (seed length)")
        try:
            words = np.concatenate([seed_words(SEED_WORDS, SEED)[:kept], bytes_to_stream(payload[pos:])])
            stack = AnsStack(words)
        except CodingError as error:
            raise PayloadError(f"vae payload is corrupt ({error})") from None
        images = []
        try:
            for shape in shapes:
                if shape.mode != "RGB":
                    raise PayloadError(f"vae payload for an image of mode {shape.mode}")
                pixels = np.zeros((shape.height, shape.width, 3), dtype=np.uint8)
                for top, left, h, w in tile_grid(shape.height, shape.width, TILE):
                    pixels[top : top + h, left : left + w] = self._pop_tile(stack)[:h, :w]
                images.append(PixelImage("RGB", pixels))
        except (ValueError, CodingError) as error:
            raise PayloadError(f"vae payload is corrupt ({error})") from None
        if not np.array_equal(stack.words(), seed_words(SEED_WORDS, SEED)):
            raise PayloadError("vae payload is corrupt (the stack does not end at its seed)")
        return images

    def _tiles(self, images: list[PixelImage]) -> tuple[list[np.ndarray], list[int]]:
        tiles, owners = [], []
        for index, image in enumerate(images):
            for top, left, h, w in tile_grid(image.height, image.width, TILE):
                tiles.append(pad_tile(image.pixels[top : top + h, left : left + w], TILE))
                owners.append(index)
        return tiles, owners

    # ---- networks --------------------------------------------------------------------------
    def _run(self, network: ExactNetwork, x: np.ndarray) -> np.ndarray:
        """Integer network input [C, h, w] (fixed point) -> output [C', h', w'] (ints)."""
        c, h, w = x.shape
        out = network.run({"x": torch.from_numpy(np.ascontiguousarray(x.reshape(c, h * w).T[None]).astype(np.float64))}, h, w, chunk=1)
        side = int(round((out.shape[1]) ** 0.5))
        return out[0].numpy().astype(np.int64).T.reshape(-1, side, side)

    def _latent_input(self, z: np.ndarray) -> np.ndarray:
        return np.clip(z * (1 << (ACT_FRAC - self.config.bin_bits)), -ACT_LIMIT, ACT_LIMIT)

    def _pixel_input(self, tile: np.ndarray) -> np.ndarray:
        x = pixel_to_input(tile).transpose(2, 0, 1)
        return np.concatenate([x, np.full((1,) + x.shape[1:], ACT_ONE)], axis=0)

    def _rows(self, params: np.ndarray) -> np.ndarray:
        """[2C, h, w] latent parameters -> ExactLatentPrior rows [C*h*w, 3]: (0, mean, log scale)."""
        c2, h, w = params.shape
        p = params.reshape(c2 // 2, 2, h * w)
        mean = p[:, 0].reshape(-1)
        log_scale = np.maximum(p[:, 1].reshape(-1), LOG_SCALE_MIN_INT)
        return np.stack([np.zeros_like(mean), mean, log_scale], axis=1)

    # ---- push / pop ------------------------------------------------------------------------
    def _pop_latent(self, stack: AnsStack, params: np.ndarray) -> np.ndarray:
        rows = self._rows(params)
        z = self.latent.decode(rows, lambda f, active: stack.pop_binary(f, active))
        return z.reshape(params.shape[0] // 2, *params.shape[1:])

    def _push_latent(self, stack: AnsStack, params: np.ndarray, z: np.ndarray) -> None:
        element, bits, freqs = self.latent.decisions(self._rows(params), z.reshape(-1))
        bits, freqs = self.latent.pop_order(element, bits, freqs)
        stack.push_binary(bits, freqs)

    def _push_pixels(self, stack: AnsStack, head: np.ndarray, tile: np.ndarray) -> None:
        rows = head.reshape(head.shape[0], -1).T
        bits, freqs = self.pixels.decisions(rows, tile.reshape(-1, 3))
        stack.push_binary(bits.transpose(1, 2, 0).reshape(-1), freqs.transpose(1, 2, 0).reshape(-1))

    def _pop_pixels(self, stack: AnsStack, head: np.ndarray) -> np.ndarray:
        rows = head.reshape(head.shape[0], -1).T
        values = self.pixels.decode_pixel(rows, lambda f: stack.pop_binary(f))
        return values.reshape(head.shape[1], head.shape[2], 3)

    def _push_tile(self, stack: AnsStack, tile: np.ndarray) -> None:
        levels = self.config.levels
        below_input = self._pixel_input(tile)
        zs = []
        for level in range(levels):
            z = self._pop_latent(stack, self._run(self.posteriors[level], below_input))
            if level == 0:
                self._push_pixels(stack, self._run(self.priors[0], self._latent_input(z)), tile)
            else:
                self._push_latent(stack, self._run(self.priors[level], self._latent_input(z)), zs[-1])
            zs.append(z)
            below_input = self._latent_input(z)
        self._push_latent(stack, self.top_params, zs[-1])

    def _pop_tile(self, stack: AnsStack) -> np.ndarray:
        levels = self.config.levels
        z = self._pop_latent(stack, self.top_params)
        for level in range(levels - 1, 0, -1):
            below = self._pop_latent(stack, self._run(self.priors[level], self._latent_input(z)))
            self._push_latent(stack, self._run(self.posteriors[level], self._latent_input(below)), z)
            z = below
        tile = self._pop_pixels(stack, self._run(self.priors[0], self._latent_input(z)))
        self._push_latent(stack, self._run(self.posteriors[0], self._pixel_input(tile)), z)
        return tile

