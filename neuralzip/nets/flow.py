"""Integer discrete flow (Hoogeboom et al., 2019), small enough to code 100 images/s on 2 cores.

The flow maps an 8-bit image bijectively to integer latents:

* pixels are centred, ``x - 128``;
* each level squeezes (2x2 space-to-depth), applies ``couplings`` additive coupling layers,
  and (except the last) factors out half of its channels;
* a coupling splits the channels into ``[a | b]`` and adds to ``b`` an integer translation
  ``round(128 * NN(a / 128))``, then reverses the channel order so the next coupling changes
  the other half. Rounding makes the map integer-to-integer; its inverse subtracts the same
  translation, which the exact network recomputes bit for bit;
* factored-out latents have a discretized logistic mixture prior whose parameters a network
  predicts from the channels kept at that level; the last level's latents have a learned
  per-position prior.

The rate is ``-log2 p(z)`` summed over all latents. The coupling and prior networks are
:class:`~neuralzip.nets.graph.Graph` objects, so training (float, straight-through rounding)
and coding (:class:`~neuralzip.exact.network.ExactNetwork`) run the same description.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from ..distributions import latent_log_likelihood
from .config import ConfigMixin
from .graph import PRE_CONCAT_ELU, PRE_NONE, FloatNetwork, Graph, Node, Term, conv3x3

TRANSLATION_SCALE = 128.0  # networks see latents / 128 and output translations / 128
INITIAL_LOG_SCALE = -1.0  # priors start with scales of ~47 latent steps (raw pixel spread), not 128


@dataclass(frozen=True)
class FlowConfig(ConfigMixin):
    levels: int = 3
    couplings: int = 4
    hidden: int = 48
    mixtures: int = 5
    channels: int = 3
    size: int = 32  # training image side (the flow itself works for any side divisible by 2**levels)

    def level_channels(self) -> list[int]:
        """Channels entering each level after its squeeze."""
        out, c = [], self.channels
        for level in range(self.levels):
            c *= 4
            out.append(c)
            if level < self.levels - 1:
                c //= 2
        return out

    @property
    def multiple(self) -> int:
        return 2 ** self.levels


def coupling_graph(channels: int, hidden: int) -> Graph:
    """NN(a) -> translation for b: conv3x3, then two concat-ELU conv3x3 layers."""
    half = channels // 2
    graph = Graph(inputs={"a": half})
    graph.add(Node("h1", hidden, (Term("a", conv3x3(), PRE_NONE),)))
    graph.add(Node("h2", hidden, (Term("h1", conv3x3(), PRE_CONCAT_ELU),)))
    graph.add(Node("t", channels - half, (Term("h2", conv3x3(), PRE_CONCAT_ELU),), init_scale=0.01))
    return graph


def prior_graph(kept: int, factored: int, hidden: int, mixtures: int) -> Graph:
    """Prior parameters of the factored-out channels from the kept ones: per factored channel
    ``mixtures`` logits, means and log-scales, laid out [logits | means | log_scales] per channel."""
    graph = Graph(inputs={"y": kept})
    graph.add(Node("h1", hidden, (Term("y", conv3x3(), PRE_NONE),)))
    graph.add(Node("h2", hidden, (Term("h1", conv3x3(), PRE_CONCAT_ELU),)))
    graph.add(Node("params", factored * 3 * mixtures, (Term("h2", conv3x3(), PRE_CONCAT_ELU),), init_scale=0.1))
    return graph


def squeeze(x: torch.Tensor) -> torch.Tensor:
    """[B, C, H, W] -> [B, 4C, H/2, W/2]; exact on integers."""
    b, c, h, w = x.shape
    x = x.reshape(b, c, h // 2, 2, w // 2, 2).permute(0, 1, 3, 5, 2, 4)
    return x.reshape(b, c * 4, h // 2, w // 2)


def unsqueeze(x: torch.Tensor) -> torch.Tensor:
    b, c, h, w = x.shape
    x = x.reshape(b, c // 4, 2, 2, h, w).permute(0, 1, 4, 2, 5, 3)
    return x.reshape(b, c // 4, h * 2, w * 2)


def round_straight_through(x: torch.Tensor) -> torch.Tensor:
    return x + (torch.round(x) - x).detach()


class IntegerFlow(nn.Module):
    """The float flow for training: ``nll_nats(images)`` gives nats per image."""

    def __init__(self, config: FlowConfig, seed: int = 0):
        super().__init__()
        self.config = config
        self.couplings = nn.ModuleList()
        self.priors = nn.ModuleList()
        channels = config.level_channels()
        for level, c in enumerate(channels):
            for k in range(config.couplings):
                self.couplings.append(FloatNetwork(coupling_graph(c, config.hidden), seed=seed + 100 * level + k))
            if level < config.levels - 1:
                self.priors.append(FloatNetwork(prior_graph(c - c // 2, c // 2, config.hidden, config.mixtures), seed=seed + 50 + level))
        top = channels[-1]
        side = config.size // config.multiple
        self.top_prior = nn.Parameter(torch.zeros(1, top * 3 * config.mixtures, side, side))
        k = config.mixtures
        with torch.no_grad():
            for prior in self.priors:
                prior.output_bias().view(-1, 3, k)[:, 2] = INITIAL_LOG_SCALE
            self.top_prior.view(top, 3, k, side, side)[:, 2] = INITIAL_LOG_SCALE

    def coupling(self, level: int, k: int) -> FloatNetwork:
        return self.couplings[level * self.config.couplings + k]

    def forward_latents(self, images: torch.Tensor, autocast: bool = False):
        """Integer-valued float latents and prior parameters: list of (z, params) per level."""
        x = images.permute(0, 3, 1, 2).float() - 128.0
        out = []
        for level in range(self.config.levels):
            x = squeeze(x)
            c = x.shape[1]
            for k in range(self.config.couplings):
                a, b = x[:, : c // 2], x[:, c // 2 :]
                with torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast):
                    t = self.coupling(level, k)({"a": (a / TRANSLATION_SCALE).contiguous()})
                b = b + round_straight_through(t.float() * TRANSLATION_SCALE)
                x = torch.cat([a, b], dim=1).flip(1)
            if level < self.config.levels - 1:
                kept, factored = x[:, : c - c // 2], x[:, c - c // 2 :]
                with torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast):
                    params = self.priors[level]({"y": (kept / TRANSLATION_SCALE).contiguous()})
                out.append((factored, params.float()))
                x = kept
            else:
                params = self.top_prior.expand(x.shape[0], -1, x.shape[2], x.shape[3])
                out.append((x, params))
        return out

    def nll_nats(self, images: torch.Tensor, autocast: bool = False) -> torch.Tensor:
        total = 0.0
        for z, params in self.forward_latents(images, autocast):
            total = total - latent_log_likelihood(params, z, self.config.mixtures).sum(dim=(1, 2, 3))
        return total
