"""PixelCNN++ (Salimans et al., 2017) written as a :class:`~neuralzip.nets.graph.Graph`.

Two streams: ``u`` sees only the rows above a pixel (down-shifted convolutions) and ``ul``
sees the rows above and the pixels to the left (down-right-shifted convolutions). Gated
resnet blocks at three resolutions (32, 16, 8 for CIFAR) form an up pass whose outputs feed
a down pass through skip connections, exactly as in the paper's architecture; the head
predicts a discretized logistic mixture per pixel with the linear R -> G -> B coupling
(:mod:`neuralzip.distributions`). Sizes come from :class:`PixelCNNConfig`, so test configs
and the shipped model share one code path.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from ..distributions import MixtureLayout, mixture_log_likelihood
from .config import ConfigMixin
from .graph import (
    PRE_CONCAT_ELU, PRE_ELU, FloatNetwork, Graph, Node, Term, down_right_shifted, down_right_shifted_transposed,
    down_shifted, down_shifted_transposed, pointwise,
)


@dataclass(frozen=True)
class PixelCNNConfig(ConfigMixin):
    """Architecture of a PixelCNN++; ``stages`` resolutions, each halving the last."""

    filters: int = 32
    resnets: int = 1
    mixtures: int = 10
    channels: int = 3
    stages: int = 3
    dropout: float = 0.0

    @property
    def downsampling(self) -> int:
        """Image sides must be multiples of this for the strided stages."""
        return 2 ** (self.stages - 1)


def head_channels(channels: int, mixtures: int) -> int:
    """Per mixture: a logit, a mean and a log-scale per channel, one coupling per channel pair."""
    return mixtures * (1 + 2 * channels + channels * (channels - 1) // 2)


def build_pixelcnn(config: PixelCNNConfig) -> Graph:
    """The PixelCNN++ graph. Input ``x``: the image in [-1, 1] plus a channel of ones."""
    f = config.filters
    graph = Graph(inputs={"x": config.channels + 1})

    def gated_resnet(name: str, source: str, geometry, aux: list[str]) -> str:
        inner = Node(
            f"{name}.in", f,
            (Term(source, geometry, PRE_CONCAT_ELU),) + tuple(Term(a, pointwise(), PRE_CONCAT_ELU) for a in aux),
        )
        graph.add(inner)
        # The residual branch starts small so that a deep stack starts close to identity.
        return graph.add(Node(name, f, (Term(inner.name, geometry, PRE_CONCAT_ELU, dropout=True),),
                              gate_residual=source, init_scale=0.1))

    u_list = [graph.add(Node("init.u", f, (Term("x", down_shifted(2, 3).shifted(down=1)),)))]
    ul_list = [graph.add(Node("init.ul", f, (
        Term("x", down_shifted(1, 3).shifted(down=1)),
        Term("x", down_right_shifted(2, 1).shifted(right=1)),
    )))]
    for stage in range(config.stages):
        for r in range(config.resnets):
            u = gated_resnet(f"up{stage}.{r}.u", u_list[-1], down_shifted(2, 3), [])
            ul = gated_resnet(f"up{stage}.{r}.ul", ul_list[-1], down_right_shifted(2, 2), [u])
            u_list.append(u)
            ul_list.append(ul)
        if stage != config.stages - 1:
            u_list.append(graph.add(Node(f"up{stage}.down.u", f, (Term(u_list[-1], down_shifted(2, 3, stride=2)),))))
            ul_list.append(graph.add(Node(f"up{stage}.down.ul", f, (Term(ul_list[-1], down_right_shifted(2, 2, stride=2)),))))

    u, ul = u_list.pop(), ul_list.pop()
    for stage in range(config.stages):
        for r in range(config.resnets + (1 if stage > 0 else 0)):
            u = gated_resnet(f"dn{stage}.{r}.u", u, down_shifted(2, 3), [u_list.pop()])
            ul = gated_resnet(f"dn{stage}.{r}.ul", ul, down_right_shifted(2, 2), [u, ul_list.pop()])
        if stage != config.stages - 1:
            u = graph.add(Node(f"dn{stage}.up.u", f, (Term(u, down_shifted_transposed(2, 3)),)))
            ul = graph.add(Node(f"dn{stage}.up.ul", f, (Term(ul, down_right_shifted_transposed(2, 2)),)))
    assert not u_list and not ul_list, "every skip connection is consumed"
    graph.add(Node("head", head_channels(config.channels, config.mixtures), (Term(ul, pointwise(), PRE_ELU),)))
    return graph


def image_input(images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """uint8 [B, H, W, C] -> (x in [-1, 1] as [B, C, H, W], network input with the ones channel)."""
    x = images.permute(0, 3, 1, 2).float() * (2.0 / 255.0) - 1.0
    ones = torch.ones_like(x[:, :1])
    return x, torch.cat([x, ones], dim=1).contiguous(memory_format=torch.channels_last)


class PixelCNN(nn.Module):
    """The float PixelCNN++ for training: ``nll_nats(images)`` gives nats per image."""

    def __init__(self, config: PixelCNNConfig, seed: int = 0):
        super().__init__()
        self.config = config
        self.layout = MixtureLayout(config.channels, config.mixtures)
        self.network = FloatNetwork(build_pixelcnn(config), dropout=config.dropout, seed=seed)

    def nll_nats(self, images: torch.Tensor, autocast: bool = False) -> torch.Tensor:
        x, net_input = image_input(images)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast):
            params = self.network({"x": net_input})
        return -mixture_log_likelihood(params, x, self.layout).sum(dim=(1, 2))
