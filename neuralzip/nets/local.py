"""The local autoregressive model (NeLLoC, Zhang et al. 2021): each pixel from a small causal
neighbourhood, the float network that trains it.

With horizon ``h`` a pixel (i, j) sees the pixels of the ``h`` rows above within ``h``
columns either side and the ``h`` pixels to its left (:func:`neighbour_offsets`, a fixed
order shared with the exact network). Every neighbour brings its channels in [-1, 1] and a
ones channel; a neighbour outside the image reads as all zeros (ones channel included), so
the network knows where the image ends and nothing depends on the image's size.

The network is a per-pixel MLP: a linear layer over the neighbourhood (the masked
``(2h+1) x (2h+1)`` convolution of the paper), ReLU, ``blocks`` pre-activation residual blocks
of three linear layers, a hidden linear layer, and the head: PixelCNN++'s discretized
logistic mixture with the linear R -> G -> B coupling (:mod:`neuralzip.distributions`).
Every matrix product reads ReLU outputs (or pixels), which is what lets the exact network
(:mod:`neuralzip.exact.local`) quantise them to 8 bits and still sum exactly in float32.

Training may simulate that quantisation (``quantized=True``, straight-through rounding of
weights and activations with the exact network's scales), so the float NLL the trainer
optimises is the one the coder pays.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..distributions import MixtureLayout, mixture_log_likelihood
from .neighbourhood import LocalConfig, neighbour_offsets


def head_channels(config: LocalConfig) -> int:
    return MixtureLayout(config.channels, config.mixtures).size


def neighbourhood_kernel_mask(horizon: int) -> tuple[torch.Tensor, int, int]:
    """The flat kernel slots of the neighbours in a ``(h+1) x (2h+1)`` window whose bottom
    row is the pixel's own (window origin h rows up and h columns left)."""
    kw = 2 * horizon + 1
    slots = [(dy + horizon) * kw + dx + horizon for dy, dx in neighbour_offsets(horizon)]
    return torch.tensor(slots), horizon + 1, kw


def causal_kernel(neighbours: torch.Tensor, horizon: int) -> torch.Tensor:
    """Weights per neighbour [out, C, P] (P: :func:`neighbour_offsets` order) as the masked
    ``(h+1) x (2h+1)`` conv kernel [out, C, h+1, 2h+1] that reads exactly those neighbours
    (zero elsewhere, the pixel itself included) from a window padded h above and either side."""
    slots, kh, kw = neighbourhood_kernel_mask(horizon)
    kernel = neighbours.new_zeros(neighbours.shape[0], neighbours.shape[1], kh * kw)
    kernel[:, :, slots.to(neighbours.device)] = neighbours
    return kernel.view(neighbours.shape[0], neighbours.shape[1], kh, kw)


class _RoundedRelu(torch.autograd.Function):
    """``clamp(round(a / s), 0, top) * s`` whose straight-through gradient is masked by the
    output itself. Saving only the output (which the next matrix product's backward keeps
    anyway) makes quantisation-aware training 1.8x faster on CPUs whose memory bandwidth
    limits it than ``a + (q - a).detach()`` after a separate ReLU, which keeps two
    activations per layer (benchmarks/results/training_speed.md); the mask differs from the ReLU's
    only for inputs that round to zero."""

    @staticmethod
    def forward(ctx, a, s, top):
        q = torch.clamp(torch.round(a / s), 0, top) * s
        ctx.save_for_backward(q)
        return q

    @staticmethod
    def backward(ctx, grad):
        (q,) = ctx.saved_tensors
        return grad * (q > 0), None, None


def rounded_relu(a: torch.Tensor, scale: torch.Tensor, top: int) -> torch.Tensor:
    """The ReLU of ``a`` rounded to integer multiples of ``scale`` (broadcast), at most
    ``top`` of them, as quantisation-aware training simulates the exact network's 8-bit
    activations (:class:`_RoundedRelu`)."""
    return _RoundedRelu.apply(a, scale, top)


class LocalModel(nn.Module):
    """The float local autoregressive model: ``nll_nats(images)`` gives nats per image."""

    def __init__(self, config: LocalConfig, seed: int = 0):
        super().__init__()
        self.config = config
        self.layout = MixtureLayout(config.channels, config.mixtures)
        generator = torch.Generator().manual_seed(seed)
        w = config.width
        shapes = {"input": (w, config.input_features)}
        for b in range(config.blocks):
            shapes.update({f"block{b}.0": (w, w), f"block{b}.1": (w, w), f"block{b}.2": (w, w)})
        shapes.update({"hidden": (w, w), "head": (head_channels(config), w)})
        self.weight = nn.ParameterDict()
        self.bias = nn.ParameterDict()
        for name, (out_features, in_features) in shapes.items():
            scale = (2.0 / in_features) ** 0.5  # He initialisation for ReLU inputs
            if name.endswith(".2"):
                scale *= 0.1  # residual branches start near zero: a deep stack starts near identity
            if name == "head":
                scale *= 0.1
            key = name.replace(".", "_")
            self.weight[key] = nn.Parameter(torch.randn(out_features, in_features, generator=generator) * scale)
            self.bias[key] = nn.Parameter(torch.zeros(out_features))
        self.quantizer = None  # a neuralzip.exact.local.FakeQuantizer during quantisation-aware training

    def grow_from(self, state: dict) -> None:
        """Start from a trained local model of the same horizon, width and head but fewer
        residual blocks (``state``: its state dict): its layers are taken as they are and
        every added block starts as the identity (its last layer zero), so the grown model
        first computes exactly what the smaller one did and training adds the capacity."""
        own = self.state_dict()
        unknown = set(state) - set(own)
        if unknown:
            raise ValueError(f"cannot grow from a model with layers this one lacks: {sorted(unknown)[:3]}")
        for key, value in state.items():
            if own[key].shape != value.shape:
                raise ValueError(f"cannot grow from a model whose {key} is {tuple(value.shape)}, not {tuple(own[key].shape)}")
            own[key] = value
        for key in set(own) - set(state):
            if key.endswith("_2"):  # block{b}.2: the residual branch's output
                own[key] = torch.zeros_like(own[key])
        self.load_state_dict(own)

    def layer(self, name: str) -> tuple[torch.Tensor, torch.Tensor]:
        key = name.replace(".", "_")
        return self.weight[key], self.bias[key]

    def input_kernel(self, weight: torch.Tensor) -> torch.Tensor:
        """The neighbourhood columns of the input layer's [W, P*(C+1) + condition] matrix
        as a masked (h+1) x (2h+1) conv kernel."""
        c1 = self.config.channels + 1
        # neighbour-major features: feature n*(C+1) + c is channel c of neighbour n
        neighbourhood = weight[:, : self.config.neighbourhood_features]
        return causal_kernel(neighbourhood.reshape(weight.shape[0], -1, c1).transpose(1, 2), self.config.horizon)

    def head(self, images: torch.Tensor, condition: torch.Tensor | None = None) -> torch.Tensor:
        """uint8 [B, H, W, C] -> mixture parameters [B, size, H, W] (float32). Models with
        ``config.condition`` features also take ``condition`` [B, condition, H, W]: the
        pre-activations of per-pixel features that enter the input layer, after a ReLU and
        (when quantising) 8-bit rounding, beside the neighbourhood."""
        h = self.config.horizon
        x = images.permute(0, 3, 1, 2).float() * (2.0 / 255.0) - 1.0
        x = torch.cat([x, torch.ones_like(x[:, :1])], dim=1)
        x = F.pad(x, (h, h, h, 0)).contiguous(memory_format=torch.channels_last)
        q = self.quantizer
        weight, bias = self.layer("input")
        if q is not None:
            weight, bias = q.weight("input", weight, bias)
        a = F.conv2d(x, self.input_kernel(weight).to(x.dtype), bias.to(x.dtype))
        if self.config.condition:
            if condition is None:
                raise ValueError("this local model is conditional: head() needs its condition features")
            features = F.relu(condition) if q is None else q.activation("condition", condition)
            columns = weight[:, self.config.neighbourhood_features :]
            a = a + F.conv2d(features, columns[:, :, None, None].to(features.dtype))
        if q is not None:
            a = q.accumulator("input", a)
        # The per-pixel layers run on rows [B*H*W, width] (a free view of the channels-last
        # output): plain matrix products train ~10% faster here than 1x1 convolutions.
        b, _, height, width = a.shape
        stream = a.permute(0, 2, 3, 1).reshape(b * height * width, -1)
        for block in range(self.config.blocks):
            y = stream
            for i in range(3):
                y = self._linear(f"block{block}.{i}", y)
            stream = stream + y
        y = self._linear("hidden", stream)
        out = self._linear("head", y).float()
        return out.view(b, height, width, -1).permute(0, 3, 1, 2)

    def _linear(self, name: str, pre_activation: torch.Tensor) -> torch.Tensor:
        """One per-pixel layer on the ReLU of rows [N, in] -> [N, out] (a quantiser takes
        the ReLU and its 8-bit rounding together: one saved tensor, not two)."""
        weight, bias = self.layer(name)
        q = self.quantizer
        if q is None:
            activation = F.relu(pre_activation)
        else:
            activation = q.activation(name, pre_activation)
            weight, bias = q.weight(name, weight, bias)
        out = F.linear(activation, weight.to(activation.dtype), bias.to(activation.dtype))
        return q.accumulator(name, out) if q is not None else out

    def nll_nats(self, images: torch.Tensor, autocast: bool = False,
                 condition: torch.Tensor | None = None) -> torch.Tensor:
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast):
            params = self.head(images, condition)
        x = images.permute(0, 3, 1, 2).float() * (2.0 / 255.0) - 1.0
        return -mixture_log_likelihood(params, x, self.layout).sum(dim=(1, 2))
