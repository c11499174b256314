"""A hierarchical VAE for bits-back coding (a Markov chain of latents as in Bit-Swap).

Inference ``q(z1|x) q(z2|z1) q(z3|z2)``, generation ``p(z3) p(z2|z3) p(z1|z2) p(x|z1)``;
z1 is 16x16, z2 8x8, z3 4x4 for a 32x32 image. Latents are logistic, discretized for coding
into bins of width ``2**-bin_bits`` latent units; they are handled in *bin units* throughout
(a latent ``z`` is the integer ``round(z * 2**bin_bits)`` when coded), so the continuous
densities used in training equal the coded bin probabilities up to the discretization. The
pixel likelihood is PixelCNN++'s discretized logistic mixture (no autoregression). Every
network is a :class:`~neuralzip.nets.graph.Graph`, so training (float) and coding
(:class:`~neuralzip.exact.network.ExactNetwork`) share one description.

Latent parameter layout (per latent channel, bin units): ``[mean / 127.5, log(scale / 127.5)]``
as in :func:`neuralzip.distributions.latent_log_likelihood` with one component; log-scales are
clamped below at ``LATENT_LOG_SCALE_MIN`` (a scale of one bin), where the bin probability is
still well approximated by the density.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from ..distributions import MixtureLayout, mixture_log_likelihood
from .config import ConfigMixin
from .graph import PRE_CONCAT_ELU, PRE_NONE, ConvGeometry, FloatNetwork, Graph, Node, Term, conv3x3, pointwise

LATENT_LOG_SCALE_MIN = -4.8  # 127.5 * exp(-4.8) ~ 1 bin
UNIT = 127.5  # parameter units in bins
INITIAL_LOG_SCALE = -1.3  # latent scales start near 0.55 latent units (a unit standard deviation)


def down4x4() -> ConvGeometry:
    return ConvGeometry(4, 4, stride=2, pad=(1, 1, 1, 1))


def up4x4() -> ConvGeometry:
    return ConvGeometry(4, 4, stride=2, transposed=True, crop=(1, 1))


@dataclass(frozen=True)
class VAEConfig(ConfigMixin):
    latents: tuple[int, ...] = (8, 8, 8)  # channels of z1, z2, z3
    hidden: int = 64
    mixtures: int = 5
    bin_bits: int = 6  # latent bins of width 1/64
    window_bits: int = 10  # latents coded in windows of 1024 bins
    size: int = 32

    @property
    def levels(self) -> int:
        return len(self.latents)

    @property
    def multiple(self) -> int:
        return 2 ** self.levels


def _stack(graph: Graph, source: str, hidden: int, middle, out_channels: int, out_geometry) -> None:
    """conv3x3 -> concat-ELU + ``middle`` (down or up) -> concat-ELU + ``out_geometry``."""
    graph.add(Node("h1", hidden, (Term(source, conv3x3(), PRE_NONE),)))
    graph.add(Node("h2", hidden, (Term("h1", middle, PRE_CONCAT_ELU),)))
    graph.add(Node("out", out_channels, (Term("h2", out_geometry, PRE_CONCAT_ELU),), init_scale=0.1))


def posterior_graph(in_channels: int, latent: int, hidden: int) -> Graph:
    """q(z_l | below): halves the resolution; 2 parameters per latent channel."""
    graph = Graph(inputs={"x": in_channels})
    _stack(graph, "x", hidden, down4x4(), 2 * latent, conv3x3())
    return graph


def prior_graph(in_channels: int, out_channels: int, hidden: int) -> Graph:
    """p(below | z_l): doubles the resolution."""
    graph = Graph(inputs={"x": in_channels})
    _stack(graph, "x", hidden, up4x4(), out_channels, pointwise())
    return graph


def logistic_log_density(z: torch.Tensor, params: torch.Tensor) -> torch.Tensor:
    """Log density (nats, bin units) of z [B, C, H, W] under params [B, 2C, H, W]."""
    mean, log_scale = latent_params(params)
    centered = (z - mean) / torch.exp(log_scale)
    return -centered - log_scale - 2 * F.softplus(-centered)


def latent_params(params: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(mean, log scale) in bin units from params [B, 2C, H, W] laid out [mean, log_scale] per channel."""
    b, c2, h, w = params.shape
    p = params.float().reshape(b, c2 // 2, 2, h, w)
    return p[:, :, 0] * UNIT, p[:, :, 1].clamp(min=LATENT_LOG_SCALE_MIN) + math.log(UNIT)


class HierarchicalVAE(nn.Module):
    """The float VAE for training. ``nll_nats`` returns the negative ELBO (nats per image)."""

    def __init__(self, config: VAEConfig, seed: int = 0):
        super().__init__()
        self.config = config
        c = config.latents
        self.layout = MixtureLayout(3, config.mixtures)
        below = [3 + 1] + list(c[:-1])  # x gets a ones channel, as in PixelCNN++
        self.posteriors = nn.ModuleList(FloatNetwork(posterior_graph(below[l], c[l], config.hidden), seed=seed + l)
                                        for l in range(config.levels))
        outs = [self.layout.size] + [2 * c[l] for l in range(config.levels - 1)]
        self.priors = nn.ModuleList(FloatNetwork(prior_graph(c[l], outs[l], config.hidden), seed=seed + 10 + l)
                                    for l in range(config.levels))
        side = config.size // config.multiple
        self.top_prior = nn.Parameter(torch.zeros(1, 2 * c[-1], side, side))
        with torch.no_grad():  # latent scales in bins depend on the bin width: start them at ~1 unit
            start = INITIAL_LOG_SCALE + (config.bin_bits - 6) * math.log(2)
            for network in list(self.posteriors) + list(self.priors)[1:]:
                network.output_bias().view(-1, 2)[:, 1] = start
            self.top_prior.view(c[-1], 2, side, side)[:, 1] = start

    def scale_latent(self, z_bins: torch.Tensor) -> torch.Tensor:
        return z_bins / (1 << self.config.bin_bits)

    def elbo_terms(self, images: torch.Tensor, autocast: bool = False, samples: int = 1):
        """log p(x|z1), and per level log q(z_l|.) and log p(z_l|.), summed per image
        (nats), for ``samples`` draws per image: each [samples, B]."""
        x = images.permute(0, 3, 1, 2).float() * (2.0 / 255.0) - 1.0
        x = x.repeat(samples, 1, 1, 1)
        below = torch.cat([x, torch.ones_like(x[:, :1])], dim=1)
        log_q, zs = [], []
        for level in range(self.config.levels):
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast):
                params = self.posteriors[level]({"x": below.contiguous()}).float()
            mean, log_scale = latent_params(params)
            u = torch.rand_like(mean).clamp(1e-6, 1 - 1e-6)
            z = mean + torch.exp(log_scale) * (torch.log(u) - torch.log1p(-u))
            log_q.append(logistic_log_density(z, params).sum(dim=(1, 2, 3)))
            zs.append(z)
            below = self.scale_latent(z)
        log_p = []
        top = self.top_prior.expand(zs[-1].shape[0], -1, -1, -1)
        log_p.append(logistic_log_density(zs[-1], top).sum(dim=(1, 2, 3)))
        for level in range(self.config.levels - 1, 0, -1):
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast):
                params = self.priors[level]({"x": self.scale_latent(zs[level]).contiguous()}).float()
            log_p.append(logistic_log_density(zs[level - 1], params).sum(dim=(1, 2, 3)))
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast):
            head = self.priors[0]({"x": self.scale_latent(zs[0]).contiguous()}).float()
        log_px = mixture_log_likelihood(head, x, self.layout).sum(dim=(1, 2))
        b = images.shape[0]
        return (log_px.view(samples, b), torch.stack(log_q).sum(0).view(samples, b),
                torch.stack(log_p).sum(0).view(samples, b))

    def nll_nats(self, images: torch.Tensor, autocast: bool = False) -> torch.Tensor:
        log_px, log_q, log_p = self.elbo_terms(images, autocast)
        return -(log_px + log_p - log_q)[0]

    def iw_nll_nats(self, images: torch.Tensor, samples: int = 16) -> torch.Tensor:
        """Importance-weighted estimate of -log p(x) (tighter than the ELBO)."""
        log_px, log_q, log_p = self.elbo_terms(images, samples=samples)
        return -(torch.logsumexp(log_px + log_p - log_q, dim=0) - math.log(samples))
