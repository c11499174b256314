"""Exact coding of integer latents under a discretized logistic mixture with unbounded
support (the integer twin of :func:`neuralzip.distributions.latent_log_likelihood`).

Each latent is coded in a window of 2**bits values (256 by default) placed around the mean
of its heaviest component (origin ``c``, window ``[c, c + 2**bits - 1]``) with the exact
integer cumulative ``G`` of :class:`~neuralzip.exact.mixture.ExactMixture`; the window's
edge bins hold the whole tails. A latent in an edge bin is followed by an escape: its
distance beyond the window, Elias-gamma coded with uniform bits. So every integer codes
(never a crash, never a wrong value), and a latent inside the window costs its model
probability.

Two ways to code the value in the window, for two kinds of stream:

* **as one symbol** (:meth:`ExactLatentPrior.symbols`, :meth:`~ExactLatentPrior.decode_symbols`),
  for many independent streams decoded together (the flow, one stream per tile), with the
  one-symbol cumulative ``C`` of :class:`~neuralzip.exact.mixture.SymbolTable` (the routine
  the local codec's pixels use too). Encoding needs ``C`` at two edges; decoding finds the
  value by a binary search on ``C`` and pops once;
* **as ``bits`` binary decisions** (:meth:`~ExactLatentPrior.decisions`,
  :meth:`~ExactLatentPrior.decode`), for one stack that pops many latents in a row (bits-back
  coding): a whole level is popped depth by depth, one vectorised pop per depth.

Parameter rows are ``[logits (K) | means (K) | log_scales (K)]`` in fixed point
(2**-12), means in units of 127.5 latent steps, as the float model's.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from ..coding import PRECISION, TOTAL
from ..distributions import MixtureLayout
from .fixedpoint import ACT_ONE
from .mixture import BITS, MEAN_ONE, ChannelParameters, ExactMixture, SymbolTable

HALF = TOTAL // 2  # a uniform binary decision
ESCAPE_LIMIT = 1 << 40  # latents this far outside their window are a bug


class PreparedRows(NamedTuple):
    """Per-row tables of :meth:`ExactLatentPrior.prepare`."""

    origin: np.ndarray  # [N] window origin (int64)
    weights: np.ndarray  # [N, K] component weights (int64)
    channel: ChannelParameters
    table: SymbolTable  # the one-symbol cumulative C over the window


class ExactLatentPrior:
    """``window_bits``: the window holds 2**window_bits values (8 by default)."""

    def __init__(self, mixtures: int, window_bits: int = BITS):
        self.mixtures = mixtures
        self.bits = window_bits
        self.levels = 1 << window_bits
        self.mixture = ExactMixture(MixtureLayout(1, mixtures), window_bits)

    def origins(self, params: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(window origin c, mean offsets for ExactMixture) per row of ``params`` [N, 3K]."""
        k = self.mixtures
        params = np.asarray(params, dtype=np.int64)
        best = np.argmax(params[:, :k], axis=1)  # heaviest component (first on ties)
        mean = np.take_along_axis(params[:, k : 2 * k], best[:, None], 1)[:, 0]
        centre = (mean * 255 + MEAN_ONE // 2) >> 13  # nearest integer to the mean, in latent steps
        origin = centre - self.levels // 2
        # ExactMixture places value 0 at mean (-1 in its units); latents place it at the origin
        offsets = ACT_ONE * 255 + origin * MEAN_ONE
        return origin, offsets

    # ---- encoder ---------------------------------------------------------------------------
    def decisions(self, params: np.ndarray, z: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Decisions coding latents ``z`` [N] in row order: (element index, bit, left
        frequency), each 1-D, sorted by element then decoding order."""
        z = np.asarray(z, dtype=np.int64)
        origin, offsets = self.origins(params)
        value = np.clip(z - origin, 0, self.levels - 1)
        bits, frequencies = self.mixture.decisions(params, value[:, None], offsets)
        n = len(z)
        element = np.repeat(np.arange(n), self.bits)
        order = np.tile(np.arange(self.bits), n)
        bits, frequencies = bits.reshape(-1), frequencies.reshape(-1)
        top = self.levels - 1
        escape = np.where(value == 0, origin - z, np.where(value == top, z - origin - top, -1))
        rows = np.nonzero(escape >= 0)[0]
        if len(rows):
            if np.any(escape[rows] >= ESCAPE_LIMIT):
                raise ValueError("a latent lies absurdly far outside its window")
            e_bits, e_element, e_order = _elias_gamma(escape[rows] + 1, rows)
            element = np.concatenate([element, e_element])
            order = np.concatenate([order, e_order + self.bits])
            bits = np.concatenate([bits, e_bits])
            frequencies = np.concatenate([frequencies, np.full(len(e_bits), HALF)])
        sequence = np.lexsort((order, element))
        return element[sequence], bits[sequence], frequencies[sequence]

    def pop_order(self, element: np.ndarray, bits: np.ndarray, frequencies: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Reorder :meth:`decisions` into the order :meth:`decode` consumes them when all
        rows are decoded together (window depth by depth, then escapes round by round)."""
        n = int(element.max(initial=-1)) + 1
        counts = np.bincount(element, minlength=n)
        first = np.concatenate([[0], np.cumsum(counts)[:-1]])
        within = np.arange(len(element)) - first[element]
        unary = (counts[element] - self.bits + 1) // 2  # Elias-gamma: n-1 zeros and a one, then n-1 bits
        phase = np.where(within < self.bits, 0, np.where(within < self.bits + unary, 1, 2))
        round_ = np.where(phase == 0, within, np.where(phase == 1, within - self.bits, within - self.bits - unary))
        order = np.lexsort((element, round_, phase))
        return bits[order], frequencies[order]

    def code_length_bits(self, element: np.ndarray, bits: np.ndarray, frequencies: np.ndarray, n: int) -> np.ndarray:
        """Ideal code length (bits) of each of the ``n`` elements."""
        f = np.where(bits == 0, frequencies, TOTAL - frequencies).astype(np.float64)
        return np.bincount(element, weights=24.0 - np.log2(f), minlength=n)

    # ---- one symbol per latent ---------------------------------------------------------------
    def symbols(self, params: np.ndarray, z: np.ndarray) -> tuple[np.ndarray, np.ndarray, tuple]:
        """The symbols coding latents ``z`` [N] under ``params`` [N, 3K]: (left cumulative
        [N], frequency [N], escapes). Escapes are (row, bit, order) arrays of the uniform
        bits that follow a latent in an edge bin, sorted by row then order."""
        z = np.asarray(z, dtype=np.int64)
        prepared = self.prepare(params)
        origin = prepared.origin
        value = np.clip(z - origin, 0, self.levels - 1)
        left, frequency = prepared.table.interval(value)
        top = self.levels - 1
        escape = np.where(value == 0, origin - z, np.where(value == top, z - origin - top, -1))
        rows = np.nonzero(escape >= 0)[0]
        if len(rows) and np.any(escape[rows] >= ESCAPE_LIMIT):
            raise ValueError("a latent lies absurdly far outside its window")
        e_bits, e_row, e_order = _elias_gamma(escape[rows] + 1, rows)
        return left, frequency, (e_row, e_bits, e_order)

    def symbol_bits(self, frequency: np.ndarray, escapes: tuple, n: int) -> np.ndarray:
        """Code length (bits) of each of the ``n`` latents from :meth:`symbols`'s output."""
        escape_bits = np.bincount(escapes[0], minlength=n).astype(np.float64)
        return PRECISION - np.log2(frequency.astype(np.float64)) + escape_bits

    def decode_symbols(self, prepared: "PreparedRows", rows, decoder, arity_bits: int = 1,
                       tabulated: np.ndarray | None = None) -> np.ndarray:
        """Pop one latent per stream of ``decoder`` (a :class:`~neuralzip.coding.BatchAnsDecoder`)
        under the ``rows`` of :meth:`prepare`'s parameters, escapes included. ``arity_bits``:
        the search's round width (:meth:`SymbolTable.search`); ``tabulated``: the rows'
        :meth:`tabulate` (a lookup instead of a search). Every way gives the same values."""
        if tabulated is None:
            value, c_low, c_high = prepared.table.search(rows, decoder.quantiles(), arity_bits)
        else:
            value = (tabulated <= decoder.quantiles()[:, None]).sum(axis=1) - 1  # C is increasing
            c_low = np.take_along_axis(tabulated, value[:, None], 1)[:, 0]
            c_high = np.take_along_axis(tabulated, value[:, None] + 1, 1)[:, 0]
        decoder.advance(c_low, c_high - c_low)
        return self._escaped(prepared.origin[rows], value, decoder.decode_binary)

    def _escaped(self, origin: np.ndarray, value: np.ndarray, decode_bit) -> np.ndarray:
        """Latents from window values, reading the escape of those in an edge bin."""
        low, high = value == 0, value == self.levels - 1
        z = origin + value
        escaping = low | high
        if np.any(escaping):
            extra = _decode_elias_gamma(decode_bit, escaping) - 1
            z = np.where(low, origin - extra, np.where(high, origin + self.levels - 1 + extra, z))
        return z

    def tabulate(self, prepared: "PreparedRows", rows) -> np.ndarray:
        """The whole one-symbol cumulative of the ``rows`` [n, 2**bits + 1]: ``C(0) = 0``,
        the interior edges as :meth:`SymbolTable.cumulative` computes them, ``C(L) =
        2**24``. For decoders that pop many latents of a few streams one after another
        (8 KiB per row: for few rows only)."""
        n = len(prepared.origin[rows])
        interior = np.broadcast_to(np.arange(1, self.levels, dtype=np.int64), (n, self.levels - 1))
        c = prepared.table.cumulative(rows, np.ascontiguousarray(interior))
        return np.concatenate([np.zeros((n, 1), np.int64), c, np.full((n, 1), TOTAL, np.int64)], axis=1)

    # ---- decoder ---------------------------------------------------------------------------
    def prepare(self, params: np.ndarray) -> "PreparedRows":
        """Everything :meth:`decode_rows` and :meth:`decode_symbols` need, computed once for
        many rows [N, 3K]."""
        origin, offsets = self.origins(params)
        weights, (channel,) = self.mixture.channel_parameters(params, offsets)
        return PreparedRows(origin, weights, channel, SymbolTable.build(channel, channel.means, weights))

    def decode(self, params: np.ndarray, decode_bit) -> np.ndarray:
        """One latent per stream under ``params`` [N, 3K]; ``decode_bit(left_frequency,
        active)`` pops one bit from each active stream."""
        return self.decode_rows(self.prepare(params), slice(None), decode_bit)

    def decode_rows(self, prepared: tuple, rows, decode_bit) -> np.ndarray:
        """Like :meth:`decode` for the ``rows`` of :meth:`prepare`'s parameters."""
        origin, weights, channel = prepared.origin[rows], prepared.weights[rows], prepared.channel.select(rows)
        value = self.mixture.search(channel, channel.means, weights, lambda f: decode_bit(f, None))
        return self._escaped(origin, value, decode_bit)


def _elias_gamma(u: np.ndarray, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Elias-gamma codes of positive integers ``u``: (bits, element, order); per element
    ``n-1`` zeros, a one, then the ``n-1`` bits of u below its top bit, MSB first. Escapes
    are rare, so a plain loop serves."""
    out_bits, out_element, out_order = [], [], []
    for value, row in zip(u.tolist(), rows.tolist()):
        n = value.bit_length()
        code = [0] * (n - 1) + [1] + [(value >> i) & 1 for i in range(n - 2, -1, -1)]
        out_bits += code
        out_element += [row] * len(code)
        out_order += list(range(len(code)))
    return np.array(out_bits, np.int64), np.array(out_element, np.int64), np.array(out_order, np.int64)


def _decode_elias_gamma(decode_bit, active: np.ndarray) -> np.ndarray:
    n = len(active)
    zeros = np.zeros(n, dtype=np.int64)
    reading = active.copy()
    half = np.full(n, HALF, dtype=np.int64)
    while np.any(reading):
        bit = decode_bit(half, reading)
        zeros = np.where(reading & (bit == 0), zeros + 1, zeros)
        reading = reading & (bit == 0)
        if np.any(zeros > 41):
            raise ValueError("corrupt escape code")
    value = np.where(active, 1, 0).astype(np.int64)
    for step in range(int(zeros.max(initial=0))):
        more = active & (zeros > step)
        bit = decode_bit(half, more)
        value = np.where(more, (value << 1) | bit, value)
    return value
