"""A VAE whose likelihood is the local autoregressive model (the Variational Lossy
Autoencoder idea, Chen et al. 2017): the latent carries what a small causal neighbourhood
cannot see (an image's layout, colours, objects), the local model the texture and edges.

For a 32x32 image (a tile, as the bits-back codec codes them):

* **latent** z: ``latent_channels`` channels at 1/``factor`` resolution (8x8 by default),
  logistic, discretized for coding into bins of width ``2**-bin_bits`` latent units and
  handled in *bin units* throughout, as in :mod:`neuralzip.nets.vae` (whose latent
  conventions and helpers this model shares);
* **posterior** q(z|x): per latent cell an MLP over the pixels of the cell and its eight
  neighbouring cells (a ``3f x 3f`` convolution of stride ``f``), two 1x1 layers, the mean and
  log-scale of every latent channel;
* **prior** p(z): learned logistic parameters per latent position and channel; with
  ``prior_horizon`` h > 0 these are only its bias, and a small causal network over the
  latent grid adds to them what the latents already known predict (an autoregressive prior:
  latent cells in raster order, each reading the cells of the h rows above within h columns
  either side and the h cells to its left, as the local model reads pixels; the channels of
  one cell are independent given those). A factorized prior makes the latent pay for every
  correlation between its cells; the autoregressive one only for what they do not predict;
* **likelihood** p(x|z): :class:`~neuralzip.nets.local.LocalModel` with ``features``
  conditioning features per pixel: an MLP on the 3x3 latent cells around the pixel's cell
  (a 3x3 convolution on z, a 1x1 layer), repeated over the cell's pixels, entering the local
  model's input layer beside the neighbourhood.

Every matrix product reads 8-bit-able values (pixels, ReLU outputs, latents clipped to
+-255 bins) so that the exact integer path of :mod:`neuralzip.exact.local` applies to all
three networks. Started from a trained local model (:meth:`LocalVAE.load_initial`) the
conditioning columns are zero, so the VAE begins as that model plus the latent's cost, and
training teaches it what the latent is worth.

Posterior collapse: the KL of each latent channel is floored at ``free_nats`` per image
during training (free bits, Kingma et al. 2016), so a channel is never pushed to carry
nothing before the decoder has learnt to read it; the reported ELBO has no floor. Free bits
alone left the latent unread (the decoder, started from a trained local model, never
rewarded the encoder for the free nats). With ``aux_weight`` > 0 training also adds an
*auxiliary decoder* (Lucas & Verbeek 2018): a factorized mixture per pixel from the
conditioning features alone, no neighbourhood, whose NLL (times ``aux_weight``) joins the
loss. Only a latent that describes the image lowers it, so the encoder and conditioner learn
features the local decoder can then read. It is training-only: the ELBO, the exact networks
and the coder never see it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from ..distributions import MixtureLayout, mixture_log_likelihood
from .config import ConfigMixin
from .local import LocalModel, causal_kernel, neighbourhood_kernel_mask
from .neighbourhood import LocalConfig
from .vae import INITIAL_LOG_SCALE, latent_params, logistic_log_density

LATENT_INPUT_LIMIT = 255  # the conditioner reads latents clipped to +-255 bins (8-bit exact path)
AUXILIARY_MIXTURES = 5  # the auxiliary decoder's mixture (training only; small: it only has to pull)


@dataclass(frozen=True)
class LocalVAEConfig(ConfigMixin):
    # the local autoregressive decoder
    horizon: int = 3
    width: int = 256
    blocks: int = 0
    mixtures: int = 10
    # the latent and its networks
    latent_channels: int = 8
    factor: int = 4  # a latent cell is factor x factor pixels
    hidden: int = 128  # width of the posterior's and the conditioner's hidden layers
    features: int = 32  # conditioning features per pixel, read by the decoder's input layer
    bin_bits: int = 5  # latent bins of width 1/32
    window_bits: int = 10
    size: int = 32  # tile side
    free_nats: float = 0.25  # training only: KL floor per latent channel and image
    aux_weight: float = 0.0  # training only: weight of the auxiliary decoder's NLL in the loss
    prior_horizon: int = 0  # 0: factorized prior; h > 0: autoregressive prior of that horizon
    prior_hidden: int = 64  # width of the autoregressive prior's hidden layers
    activation_bits: int = 8  # the exact decoder's activations (LocalConfig.activation_bits)

    def decoder_config(self) -> LocalConfig:
        return LocalConfig(self.horizon, self.width, self.blocks, self.mixtures, 3, condition=self.features,
                           activation_bits=self.activation_bits)

    def layer_names(self) -> list[str]:
        """The decoder's layers (what quantisation-aware training rounds)."""
        return self.decoder_config().layer_names()

    @property
    def latent_side(self) -> int:
        return self.size // self.factor


class LocalVAE(nn.Module):
    """The float model for training: ``nll_nats`` is the negative ELBO in nats per image,
    ``loss_nats`` the training objective (free bits, the auxiliary decoder)."""

    # parameters that only training uses: a checkpoint may lack them (they start fresh) or
    # carry them when the current configuration has none (they are dropped)
    TRAINING_ONLY_PREFIX = "auxiliary."

    def __init__(self, config: LocalVAEConfig, seed: int = 0):
        super().__init__()
        self.config = config
        self.decoder = LocalModel(config.decoder_config(), seed=seed)
        generator = torch.Generator().manual_seed(seed + 1)
        f, c, hidden = config.factor, config.latent_channels, config.hidden
        shapes = {
            "posterior0": (hidden, 4, 3 * f, 3 * f),  # pixels in [-1, 1] and a ones channel
            "posterior1": (hidden, hidden, 1, 1),
            "posterior2": (2 * c, hidden, 1, 1),
            "conditioner0": (hidden, c, 3, 3),
            "conditioner1": (config.features, hidden, 1, 1),
        }
        if config.prior_horizon:
            slots, _, _ = neighbourhood_kernel_mask(config.prior_horizon)
            shapes["prior0"] = (config.prior_hidden, c, 1, len(slots))  # causal neighbours only
            shapes["prior1"] = (config.prior_hidden, config.prior_hidden, 1, 1)
            shapes["prior2"] = (2 * c, config.prior_hidden, 1, 1)
        self.weight = nn.ParameterDict()
        self.bias = nn.ParameterDict()
        for name, shape in shapes.items():
            fan_in = shape[1] * shape[2] * shape[3]
            scale = (2.0 / fan_in) ** 0.5
            if name == "posterior2":
                scale *= 0.1  # the posterior starts near the prior
            if name == "prior2":
                scale = 0.0  # the autoregressive prior starts as the factorized one
            self.weight[name] = nn.Parameter(torch.randn(*shape, generator=generator) * scale)
            self.bias[name] = nn.Parameter(torch.zeros(shape[0]))
        start = INITIAL_LOG_SCALE + (config.bin_bits - 6) * math.log(2)  # ~1 latent unit in bins
        with torch.no_grad():
            self.bias["posterior2"].view(c, 2)[:, 1] = start
        self.auxiliary = nn.ParameterDict()
        if config.aux_weight > 0:
            self.auxiliary_layout = MixtureLayout(3, AUXILIARY_MIXTURES)
            self.auxiliary["weight"] = nn.Parameter(
                torch.randn(self.auxiliary_layout.size, config.features, 1, 1, generator=generator) * (2.0 / config.features) ** 0.5)
            self.auxiliary["bias"] = nn.Parameter(torch.zeros(self.auxiliary_layout.size))
        side = config.latent_side
        prior = torch.zeros(1, c, 2, side, side)
        prior[:, :, 1] = start
        self.prior = nn.Parameter(prior.view(1, 2 * c, side, side))

    # quantisation-aware training rounds the decoder (the trainer sets this)
    @property
    def quantizer(self):
        return self.decoder.quantizer

    @quantizer.setter
    def quantizer(self, value) -> None:
        self.decoder.quantizer = value

    def load_initial(self, state: dict) -> None:
        """Start from a trained local model's parameters (``state``: its state dict): the
        decoder takes them, with zero conditioning columns (the latent starts unread)."""
        own = self.decoder.state_dict()
        for key, value in state.items():
            if key == "weight.input":
                columns = own[key].shape[1] - value.shape[1]
                value = torch.cat([value, value.new_zeros(value.shape[0], columns)], dim=1)
            own[key] = value
        self.decoder.load_state_dict(own)

    def grow_from(self, state: dict) -> None:
        """Start from a trained local-VAE of another configuration whose only missing
        parameters are this one's autoregressive prior network (which starts adding nothing:
        the model begins exactly as the one it grows from)."""
        own = self.state_dict()
        fresh = [key for key in own if key not in state and not key.startswith(self.TRAINING_ONLY_PREFIX)]
        unknown = [key for key in fresh if not key.split(".")[1].startswith("prior")]
        if unknown:
            raise ValueError(f"cannot grow a local-VAE from weights lacking {', '.join(unknown)}")
        own.update({key: value for key, value in state.items() if key in own})
        self.load_state_dict(own)

    # ---- networks --------------------------------------------------------------------------
    def _conv(self, name: str, x: torch.Tensor, stride: int = 1, padding: int = 0) -> torch.Tensor:
        return F.conv2d(x, self.weight[name], self.bias[name], stride=stride, padding=padding)

    def posterior(self, images: torch.Tensor) -> torch.Tensor:
        """q(z|x) parameters [B, 2C, h, w] (layout of :func:`~neuralzip.nets.vae.latent_params`)
        of uint8 images [B, H, W, 3] with H, W multiples of ``factor``."""
        f = self.config.factor
        x = images.permute(0, 3, 1, 2).float() * (2.0 / 255.0) - 1.0
        x = torch.cat([x, torch.ones_like(x[:, :1])], dim=1)  # outside the image: all zero
        a = F.relu(self._conv("posterior0", x, stride=f, padding=f))
        a = F.relu(self._conv("posterior1", a))
        return self._conv("posterior2", a)

    def condition(self, z_bins: torch.Tensor) -> torch.Tensor:
        """Conditioning pre-activations [B, features, H, W] of latents [B, C, h, w] (bins)."""
        z = z_bins.clamp(-LATENT_INPUT_LIMIT, LATENT_INPUT_LIMIT) / (1 << self.config.bin_bits)
        a = F.relu(self._conv("conditioner0", z, padding=1))
        cells = self._conv("conditioner1", a)
        f = self.config.factor
        return cells.repeat_interleave(f, dim=2).repeat_interleave(f, dim=3)

    def prior_params(self, z_bins: torch.Tensor) -> torch.Tensor:
        """p(z) parameters [B, 2C, h, w] (layout of :func:`~neuralzip.nets.vae.latent_params`)
        of latents [B, C, h, w] (bins): each cell's depend only on the cells before it in
        raster order, within the prior's horizon (none with a factorized prior)."""
        base = self.prior.expand(z_bins.shape[0], -1, -1, -1)
        h = self.config.prior_horizon
        if not h:
            return base
        z = z_bins.clamp(-LATENT_INPUT_LIMIT, LATENT_INPUT_LIMIT) / (1 << self.config.bin_bits)
        kernel = causal_kernel(self.weight["prior0"][:, :, 0], h)
        a = F.relu(F.conv2d(F.pad(z, (h, h, h, 0)), kernel, self.bias["prior0"]))  # window ends at the cell's row
        a = F.relu(self._conv("prior1", a))
        return base + self._conv("prior2", a)

    def head(self, images: torch.Tensor) -> torch.Tensor:
        """The decoder's mixture parameters given the posterior means (deterministic: what
        calibration of the 8-bit activations measures)."""
        mean, _ = latent_params(self.posterior(images))
        return self.decoder.head(images, self.condition(mean))

    # ---- objectives ------------------------------------------------------------------------
    def elbo_terms(self, images: torch.Tensor, autocast: bool = False, samples: int = 1, auxiliary: bool = False):
        """Per image (nats), for ``samples`` draws: log p(x|z) [S, B] and the per-channel
        log q(z|x) - log p(z) [S, B, C]; with ``auxiliary`` also the auxiliary decoder's
        log-likelihood [S, B] from the same z."""
        images = images.repeat(samples, 1, 1, 1)
        params = self.posterior(images)
        mean, log_scale = latent_params(params)
        u = torch.rand_like(mean).clamp(1e-6, 1 - 1e-6)
        z = mean + torch.exp(log_scale) * (torch.log(u) - torch.log1p(-u))
        kl = (logistic_log_density(z, params) - logistic_log_density(z, self.prior_params(z))).sum(dim=(2, 3))
        condition = self.condition(z)
        log_px = -self.decoder.nll_nats(images, autocast, condition=condition)
        b = images.shape[0] // samples
        if not auxiliary:
            return log_px.view(samples, b), kl.view(samples, b, -1)
        params = F.conv2d(F.relu(condition), self.auxiliary["weight"], self.auxiliary["bias"])
        x = images.permute(0, 3, 1, 2).float() * (2.0 / 255.0) - 1.0
        log_aux = mixture_log_likelihood(params, x, self.auxiliary_layout).sum(dim=(1, 2))
        return log_px.view(samples, b), kl.view(samples, b, -1), log_aux.view(samples, b)

    def nll_nats(self, images: torch.Tensor, autocast: bool = False) -> torch.Tensor:
        """Negative ELBO, nats per image."""
        log_px, kl = self.elbo_terms(images, autocast)
        return (kl.sum(-1) - log_px)[0]

    def loss_nats(self, images: torch.Tensor, autocast: bool = False) -> torch.Tensor:
        """Training objective per image: the negative ELBO with each latent channel's KL
        (batch mean) floored at ``free_nats``, plus ``aux_weight`` times the auxiliary
        decoder's NLL."""
        if self.config.aux_weight > 0:
            log_px, kl, log_aux = self.elbo_terms(images, autocast, auxiliary=True)
            penalty = -self.config.aux_weight * log_aux[0]
        else:
            (log_px, kl), penalty = self.elbo_terms(images, autocast), 0.0
        floored = torch.clamp(kl[0].mean(0), min=self.config.free_nats).sum()
        return floored - log_px[0] + penalty

    def kl_bits_per_channel(self, images: torch.Tensor) -> torch.Tensor:
        """KL of each latent channel, bits per image (for the card and the benchmark)."""
        _, kl = self.elbo_terms(images)
        return kl[0].mean(0) / math.log(2)

    def iw_nll_nats(self, images: torch.Tensor, samples: int = 16) -> torch.Tensor:
        """Importance-weighted estimate of -log p(x) (tighter than the ELBO)."""
        log_px, kl = self.elbo_terms(images, samples=samples)
        return -(torch.logsumexp(log_px - kl.sum(-1), dim=0) - math.log(samples))
