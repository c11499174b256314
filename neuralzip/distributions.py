"""Discretized logistic mixtures: one definition for training (float log-likelihood) and
coding (exact integer cumulative counts, :mod:`neuralzip.exact.mixture`).

Parameter layout of a head with K mixtures over C channels (per pixel, along channels):
``[logits (K) | means (C*K) | log_scales (C*K) | couplings (C*(C-1)/2 * K)]``; channel c,
component k is at ``c*K + k``; the coupling of channel c on an earlier channel j is pair
``c*(c-1)/2 + j``. A channel's mean is its own mean plus ``tanh(coupling) * x_j`` for every
earlier channel j (PixelCNN++'s linear R -> G -> B dependence), in the [-1, 1] pixel scale.
Sub-pixel values v in 0..255 map to ``x = 2v/255 - 1``; bin v covers x +- 1/255, the two
edge bins extend to -inf and +inf.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:  # torch is imported by the float functions only: the exact coders need none
    import torch

LOG_SCALE_MIN = -7.0  # as in PixelCNN++: narrower logistics gain nothing at 8-bit resolution


@dataclass(frozen=True)
class MixtureLayout:
    channels: int
    mixtures: int

    @property
    def pairs(self) -> int:
        return self.channels * (self.channels - 1) // 2

    @property
    def size(self) -> int:
        return self.mixtures * (1 + 2 * self.channels + self.pairs)

    def split(self, params: torch.Tensor):
        """(logits [N,K], means [N,C,K], log_scales [N,C,K], couplings [N,P,K]) from [N, size]."""
        k, c, p = self.mixtures, self.channels, self.pairs
        logits = params[:, :k]
        means = params[:, k : k + c * k].reshape(-1, c, k)
        log_scales = params[:, k + c * k : k + 2 * c * k].reshape(-1, c, k)
        couplings = params[:, k + 2 * c * k : k + 2 * c * k + p * k].reshape(len(params), p, k)
        return logits, means, log_scales, couplings


def pair_index(channel: int, earlier: int) -> int:
    return channel * (channel - 1) // 2 + earlier


def mixture_log_likelihood(params: torch.Tensor, x: torch.Tensor, layout: MixtureLayout) -> torch.Tensor:
    """Log-likelihood in nats of each pixel, summed over channels.

    ``params``: [B, size, H, W] (the network head); ``x``: [B, C, H, W] in [-1, 1] on the
    8-bit grid. Returns [B, H, W]. Computed in float32. For bins whose probability underflows
    float32 the density at the bin centre times the bin width stands in, as in PixelCNN++;
    the coded size is always measured from the exact integer tables, never from this value.
    """
    import torch
    import torch.nn.functional as F

    params = params.float()
    x = x.float()
    b, _, h, w = params.shape
    flat = params.permute(0, 2, 3, 1).reshape(-1, layout.size)
    xs = x.permute(0, 2, 3, 1).reshape(-1, layout.channels)
    logits, means, log_scales, couplings = layout.split(flat)
    log_scales = log_scales.clamp(min=LOG_SCALE_MIN)
    couplings = torch.tanh(couplings)
    adjusted = [means[:, 0]]
    for c in range(1, layout.channels):
        mean = means[:, c]
        for j in range(c):
            mean = mean + couplings[:, pair_index(c, j)] * xs[:, j : j + 1]
        adjusted.append(mean)
    means = torch.stack(adjusted, dim=1)
    centered = xs.unsqueeze(-1) - means
    inv_scale = torch.exp(-log_scales)
    plus_in = inv_scale * (centered + 1.0 / 255.0)
    min_in = inv_scale * (centered - 1.0 / 255.0)
    cdf_delta = torch.sigmoid(plus_in) - torch.sigmoid(min_in)
    log_cdf_plus = plus_in - F.softplus(plus_in)
    log_one_minus_cdf_min = -F.softplus(min_in)
    mid_in = inv_scale * centered
    log_pdf_mid = mid_in - log_scales - 2.0 * F.softplus(mid_in)
    xv = xs.unsqueeze(-1).expand_as(centered)
    inner = torch.where(
        cdf_delta > 1e-5, torch.log(cdf_delta.clamp(min=1e-12)), log_pdf_mid - math.log(127.5)
    )
    log_probs = torch.where(xv < -0.999, log_cdf_plus, torch.where(xv > 0.999, log_one_minus_cdf_min, inner))
    total = log_probs.sum(dim=1) + torch.log_softmax(logits, dim=-1)
    return torch.logsumexp(total, dim=-1).reshape(b, h, w)


def mixture_log_likelihood_and_gradient(params: np.ndarray, x: np.ndarray,
                                        layout: MixtureLayout) -> tuple[np.ndarray, np.ndarray]:
    """:func:`mixture_log_likelihood` and its gradient in numpy (float64): (log-likelihood
    in nats [N], its gradient with respect to ``params`` [N, size]) of pixels ``x`` [N, C]
    (in [-1, 1] on the 8-bit grid) under heads ``params`` [N, size]. The same function,
    branch for branch (edge bins, the density fallback of underflowing bins, the clamped
    log-scales), with the gradient autograd would give (tests/test_head_offsets.py checks
    both against torch). For the encoder's head-offset fit, which needs no torch: importing
    torch and its optimiser costs ~3 s, more than the rest of a photograph's encode."""
    params = np.asarray(params, dtype=np.float64)
    x = np.asarray(x, dtype=np.float64)
    n, k, c = len(params), layout.mixtures, layout.channels
    logits = np.ascontiguousarray(params[:, :k])  # contiguous parts: strided views run slower
    means = np.ascontiguousarray(params[:, k : k + c * k]).reshape(n, c, k)
    raw_log_scales = np.ascontiguousarray(params[:, k + c * k : k + 2 * c * k]).reshape(n, c, k)
    log_scales = np.maximum(raw_log_scales, LOG_SCALE_MIN)
    couplings = np.tanh(params[:, k + 2 * c * k : k + 2 * c * k + layout.pairs * k]).reshape(n, layout.pairs, k)
    adjusted = means.copy()
    for channel in range(1, c):
        for j in range(channel):
            adjusted[:, channel] += couplings[:, pair_index(channel, j)] * x[:, j : j + 1]
    centered = x[:, :, None] - adjusted
    inv_scale = np.exp(-log_scales)
    plus_in = inv_scale * (centered + 1.0 / 255.0)
    min_in = inv_scale * (centered - 1.0 / 255.0)
    # every branch's value and its derivatives by plus_in and min_in (and by log-scales
    # directly): first the inner bins' for all, then the rare others' where they apply
    cdf_plus, cdf_min = _sigmoid(plus_in), _sigmoid(min_in)
    safe_delta = np.maximum(cdf_plus - cdf_min, 1e-12)
    log_probs = np.log(safe_delta)
    d_plus = cdf_plus * (1.0 - cdf_plus) / safe_delta
    d_min = -cdf_min * (1.0 - cdf_min) / safe_delta
    d_log_scales = -(plus_in * d_plus + min_in * d_min)
    low, high = x < -0.999, x > 0.999  # [N, C]: the edge bins, open to -inf and +inf
    for edge, d_edge in ((low, 1.0 - cdf_plus), (high, -cdf_min)):
        rows, channels = np.nonzero(edge)
        into = plus_in[rows, channels] if edge is low else min_in[rows, channels]
        log_probs[rows, channels] = into - np.logaddexp(0.0, into) if edge is low else -np.logaddexp(0.0, into)
        derivative = d_edge[rows, channels]
        d_plus[rows, channels] = derivative if edge is low else 0.0
        d_min[rows, channels] = 0.0 if edge is low else derivative
        d_log_scales[rows, channels] = -into * derivative
    # inner bins whose probability underflows: density at the centre x bin width
    where = np.nonzero((safe_delta <= 1e-5) & ~(low | high)[:, :, None])
    mid_in = inv_scale[where] * centered[where]
    log_probs[where] = mid_in - log_scales[where] - 2.0 * np.logaddexp(0.0, mid_in) - math.log(127.5)
    d_mid = 1.0 - 2.0 * _sigmoid(mid_in)
    d_plus[where], d_min[where] = d_mid, 0.0  # plus_in and mid_in have the same derivatives here
    d_log_scales[where] = -mid_in * d_mid - 1.0
    log_prior = logits - _logsumexp(logits)[:, None]
    total = log_probs.sum(axis=1) + log_prior
    log_likelihood = _logsumexp(total)
    weight = np.exp(total - log_likelihood[:, None])[:, None, :]  # d log-likelihood / d log_probs[c, k]
    d_centered = weight * inv_scale * (d_plus + d_min)
    d_log_scales *= weight * (raw_log_scales >= LOG_SCALE_MIN)  # the clamp passes no gradient below its floor
    d_couplings = np.zeros((n, layout.pairs, k))
    for channel in range(1, c):
        for j in range(channel):
            d_couplings[:, pair_index(channel, j)] = -d_centered[:, channel] * x[:, j : j + 1]
    d_couplings *= 1.0 - couplings**2
    gradient = np.concatenate([weight[:, 0] - np.exp(log_prior), -d_centered.reshape(n, -1),
                               d_log_scales.reshape(n, -1), d_couplings.reshape(n, -1)], axis=1)
    return log_likelihood, gradient


def _sigmoid(z: np.ndarray) -> np.ndarray:
    with np.errstate(over="ignore"):  # exp(-z) = inf for very negative z: 1 / inf = 0, right
        return 1.0 / (1.0 + np.exp(-z))


def _logsumexp(values: np.ndarray) -> np.ndarray:
    """log(sum(exp)) over the last axis, [N, K] -> [N]."""
    top = values.max(axis=-1)
    return top + np.log(np.exp(values - top[:, None]).sum(axis=-1))


def bits_per_dim(log_likelihood_nats: torch.Tensor, dims_per_item: int) -> torch.Tensor:
    """Mean bits per sub-pixel from summed log-likelihoods."""
    return -log_likelihood_nats / (dims_per_item * math.log(2.0))


def log_bin_probability(upper: torch.Tensor, lower: torch.Tensor) -> torch.Tensor:
    """log(sigmoid(upper) - sigmoid(lower)) for upper > lower, accurate in both tails
    (computed on the side of the smaller tail mass)."""
    import torch
    import torch.nn.functional as F

    left = (upper + lower) <= 0
    a = torch.where(left, F.logsigmoid(upper), F.logsigmoid(-lower))
    b = torch.where(left, F.logsigmoid(lower), F.logsigmoid(-upper))
    return a + torch.log1p(-torch.exp(torch.clamp(b - a, max=-1e-7)))


def latent_log_likelihood(params: torch.Tensor, z: torch.Tensor, mixtures: int) -> torch.Tensor:
    """Log-likelihood in nats of integer latents under a discretized logistic mixture with
    unbounded support (bins of width 1 around every integer).

    ``params``: [B, C * 3K, H, W], per latent channel c the block ``[logits | means |
    log_scales]`` of K each at channel offset ``3K c``; means and scales are in units of
    127.5 latent steps (as pixels in [-1, 1]). ``z``: [B, C, H, W]. Returns [B, C, H, W].
    The exact coder (:mod:`neuralzip.exact.latent`) implements the same distribution."""
    import torch

    b, c, h, w = z.shape
    p = params.float().reshape(b, c, 3, mixtures, h, w)
    logits, means, log_scales = p[:, :, 0], p[:, :, 1] * 127.5, p[:, :, 2].clamp(min=LOG_SCALE_MIN)
    inv = torch.exp(-log_scales) / 127.5
    centered = z.float().unsqueeze(2) - means
    log_p = log_bin_probability(inv * (centered + 0.5), inv * (centered - 0.5))
    return torch.logsumexp(log_p + torch.log_softmax(logits, dim=2), dim=2)
