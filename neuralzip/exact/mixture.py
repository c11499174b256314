"""Exact coding tables of a discretized logistic mixture (the integer twin of
:func:`neuralzip.distributions.mixture_log_likelihood`).

Input: the integer head of an exact network (fixed point, 2**-ACT_FRAC), same layout as the
float head (:class:`~neuralzip.distributions.MixtureLayout`). Output: for each sub-pixel, an
exact integer cumulative function ``G(i)``, i = 0..256, over the bin edges, from which a value
is coded as 8 binary decisions (a walk down the balanced tree of intervals [lo, hi)).

All arithmetic is on int64 with lookup tables built by :mod:`.fixedpoint`, so the encoder
and decoder compute the same integers on every machine:

* mixture weights ``w_k = EXP[max_j l_j - l_k]`` (2**16 = the largest component), and after
  each channel the posterior weights ``w_k * p_k(value)`` (exactly renormalised), so that
  coding channel by channel factorises PixelCNN++'s joint mixture exactly;
* means in 2**-13 pixel units: ``(m + 4096) * 255 + sum_j tanh(c_j) * (2 v_j - 255)``, where
  v_j are the already known values of earlier channels (the R -> G -> B coupling);
* ``z = (edge - mean) * INV_SCALE[log_scale]`` rounded to 2**-12, and
  ``F = SIGMOID[z]`` in 2**-30 units;
* ``G(i) = sum_k w_k F_k(edge_i) + i * FLOOR`` with ``G(0) = 0`` and
  ``G(256) = sum_k w_k 2**30 + 256 * FLOOR``, so every bin has weight >= FLOOR. All values
  stay below 2**50, so the binary splits are exact float64 integers.

Two ways to code a value under ``G``: as 8 binary decisions (:meth:`ExactMixture.decisions`,
for codecs that pop many values from one stack in a row), or as **one symbol**
(:class:`SymbolTable`): the 24-bit cumulative ``C(i) = i + floor(G(i) / G(L) * (2**24 - L))``
over L levels (float64 division and product of exact integers, correctly rounded, so
identical everywhere) is strictly increasing, so every value has frequency >= 1. Encoding
needs ``C`` at the value's two edges; decoding finds the value with ``C(v) <= q < C(v + 1)``
by a search whose arity only changes how many points are evaluated at once, never the result.
"""

from __future__ import annotations

import functools
from typing import NamedTuple

import numpy as np

from ..coding import TOTAL, binary_frequency
from ..distributions import LOG_SCALE_MIN, MixtureLayout, pair_index
from .fixedpoint import ACT_FRAC, ACT_ONE, det_exp, det_sigmoid, to_fixed

BITS = 8
LEVELS = 1 << BITS
SYMBOL_TOTAL = TOTAL  # one-symbol intervals are out of 2**24 (the ANS precision)
CDF_FRAC = 30
Z_FRAC = 12
Z_SPAN = 24 << Z_FRAC  # the logistic CDF is 0 or 1 to within 2**-34 beyond |z| = 24
GUARD = 30  # extra bits of the inverse-scale table
MEAN_ONE = 1 << 13  # one pixel in mean units
LOG_SCALE_LOW = int(LOG_SCALE_MIN) * ACT_ONE
LOG_SCALE_HIGH = 7 * ACT_ONE
WEIGHT_FRAC = 16
WEIGHT_SPAN = 12 * ACT_ONE  # components 12 nats below the best one weigh nothing
# Every bin weighs at least FLOOR: with the best component at weight 2**16 this bounds any
# bin's probability below by about 2**-35, so a value far in the tails costs at most ~35
# bits, while all floors together take under 2**-22 of the mass.
FLOOR = 1 << (CDF_FRAC + WEIGHT_FRAC - 32)
TANH_SPAN = 8 * ACT_ONE
# Means never need clamping in practice (|head| <= 2**20 keeps them within 2**29); the bound
# only documents that distance * inverse scale stays below 2**62 in int64.
MEAN_LOW, MEAN_HIGH = -(1 << 29), 1 << 29


@functools.lru_cache(maxsize=None)
def _tables():
    z = np.arange(-Z_SPAN, Z_SPAN + 1, dtype=np.float64) / (1 << Z_FRAC)
    sigmoid = to_fixed(det_sigmoid(z), CDF_FRAC)
    log_scale = np.arange(LOG_SCALE_LOW, LOG_SCALE_HIGH + 1, dtype=np.float64) / ACT_ONE
    # z per mean unit: 1 / (scale in pixels * MEAN_ONE), scale in pixels = 127.5 * exp(log_scale)
    inverse_scale = np.rint(det_exp(-log_scale) / (127.5 * MEAN_ONE) * float(1 << (Z_FRAC + GUARD))).astype(np.int64)
    weight = to_fixed(det_exp(-np.arange(WEIGHT_SPAN + 1, dtype=np.float64) / ACT_ONE), WEIGHT_FRAC)
    t = np.arange(-TANH_SPAN, TANH_SPAN + 1, dtype=np.float64) / ACT_ONE
    tanh = to_fixed(1.0 - 2.0 / (det_exp(2.0 * t) + 1.0), ACT_FRAC)
    pixel_to_input = to_fixed((2.0 * np.arange(LEVELS) - 255.0) / 255.0, ACT_FRAC)
    return sigmoid, inverse_scale, weight, tanh, pixel_to_input


def _clip(values: np.ndarray, low: int, high: int) -> np.ndarray:
    """np.clip's result without its per-call overhead (these run once per decoded pixel)."""
    return np.maximum(np.minimum(values, high), low)


def sigmoid_table() -> np.ndarray:
    """The logistic CDF at z = i / 2**Z_FRAC - 24 (index i), in 2**-CDF_FRAC units."""
    return _tables()[0]


def pixel_to_input(values: np.ndarray) -> np.ndarray:
    """Sub-pixel values 0..255 -> the network's integer input (2v/255 - 1 in 2**-12 units)."""
    return _tables()[4][np.asarray(values, dtype=np.int64)]


class ChannelParameters:
    """The components of one channel at N pixels: means (before coupling), inverse scales,
    couplings; int64 [N, K] (couplings [N, c, K] for the c earlier channels). Values are
    0 .. ``levels`` - 1 (256 for pixels; latent windows may be wider)."""

    def __init__(self, means, inverse_scales, couplings, levels: int = LEVELS):
        self.means = means
        self.inverse_scales = inverse_scales
        self.couplings = couplings
        self.levels = levels

    def select(self, rows) -> "ChannelParameters":
        """The parameters of some rows (a slice gives views, no copies)."""
        return ChannelParameters(self.means[rows], self.inverse_scales[rows], self.couplings[rows], self.levels)

    def coupled_means(self, earlier_values: np.ndarray) -> np.ndarray:
        """Means in 2**-13 pixel units given the earlier channels' values [N, c]."""
        means = self.means.copy()
        for j in range(self.couplings.shape[1]):
            means += self.couplings[:, j] * (2 * earlier_values[:, j : j + 1].astype(np.int64) - 255)
        return _clip(means, MEAN_LOW, MEAN_HIGH)

    def component_cdf(self, edges: np.ndarray, means: np.ndarray) -> np.ndarray:
        """Each component's CDF (2**-30 units) at edge indices ``edges`` [N, M] -> [N, M, K];
        edge 0 is -inf (0) and edge ``levels`` is +inf (2**30)."""
        sigmoid = _tables()[0]
        edges = edges.astype(np.int64)
        edge_units = (2 * edges - 1) * (MEAN_ONE // 2)  # edge i lies at i - 0.5 px
        distance = edge_units[:, :, None] - means[:, None, :]
        z = (distance * self.inverse_scales[:, None, :] + (1 << (GUARD - 1))) >> GUARD
        # minimum/maximum rather than np.clip: the same result, and this is the decoders' hot loop
        cdf = sigmoid[np.minimum(np.maximum(z, -Z_SPAN), Z_SPAN) + Z_SPAN]
        if edges.size and (edges.min() <= 0 or edges.max() >= self.levels):
            cdf = np.where(edges[:, :, None] <= 0, 0, cdf)
            cdf = np.where(edges[:, :, None] >= self.levels, 1 << CDF_FRAC, cdf)
        return cdf

    def cumulative(self, edges: np.ndarray, means: np.ndarray, weights: np.ndarray) -> np.ndarray:
        """G at edge indices ``edges`` int [N, M] (0..levels) under component ``weights`` -> [N, M]."""
        total = (self.component_cdf(edges, means) * weights[:, None, :]).sum(axis=2)
        return total + edges.astype(np.int64) * FLOOR

    def total(self, weights: np.ndarray) -> np.ndarray:
        """G at the last edge (``levels``) [N], without evaluating any CDF."""
        return (weights.sum(axis=1) << CDF_FRAC) + self.levels * FLOOR

    def bin_probabilities(self, values: np.ndarray, means: np.ndarray) -> np.ndarray:
        """Each component's probability (2**-30 units) of the bin of ``values`` [N] -> [N, K]."""
        cdf = self.component_cdf(np.stack([values, values + 1], axis=1), means)
        return cdf[:, 1] - cdf[:, 0]


def posterior_weights(weights: np.ndarray, probabilities: np.ndarray) -> np.ndarray:
    """Component weights after seeing a channel's value: ``w_k * p_k(value)``, scaled down by
    a power of two so the largest is below 2**WEIGHT_FRAC again (exact integer arithmetic).
    Where every product is zero (a value in all components' far tails) the weights stay."""
    product = weights * probabilities  # < 2**46
    top = product.max(axis=1, keepdims=True)
    # frexp is exact here: the products are integers below 2**53.
    shift = np.maximum(np.frexp(top.astype(np.float64))[1].astype(np.int64) - WEIGHT_FRAC, 0)
    return np.where(top > 0, product >> shift, weights)


class SymbolTable(NamedTuple):
    """What ``C(edge)`` needs for N rows (int64 unless noted): the component weights, and
    per component the sigmoid-table index as ``edge * slope + intercept >> GUARD``."""

    weights: np.ndarray  # [N, K]
    slope: np.ndarray  # [N, K]
    intercept: np.ndarray  # [N, K]
    total_float: np.ndarray  # [N] G at the last edge, as float64 (exact)
    levels: int

    @classmethod
    def build(cls, channel: ChannelParameters, means: np.ndarray, weights: np.ndarray) -> "SymbolTable":
        """The table of ``channel`` with (coupled) ``means`` [N, K] and component ``weights``."""
        # component_cdf's table index at edge e is ((2e - 1) * MEAN_ONE/2 - mean) * inv +
        # 2**(GUARD-1) >> GUARD, plus Z_SPAN: linear in e.
        slope = channel.inverse_scales * MEAN_ONE
        intercept = (1 << (GUARD - 1)) + (Z_SPAN << GUARD) - (MEAN_ONE // 2 + means) * channel.inverse_scales
        total = (weights.sum(axis=1) << CDF_FRAC) + channel.levels * FLOOR
        return cls(weights, slope, intercept, total.astype(np.float64), channel.levels)

    def cumulative(self, rows, edge: np.ndarray) -> np.ndarray:
        """``C(edge)`` for interior edges 1 .. L-1 of the ``rows`` of this table; ``edge``
        [n] or [n, m] (m edges per row). ``C(0) = 0`` and ``C(L) = 2**24`` by definition.
        Encoders and decoders compute C only here."""
        single = edge.ndim == 1
        e = edge[:, :, None] if not single else edge[:, None]
        slope, intercept = self.slope[rows], self.intercept[rows]
        if not single:
            slope, intercept = slope[:, None, :], intercept[:, None, :]
        index = (e * slope + intercept) >> GUARD
        np.minimum(index, 2 * Z_SPAN, out=index)
        np.maximum(index, 0, out=index)
        table = _tables()[0]
        weights = self.weights[rows]
        if single:
            g = np.einsum("ij,ij->i", table[index], weights) + edge * FLOOR
            total = self.total_float[rows]
        else:
            g = np.einsum("imj,ij->im", table[index], weights) + edge * FLOOR
            total = self.total_float[rows][:, None]
        # float64 division and product of exact integers (correctly rounded, so identical on
        # every machine); g >= 0, so truncation is the floor
        return edge + (g / total * float(SYMBOL_TOTAL - self.levels)).astype(np.int64)

    def interval(self, values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(left cumulative, frequency) of ``values`` [N] (0 .. L-1), all rows."""
        top = self.levels - 1
        everything = slice(None)
        left = np.where(values == 0, 0, self.cumulative(everything, np.maximum(values, 1)))
        right = np.where(values == top, SYMBOL_TOTAL, self.cumulative(everything, np.minimum(values + 1, top)))
        return left, right - left

    def search(self, rows, quantile: np.ndarray, arity_bits: int = 1) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The value v of each row with ``C(v) <= quantile < C(v + 1)``: (v, C(v), C(v + 1)).

        ``arity_bits`` k: each round evaluates C at 2**k - 1 points per row (k = 1 is a
        binary search; a few rows are faster with wider rounds, many with narrow ones)."""
        n = len(quantile)
        bits = self.levels.bit_length() - 1
        low = np.zeros(n, dtype=np.int64)
        c_low = np.zeros(n, dtype=np.int64)
        c_high = np.full(n, SYMBOL_TOTAL, dtype=np.int64)
        done = 0
        while done < bits:
            k = min(arity_bits, bits - done)
            step = self.levels >> (done + k)
            if k == 1:
                mid = low + step
                c_mid = self.cumulative(rows, mid)
                right = c_mid <= quantile
                low = np.where(right, mid, low)
                c_low = np.where(right, c_mid, c_low)
                c_high = np.where(right, c_high, c_mid)
            else:
                points = low[:, None] + step * np.arange(1, 1 << k, dtype=np.int64)[None, :]
                c_points = self.cumulative(rows, points)
                below = (c_points <= quantile[:, None]).sum(axis=1)  # C is increasing
                padded = np.concatenate([c_low[:, None], c_points, c_high[:, None]], axis=1)
                c_low = np.take_along_axis(padded, below[:, None], 1)[:, 0]
                c_high = np.take_along_axis(padded, below[:, None] + 1, 1)[:, 0]
                low = low + below * step
            done += k
        return low, c_low, c_high


class ExactMixture:
    """Turns integer head outputs into per-channel parameters and binary coding decisions
    over values 0 .. 2**bits - 1 (8 bits for pixels)."""

    def __init__(self, layout: MixtureLayout, bits: int = BITS):
        self.layout = layout
        self.bits = bits
        self.levels = 1 << bits

    def channel_parameters(self, head: np.ndarray, offsets: np.ndarray | None = None) -> tuple[np.ndarray, list[ChannelParameters]]:
        """``head``: int64 [N, layout.size] -> (prior component weights [N, K], one
        :class:`ChannelParameters` per channel). ``offsets`` [N] (2**-13 units) are
        subtracted from every mean: the coded value is then relative to a per-row origin
        (latents coded in a window, see :mod:`neuralzip.exact.latent`)."""
        _, inverse_scale, weight_table, tanh, _ = _tables()
        k, c = self.layout.mixtures, self.layout.channels
        head = np.asarray(head, dtype=np.int64)
        logits = head[:, :k]
        weights = weight_table[np.minimum(logits.max(axis=1, keepdims=True) - logits, WEIGHT_SPAN)]
        couplings_at = k + 2 * c * k
        out = []
        for channel in range(c):
            mean = head[:, k + channel * k : k + (channel + 1) * k]
            log_scale = head[:, k + c * k + channel * k : k + c * k + (channel + 1) * k]
            inverse = inverse_scale[_clip(log_scale, LOG_SCALE_LOW, LOG_SCALE_HIGH) - LOG_SCALE_LOW]
            pairs = [couplings_at + pair_index(channel, j) * k for j in range(channel)]
            couplings = (np.stack([tanh[_clip(head[:, p : p + k], -TANH_SPAN, TANH_SPAN) + TANH_SPAN] for p in pairs], axis=1)
                         if pairs else np.zeros((len(head), 0, k), dtype=np.int64))
            means = (mean + ACT_ONE) * 255
            if offsets is not None:
                means = means - np.asarray(offsets, dtype=np.int64)[:, None]
            out.append(ChannelParameters(means, inverse, couplings, self.levels))
        return weights, out

    # ---- encoder ---------------------------------------------------------------------------
    def decisions(self, head: np.ndarray, values: np.ndarray, offsets: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """All binary decisions coding ``values`` uint8 [N, c] under ``head`` [N, size]
        (c <= C: the first c channels, e.g. 1 for a grey image).

        Channels are coded in order, each under the mixture whose component weights are the
        posterior given the earlier channels (the joint mixture of PixelCNN++ factorised
        exactly). Returns (bits, left frequencies), each int64 [N, C, 8], in decoding order:
        channel by channel, most significant decision first."""
        values = np.asarray(values, dtype=np.int64)
        n, c = values.shape
        bits = np.zeros((n, c, self.bits), dtype=np.int64)
        frequencies = np.zeros((n, c, self.bits), dtype=np.int64)
        width = self.levels >> np.arange(self.bits)  # interval width at each depth
        weights, channels = self.channel_parameters(head, offsets)
        for channel, params in enumerate(channels[:c]):
            v = values[:, channel : channel + 1]
            means = params.coupled_means(values[:, :channel])
            mids = (v // width) * width + width // 2
            g_mid = params.cumulative(mids, means, weights)
            g_low = np.zeros(n, dtype=np.int64)
            g_high = params.cumulative(np.full((n, 1), self.levels), means, weights)[:, 0]
            b = (v >= mids).astype(np.int64)
            for d in range(self.bits):
                frequencies[:, channel, d] = binary_frequency(g_mid[:, d] - g_low, g_high - g_mid[:, d])
                g_low = np.where(b[:, d] == 1, g_mid[:, d], g_low)
                g_high = np.where(b[:, d] == 1, g_high, g_mid[:, d])
            bits[:, channel] = b
            if channel + 1 < c:
                weights = posterior_weights(weights, params.bin_probabilities(values[:, channel], means))
        return bits, frequencies

    # ---- decoder ---------------------------------------------------------------------------
    def decode_pixel(self, head: np.ndarray, decode_bit, channels_coded: int | None = None,
                     offsets: np.ndarray | None = None) -> np.ndarray:
        """Decode one pixel for N streams: its first ``channels_coded`` channels (default all).
        ``decode_bit(left_frequency)`` pops one bit per stream. Returns uint8 values [N, c]."""
        n = len(head)
        c = channels_coded or self.layout.channels
        values = np.zeros((n, c), dtype=np.int64)
        weights, channels = self.channel_parameters(head, offsets)
        for channel, params in enumerate(channels[:c]):
            means = params.coupled_means(values[:, :channel])
            values[:, channel] = self.search(params, means, weights, decode_bit)
            if channel + 1 < c:
                weights = posterior_weights(weights, params.bin_probabilities(values[:, channel], means))
        return values.astype(np.uint8) if self.levels <= 256 else values

    def search(self, params: ChannelParameters, means: np.ndarray, weights: np.ndarray, decode_bit) -> np.ndarray:
        """Decode one channel's values (N streams) by the binary search of :meth:`decisions`."""
        n = len(means)
        low = np.zeros(n, dtype=np.int64)
        g_low = np.zeros(n, dtype=np.int64)
        g_high = params.cumulative(np.full((n, 1), self.levels), means, weights)[:, 0]
        for d in range(self.bits):
            mid = low + (self.levels >> (d + 1))
            g_mid = params.cumulative(mid[:, None], means, weights)[:, 0]
            bit = decode_bit(binary_frequency(g_mid - g_low, g_high - g_mid))
            low = np.where(bit == 1, mid, low)
            g_low = np.where(bit == 1, g_mid, g_low)
            g_high = np.where(bit == 1, g_high, g_mid)
        return low

    def code_length_bits(self, frequencies: np.ndarray, bits: np.ndarray) -> np.ndarray:
        """Ideal code length (bits) per leading index of ``frequencies``/``bits`` [N, ...]."""
        f = np.where(bits == 0, frequencies, (1 << 24) - frequencies).astype(np.float64)
        return (24.0 - np.log2(f)).reshape(len(f), -1).sum(axis=1)
