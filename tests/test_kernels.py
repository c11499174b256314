"""The C accelerator of the local codec computes exactly the integers of the numpy definition."""

import numpy as np
import pytest

from neuralzip.coding import BatchAnsDecoder, BatchAnsEncoder
from neuralzip.distributions import MixtureLayout
from neuralzip.exact.kernels import kernel
from neuralzip.exact.mixture import ExactMixture, SymbolTable, posterior_weights

pytestmark = pytest.mark.skipif(kernel(10, 3) is None, reason="C accelerator not built")


def _heads(n: int, layout: MixtureLayout, seed: int) -> np.ndarray:
    """Random heads, a quarter of them at or beyond every table's range (the clamps)."""
    rng = np.random.default_rng(seed)
    head = rng.normal(0, 4096 * 2, (n, layout.size))
    wild = rng.random(n) < 0.25
    head[wild] = rng.choice([-1, 1], (int(wild.sum()), layout.size)) * rng.integers(0, 1 << 22, (int(wild.sum()), layout.size))
    return head.astype(np.int64)


def _numpy_intervals(head, values, layout):
    mixture = ExactMixture(layout)
    weights, channels = mixture.channel_parameters(head)
    left, freq = np.zeros_like(values), np.zeros_like(values)
    for c in range(values.shape[1]):
        means = channels[c].coupled_means(values[:, :c])
        left[:, c], freq[:, c] = SymbolTable.build(channels[c], means, weights).interval(values[:, c])
        if c + 1 < values.shape[1]:
            weights = posterior_weights(weights, channels[c].bin_probabilities(values[:, c], means))
    return left, freq


@pytest.mark.parametrize("mixtures,channels", [(10, 3), (3, 3), (1, 3)])
@pytest.mark.parametrize("coded", [3, 1])
def test_intervals_and_decoding_match_numpy(mixtures, channels, coded):
    layout = MixtureLayout(channels, mixtures)
    rng = np.random.default_rng(mixtures * 10 + coded)
    head = _heads(3000, layout, mixtures)
    values = rng.integers(0, 256, (3000, coded)).astype(np.int64)
    values[:100] = 0
    values[100:200] = 255
    accelerated = kernel(mixtures, channels).intervals(head, values)
    reference = _numpy_intervals(head, values, layout)
    assert np.array_equal(accelerated[0], reference[0]) and np.array_equal(accelerated[1], reference[1])
    # decode the same symbols from 30 streams, 100 pixels each, through the accelerator
    streams = 30
    encoder = BatchAnsEncoder(streams)
    left, freq = reference
    per = len(values) // streams
    order = lambda a: a.reshape(streams, per * coded)  # noqa: E731  row r of stream r // per
    encoder.push_sequences(order(left), order(freq), np.full(streams, per * coded))
    decoder = BatchAnsDecoder(encoder.streams())
    decoded = np.zeros_like(values)
    for k in range(per):
        rows = np.arange(streams) * per + k
        decoded[rows] = kernel(mixtures, channels).decode(head[rows], coded, np.arange(streams), decoder)
    assert np.array_equal(decoded, values)
    assert np.all(decoder.remaining_words() == 0) and np.all(decoder.exhausted())
