"""Exact integer execution of the local-VAE's networks (:mod:`neuralzip.nets.local_vae`).

All three networks are per-position MLPs on 8-bit-able integers, run by
:class:`~neuralzip.exact.local.ExactLayer` (float32 sums below 2**24, so exact on any BLAS,
batch size, thread count or machine):

* the **posterior** reads, per latent cell, the ``3f x 3f`` pixels around it
  (:func:`cell_patches`: ``2v - 255`` and a ones channel of 255, zeros outside the image) and
  gives the latent parameters in the fixed point of :mod:`neuralzip.exact.latent` (2**-12);
* the **conditioner** reads the 3x3 latent cells around a cell (:func:`latent_patches`:
  latents in bins clipped to +-255, zeros outside) and gives the 8-bit conditioning
  features the decoder reads beside each pixel's neighbourhood (:func:`pixel_condition`);
* the **decoder** is an :class:`~neuralzip.exact.local.ExactLocalNetwork` with those
  features as the last columns of its input.

The prior's parameters are fixed-point integers. :func:`quantize_vae` turns a float model
into these integers with activation scales measured on calibration images.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..nets.local_vae import LATENT_INPUT_LIMIT, LocalVAEConfig
from .fixedpoint import ACT_FRAC, to_fixed
from .local import (ACTIVATION_TOP, HEAD_LIMIT, INPUT_LIMIT, ExactLayer, ExactLocalNetwork, activation_scales,
                    quantize, quantize_layer, weight_limit)

POSTERIOR = ("posterior0", "posterior1", "posterior2")
CONDITIONER = ("conditioner0", "conditioner1")


def cell_patches(pixels: np.ndarray, factor: int) -> np.ndarray:
    """Posterior input of every latent cell of same-size RGB images uint8 [B, H, W, 3]
    (H, W multiples of ``factor``): float32 [B * h * w, 4 * (3f)**2], per cell the channels
    (R, G, B as ``2v - 255``, ones 255) of the ``3f x 3f`` window whose centre block is the
    cell, channel-major then row then column (the float convolution's weight order)."""
    b, height, width, _ = pixels.shape
    f = factor
    canvas = np.zeros((b, 4, height + 2 * f, width + 2 * f), dtype=np.float32)
    canvas[:, :3, f : f + height, f : f + width] = pixels.transpose(0, 3, 1, 2).astype(np.float32) * 2.0 - 255.0
    canvas[:, 3, f : f + height, f : f + width] = INPUT_LIMIT
    h, w = height // f, width // f
    windows = np.lib.stride_tricks.sliding_window_view(canvas, (3 * f, 3 * f), axis=(2, 3))[:, :, ::f, ::f]
    # [B, 4, h, w, 3f, 3f] -> [B, h, w, 4, 3f, 3f]
    return np.ascontiguousarray(windows[:, :, :h, :w].transpose(0, 2, 3, 1, 4, 5)).reshape(b * h * w, -1)


def latent_patches(z: np.ndarray) -> np.ndarray:
    """Conditioner input of every latent cell: float32 [B * h * w, C * 9] from integer
    latents [B, C, h, w] (bins), clipped to +-255 and zero outside, channel-major then the
    3x3 window's rows and columns."""
    b, c, h, w = z.shape
    canvas = np.zeros((b, c, h + 2, w + 2), dtype=np.float32)
    canvas[:, :, 1 : 1 + h, 1 : 1 + w] = np.clip(z, -LATENT_INPUT_LIMIT, LATENT_INPUT_LIMIT)
    windows = np.lib.stride_tricks.sliding_window_view(canvas, (3, 3), axis=(2, 3))  # [B, C, h, w, 3, 3]
    return np.ascontiguousarray(windows.transpose(0, 2, 3, 1, 4, 5)).reshape(b * h * w, -1)


def pixel_condition(cells: np.ndarray, b: int, h: int, w: int, factor: int) -> np.ndarray:
    """Per-pixel conditioning features float32 [B, H * W, F] (raster order) from the
    per-cell features [B * h * w, F]: every pixel reads its own cell's."""
    features = cells.reshape(b, h, 1, w, 1, -1)
    features = np.broadcast_to(features, (b, h, factor, w, factor, features.shape[-1]))
    return np.ascontiguousarray(features).reshape(b, h * factor * w * factor, -1)


@dataclass
class ExactLocalVAE:
    """The integer networks and prior of a local-VAE."""

    config: LocalVAEConfig
    posterior: list[ExactLayer]
    conditioner: list[ExactLayer]
    decoder: ExactLocalNetwork
    prior: np.ndarray  # int64 [2C, h, w], fixed point 2**-12

    @classmethod
    def from_tensors(cls, config: LocalVAEConfig, tensors: dict, prefix: str = "exact.") -> "ExactLocalVAE":
        posterior = [_layer(tensors, f"{prefix}{name}.", top) for name, top in zip(POSTERIOR, (False, False, True))]
        conditioner = [_layer(tensors, f"{prefix}{name}.", False) for name in CONDITIONER]
        decoder = ExactLocalNetwork(config.decoder_config(), tensors, f"{prefix}decoder.")
        return cls(config, posterior, conditioner, decoder, np.asarray(tensors[f"{prefix}prior"]).astype(np.int64))

    def tensors(self, prefix: str = "exact.") -> dict[str, np.ndarray]:
        out = {f"{prefix}prior": self.prior.astype(np.int64)}
        for names, layers in ((POSTERIOR, self.posterior), (CONDITIONER, self.conditioner)):
            for name, layer in zip(names, layers):
                out[f"{prefix}{name}.weight"] = np.ascontiguousarray(layer.weight.T.astype(np.int16))
                out[f"{prefix}{name}.multiplier"] = layer.multiplier
                out[f"{prefix}{name}.offset"] = layer.offset
        out.update(self.decoder.tensors(f"{prefix}decoder."))
        return out

    def posterior_params(self, pixels: np.ndarray) -> np.ndarray:
        """q(z|x) parameters int64 [B, 2C, h, w] of RGB tiles uint8 [B, H, W, 3]."""
        b, height, width, _ = pixels.shape
        f = self.config.factor
        x = cell_patches(pixels, f)
        for layer in self.posterior:
            x = layer(x)
        return x.astype(np.int64).reshape(b, height // f, width // f, -1).transpose(0, 3, 1, 2)

    def condition(self, z: np.ndarray) -> np.ndarray:
        """8-bit conditioning features float32 [B, H * W, F] of latents int [B, C, h, w]."""
        b, _, h, w = z.shape
        x = latent_patches(z)
        for layer in self.conditioner:
            x = layer(x)
        return pixel_condition(x, b, h, w, self.config.factor)


def _layer(tensors: dict, prefix: str, head: bool) -> ExactLayer:
    weight = np.asarray(tensors[f"{prefix}weight"]).astype(np.float32)
    if np.abs(weight).max(initial=0) > weight_limit(weight.shape[1]):
        raise ValueError(f"local-vae layer {prefix}: weights beyond the exact float32 range")
    low, high = (-HEAD_LIMIT, HEAD_LIMIT) if head else (0.0, float(ACTIVATION_TOP))
    return ExactLayer(np.ascontiguousarray(weight.T), np.asarray(tensors[f"{prefix}multiplier"], dtype=np.float32),
                      np.asarray(tensors[f"{prefix}offset"], dtype=np.float32), low, high)


def quantize_vae(model, calibration: np.ndarray, percentile: float = 99.999) -> ExactLocalVAE:
    """The integer networks of a float :class:`~neuralzip.nets.local_vae.LocalVAE`;
    activation scales from ``calibration`` images uint8 [N, 32, 32, 3] (the posterior's
    means drive the conditioner, as in the decoder's calibration)."""
    import torch
    import torch.nn.functional as F

    config: LocalVAEConfig = model.config
    if config.prior_horizon:
        # the coder pushes and pops z with fixed per-cell tables; an autoregressive prior
        # needs its own exact network and a wavefront over the latent grid, not built yet
        raise ValueError("a local-VAE with an autoregressive prior (prior_horizon > 0) has no exact coder yet")
    decoder_scales = activation_scales(model, calibration)
    recorded: dict[str, list[np.ndarray]] = {}
    model.eval()
    with torch.no_grad():
        for start in range(0, len(calibration), 100):
            images = torch.from_numpy(calibration[start : start + 100])
            x = images.permute(0, 3, 1, 2).float() * (2.0 / 255.0) - 1.0
            x = torch.cat([x, torch.ones_like(x[:, :1])], dim=1)
            a0 = F.relu(model._conv("posterior0", x, stride=config.factor, padding=config.factor))
            a1 = F.relu(model._conv("posterior1", a0))
            from ..nets.vae import latent_params

            mean, _ = latent_params(model._conv("posterior2", a1))
            z = mean.clamp(-LATENT_INPUT_LIMIT, LATENT_INPUT_LIMIT) / (1 << config.bin_bits)
            c0 = F.relu(model._conv("conditioner0", z, padding=1))
            for name, a in (("posterior0", a0), ("posterior1", a1), ("conditioner0", c0)):
                recorded.setdefault(name, []).append(a.permute(0, 2, 3, 1).reshape(-1, a.shape[1]).numpy())
    scale = {name: np.maximum(np.percentile(np.concatenate(parts), percentile, axis=0), 1e-6) / ACTIVATION_TOP
             for name, parts in recorded.items()}
    tensors: dict[str, np.ndarray] = {}
    inputs = {"posterior0": np.full(4 * (3 * config.factor) ** 2, 1.0 / INPUT_LIMIT), "posterior1": scale["posterior0"],
              "posterior2": scale["posterior1"],
              "conditioner0": np.full(9 * config.latent_channels, 2.0 ** -config.bin_bits),
              "conditioner1": scale["conditioner0"]}
    targets = {"posterior0": scale["posterior0"], "posterior1": scale["posterior1"], "posterior2": 2.0 ** -ACT_FRAC,
               "conditioner0": scale["conditioner0"], "conditioner1": decoder_scales["condition"]}
    for name in POSTERIOR + CONDITIONER:
        weight = model.weight[name].detach().double().numpy()
        weight = weight.reshape(weight.shape[0], -1)
        bias = model.bias[name].detach().double().numpy()
        target = np.broadcast_to(np.asarray(targets[name], dtype=np.float64), (weight.shape[0],))
        integer, multiplier, offset = quantize_layer(weight, bias, inputs[name], target)
        tensors[f"exact.{name}.weight"] = integer
        tensors[f"exact.{name}.multiplier"] = multiplier
        tensors[f"exact.{name}.offset"] = offset
    tensors.update(quantize(model.decoder, decoder_scales).tensors("exact.decoder."))
    tensors["exact.prior"] = to_fixed(model.prior.detach().double().numpy()[0], ACT_FRAC).astype(np.int64)
    return ExactLocalVAE.from_tensors(config, tensors)
