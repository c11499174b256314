"""Sizes and causal neighbourhood of local autoregressive models (no torch: the exact coder
and the float model of :mod:`neuralzip.nets.local` both read them)."""

from __future__ import annotations

from dataclasses import dataclass

from .config import ConfigMixin


@dataclass(frozen=True)
class LocalConfig(ConfigMixin):
    """Sizes of a local autoregressive model."""

    horizon: int = 3
    width: int = 256
    blocks: int = 0
    mixtures: int = 10
    channels: int = 3
    condition: int = 0  # 8-bit conditioning features per pixel, after the neighbourhood's (a VAE's latent)
    # Bits of the exact network's activations (the ReLU outputs every layer but the first
    # reads). 8: products summed exactly in float32 (every model before local v15). More:
    # sums exact in int32 (the VNNI and AVX2 kernels; numpy sums in float64), which leaves
    # room for finer weights too (:func:`neuralzip.exact.local.weight_limit`).
    activation_bits: int = 8

    @property
    def activation_top(self) -> int:
        """The largest activation of the exact network."""
        return (1 << self.activation_bits) - 1

    @property
    def wide_sums(self) -> bool:
        """Whether the exact network's sums go beyond float32's exact integers (2**24)."""
        return self.activation_bits > 8

    @property
    def neighbours(self) -> int:
        return self.horizon * (2 * self.horizon + 1) + self.horizon

    @property
    def neighbourhood_features(self) -> int:
        """Per neighbour its channels and the ones channel."""
        return self.neighbours * (self.channels + 1)

    @property
    def input_features(self) -> int:
        """The input layer's fan-in: the neighbourhood, then the conditioning features."""
        return self.neighbourhood_features + self.condition

    def layer_names(self) -> list[str]:
        """Linear layers in execution order (the names of their weights)."""
        names = ["input"]
        for b in range(self.blocks):
            names += [f"block{b}.0", f"block{b}.1", f"block{b}.2"]
        return names + ["hidden", "head"]


def neighbour_offsets(horizon: int) -> list[tuple[int, int]]:
    """(dy, dx) of the causal neighbourhood in its fixed order: the rows above, top first,
    left to right, then the pixels to the left on the pixel's own row."""
    above = [(dy, dx) for dy in range(-horizon, 0) for dx in range(-horizon, horizon + 1)]
    return above + [(0, dx) for dx in range(-horizon, 0)]
