"""Integer discrete flow: a bijection on integers, exact both ways, any batch or thread count."""

import math

import numpy as np
import torch

from neuralzip import coding
from neuralzip.codecs.base import ImageShape, PayloadError
from neuralzip.distributions import latent_log_likelihood
from neuralzip.exact.fixedpoint import ACT_ONE
from neuralzip.exact.latent import ExactLatentPrior
from neuralzip.images import PixelImage
from neuralzip.nets.flow import squeeze, unsqueeze

from .conftest import smooth_image


def _shapes(images):
    return [ImageShape(im.mode, im.width, im.height) for im in images]


def test_squeeze_is_a_bijection():
    x = torch.arange(2 * 3 * 8 * 8).reshape(2, 3, 8, 8).double()
    assert torch.equal(unsqueeze(squeeze(x)), x)


def test_round_trip_odd_sizes(tiny_flow):
    images = [PixelImage("RGB", smooth_image(h, w, seed=h + w)) for h, w in [(32, 32), (1, 1), (33, 17), (40, 64)]]
    encoded = tiny_flow.encode(images)
    decoded = tiny_flow.decode(encoded.payloads, _shapes(images))
    for original, image, payload, bits in zip(images, decoded, encoded.payloads, encoded.nll_bits):
        assert np.array_equal(original.pixels, image.pixels)
        assert bits / 8 <= len(payload) <= bits / 8 + 8 * (-(-original.height // 32) * -(-original.width // 32))


def test_batch_and_threads_do_not_change_anything(tiny_flow):
    images = [PixelImage("RGB", smooth_image(32, 32, seed=s)) for s in range(4)]
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        together = tiny_flow.encode(images).payloads
        torch.set_num_threads(2)
        alone = [tiny_flow.encode([im]).payloads[0] for im in images]
        torch.set_num_threads(1)
        decoded = tiny_flow.decode(together[:1], _shapes(images[:1])) + tiny_flow.decode(together[1:], _shapes(images[1:]))
    finally:
        torch.set_num_threads(threads)
    assert together == alone
    assert all(np.array_equal(a.pixels, b.pixels) for a, b in zip(images, decoded))


def test_corrupt_payloads_fail_alone(tiny_flow):
    images = [PixelImage("RGB", smooth_image(32, 32, seed=s)) for s in range(3)]
    payloads = tiny_flow.encode(images).payloads
    broken = bytearray(payloads[1])
    broken[len(broken) // 2] ^= 0x40
    results = tiny_flow.decode_each([payloads[0], bytes(broken), payloads[2]], _shapes(images))
    assert np.array_equal(results[0].pixels, images[0].pixels) and np.array_equal(results[2].pixels, images[2].pixels)
    assert isinstance(results[1], PayloadError) or not np.array_equal(results[1].pixels, images[1].pixels)


def test_latent_symbols_code_any_integer_exactly_on_many_streams():
    """The one-symbol coding (the flow's): every integer, escapes included, round-trips
    through independent streams, and a latent in its window costs its model probability."""
    k, streams, per_stream = 3, 16, 150
    n = streams * per_stream
    rng = np.random.default_rng(1)
    params = np.concatenate([rng.normal(0, 1, (n, k)), rng.uniform(-1, 1, (n, k)), rng.uniform(-5, -1, (n, k))], axis=1)
    params = np.rint(params * ACT_ONE).astype(np.int64)
    z = np.rint(params[:, k] / ACT_ONE * 127.5 + rng.normal(0, 4, n)).astype(np.int64)
    z[::37] += rng.integers(-10**6, 10**6, len(z[::37]))  # far outside every window: escapes
    prior = ExactLatentPrior(k)
    left, frequency, escapes = prior.symbols(params, z)
    assert np.all(frequency >= 1) and np.all(left + frequency <= coding.TOTAL)
    escape_row, escape_bit, _ = escapes
    # rows are element-major: row e * streams + s is element e of stream s
    encoder = coding.BatchAnsEncoder(streams)
    for e in range(per_stream - 1, -1, -1):
        rows = np.arange(e * streams, (e + 1) * streams)
        for s, row in enumerate(rows):
            for bit in escape_bit[escape_row == row][::-1]:
                active = np.arange(streams) == s
                encoder.push_binary(np.full(streams, bit), np.full(streams, coding.TOTAL // 2), active)
        encoder.push(left[rows], frequency[rows])
    decoder = coding.BatchAnsDecoder(encoder.streams())
    prepared = prior.prepare(params)
    out = np.concatenate([prior.decode_symbols(prepared, slice(e * streams, (e + 1) * streams), decoder)
                          for e in range(per_stream)])
    assert np.array_equal(out, z) and np.all(decoder.exhausted())
    origin, _ = prior.origins(params)
    inside = np.nonzero((z - origin > 0) & (z - origin < 255))[0]
    assert len(inside) > n // 2
    lengths = prior.symbol_bits(frequency, escapes, n)[inside]
    p = torch.from_numpy(params[inside] / ACT_ONE).float().T.reshape(1, 3 * k, len(inside), 1)
    ll = latent_log_likelihood(p, torch.from_numpy(z[inside]).float().reshape(1, 1, len(inside), 1), k)[0, 0, :, 0].numpy()
    assert abs(lengths.mean() + ll.mean() / math.log(2)) < 0.01


def test_latent_prior_codes_any_integer_exactly():
    k, n = 3, 2000
    rng = np.random.default_rng(0)
    params = np.concatenate([rng.normal(0, 1, (n, k)), rng.uniform(-1, 1, (n, k)), rng.uniform(-5, -2, (n, k))], axis=1)
    params = np.rint(params * ACT_ONE).astype(np.int64)
    z = np.rint(params[:, k] / ACT_ONE * 127.5 + rng.normal(0, 3, n)).astype(np.int64)
    z[:30] += rng.integers(-10**6, 10**6, 30)  # far outside every window: escapes
    prior = ExactLatentPrior(k)
    element, bits, freqs = prior.decisions(params, z)
    groups = np.array_split(np.arange(n), 20)
    streams = [coding.encode(bits[np.isin(element, g)], np.stack([freqs[np.isin(element, g)], coding.TOTAL - freqs[np.isin(element, g)]], 1))
               for g in groups]
    decoder = coding.BatchAnsDecoder(streams)
    out = np.zeros(n, dtype=np.int64)
    for j in range(len(groups[0])):
        rows = np.array([g[j] for g in groups])
        out[rows] = prior.decode(params[rows], lambda f, active: decoder.decode_binary(f, active))
    assert np.array_equal(out, z) and np.all(decoder.exhausted())
    # inside its window a latent costs exactly what the float model says
    origin, _ = prior.origins(params)
    inside = np.nonzero((z - origin > 0) & (z - origin < 255))[0]
    assert len(inside) > n // 2
    lengths = prior.code_length_bits(element, bits, freqs, n)[inside]
    p = torch.from_numpy(params[inside] / ACT_ONE).float().T.reshape(1, 3 * k, len(inside), 1)
    ll = latent_log_likelihood(p, torch.from_numpy(z[inside]).float().reshape(1, 1, len(inside), 1), k)[0, 0, :, 0].numpy()
    assert abs(lengths.mean() + ll.mean() / math.log(2)) < 0.01
