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


def _pushed_words(left, frequency, lengths, accelerated: bool, monkeypatch):
    """Streams of an encoder that pushed one symbol per stream, then the sequences."""
    monkeypatch.setenv("NZIP_NO_KERNEL", "0" if accelerated else "1")
    encoder = BatchAnsEncoder(len(lengths), capacity=1)  # capacity 1: the word buffer must grow
    encoder.push(np.full(len(lengths), 5), np.full(len(lengths), 1000))  # a state not at its start
    encoder.push_sequences(left, frequency, lengths)
    return encoder.streams()


def test_ans_push_sequences_matches_numpy(monkeypatch):
    rng = np.random.default_rng(7)
    n, width = 300, 40
    frequency = np.where(rng.random((n, width)) < 0.3, rng.integers(1, 16, (n, width)),
                         rng.integers(1, 1 << 24, (n, width))).astype(np.int32)  # tiny ones flush every push
    left = (rng.random((n, width)) * ((1 << 24) - frequency)).astype(np.int32)
    lengths = rng.integers(0, width + 1, n)
    accelerated = _pushed_words(left, frequency, lengths, True, monkeypatch)
    reference = _pushed_words(left, frequency, lengths, False, monkeypatch)
    assert sum(len(s) for s in accelerated) > 3 * n  # words were emitted, not only the states
    assert all(np.array_equal(a, b) for a, b in zip(accelerated, reference))
    decoder = BatchAnsDecoder(accelerated)  # and they pop every symbol in order, then the first push
    for k in range(width):
        active = k < lengths
        quantile = decoder.quantiles()
        assert np.all((quantile >= left[:, k]) & (quantile < left[:, k] + frequency[:, k]) | ~active)
        decoder.advance(left[:, k], frequency[:, k], active)
    assert np.all((decoder.quantiles() >= 5) & (decoder.quantiles() < 1005))


def test_ans_push_sequences_rejects_bad_intervals(monkeypatch):
    from neuralzip.coding import CodingError

    monkeypatch.setenv("NZIP_NO_KERNEL", "0")
    encoder = BatchAnsEncoder(2)
    with pytest.raises(CodingError):
        encoder.push_sequences(np.array([[0, 1 << 24]], dtype=np.int32).repeat(2, 0),
                               np.array([[1, 1]], dtype=np.int32).repeat(2, 0), np.array([2, 2]))


@pytest.mark.parametrize("low,high", [(0.0, 255.0), (-float(1 << 20), float(1 << 20))])
def test_requantisation_matches_numpy(low, high):
    from neuralzip.exact.kernels import requantizer

    rng = np.random.default_rng(int(high))
    acc = rng.integers(-(1 << 24) + 1, 1 << 24, (333, 257)).astype(np.float32)  # odd width: the scalar tail too
    acc[:3] = np.float32((1 << 24) - 1)
    acc[3:6] = np.float32(-(1 << 24) + 1)
    acc[6:9] = 0.0
    multiplier = (rng.random(257) * 10.0 ** rng.uniform(-7, 1, 257)).astype(np.float32)
    offset = rng.normal(0, 300, 257).astype(np.float32)
    offset[:20] = np.float32(0.5)  # exact integers plus one half: floor at ties
    expected = np.clip(np.floor(acc * multiplier + offset), low, high)
    requantizer()(acc, multiplier, offset, low, high)
    assert np.array_equal(acc, expected)
    assert len(np.unique(expected)) > 100 and (expected == low).any() and (expected == high).any()


@pytest.mark.parametrize("with_branch", [False, True])
def test_residual_step_matches_numpy(with_branch, monkeypatch):
    from neuralzip.exact.kernels import residual_stepper
    from neuralzip.exact.local import ACTIVATION_TOP, STREAM_LIMIT, residual_step

    rng = np.random.default_rng(7)
    stream = rng.integers(-STREAM_LIMIT, STREAM_LIMIT + 1, (211, 131)).astype(np.float32)  # odd width: scalar tail
    branch = rng.integers(-STREAM_LIMIT, STREAM_LIMIT + 1, stream.shape).astype(np.float32) if with_branch else None
    rescale = (rng.random(131) * 10.0 ** rng.uniform(-6, -2, 131)).astype(np.float32)
    rescale[:5] = np.float32(2.0 ** -10)  # exact products plus one half: floor at ties
    assert residual_stepper() is not None
    accelerated_stream = stream.copy()
    accelerated = residual_step(accelerated_stream, branch, rescale)
    monkeypatch.setenv("NZIP_NO_KERNEL", "1")
    numpy_stream = stream.copy()
    expected = residual_step(numpy_stream, branch, rescale)
    assert np.array_equal(accelerated_stream, numpy_stream) and np.array_equal(accelerated, expected)
    assert (expected == 0).any() and (expected == ACTIVATION_TOP).any() and len(np.unique(expected)) > 100
    if with_branch:
        assert (numpy_stream == STREAM_LIMIT).any() and (numpy_stream == -STREAM_LIMIT).any()
        assert not np.array_equal(numpy_stream, stream)


def test_a_library_built_from_another_source_is_not_used(monkeypatch):
    """The C tables' layout is part of the library's ABI: a stale build (an editable install
    whose library predates _mixture.c) must fall back to numpy, never be fed another layout."""
    from neuralzip.exact import kernels

    load = kernels._library.__wrapped__  # uncached: load the library again
    assert load() is not None
    monkeypatch.setattr(kernels, "ABI_VERSION", kernels.ABI_VERSION + 1)
    assert load() is None


def test_compact_tables_hold_the_same_integers():
    """The C code's half sigmoid table, int32 tables and split inverse scales rebuild
    mixture.py's tables exactly."""
    from neuralzip.exact import kernels
    from neuralzip.exact import mixture as m

    sigmoid, inverse_scale, weight, tanh, _ = m._tables()
    half = kernels.sigmoid_upper_half(sigmoid).astype(np.int64)
    rebuilt = np.concatenate([(1 << m.CDF_FRAC) - half[:0:-1], half])
    assert np.array_equal(rebuilt, sigmoid)
    low, wide = kernels.split_inverse_scales(inverse_scale)
    assert 0 < wide < len(inverse_scale)
    assert np.array_equal(low.astype(np.int64) + np.where(np.arange(len(low)) < wide, 1 << 32, 0), inverse_scale)
    assert np.array_equal(kernels.as_int32(weight), weight) and np.array_equal(kernels.as_int32(tanh), tanh)
    with pytest.raises(ValueError):
        kernels.sigmoid_upper_half(sigmoid + 1)


def _backend_parameters() -> list:
    """Every matrix product backend, skipped where this CPU (or the build) lacks it."""
    from neuralzip.exact.kernels import MATMUL_BACKENDS, matmul_backends

    usable = matmul_backends()
    return [pytest.param(name, marks=pytest.mark.skipif(name not in usable, reason=f"no {name} on this CPU "
                                                         "(or the accelerator is not built)")) for name in MATMUL_BACKENDS]


@pytest.mark.parametrize("backend", _backend_parameters())
@pytest.mark.parametrize("rows, fan_in, width, largest, relu, with_table", [
    (4096, 256, 256, 257, True, False), (4093, 256, 100, 257, False, False), (1, 256, 100, 257, False, False),
    (33, 72, 256, 685, True, True), (17, 40, 7, 256, True, False), (1000, 256, 256, 100, True, False),
    (9, 75, 130, 600, True, True), (7, 3, 1, 5, True, False),
])
def test_accelerated_layer_gives_the_float32_paths_integers(backend, rows, fan_in, width, largest, relu, with_table):
    """Random and extreme inputs (255s, weights at the exact-sum limit, the input layer's
    +-685 weights that need AMX's lo + 256 hi split, tables), odd sizes (an odd fan-in: VNNI's
    pairs padded)."""
    from neuralzip.exact.kernels import matmul_layer, pack_weights, requantizer

    rng = np.random.default_rng(rows)
    if with_table:  # pixel features 2v - 255
        x = (2 * rng.integers(0, 256, (rows, fan_in)) - 255).astype(np.float32)
    else:
        x = rng.integers(0, 256, (rows, fan_in)).astype(np.float32)
    x[0] = 255.0 if not with_table else -255.0
    weight = rng.integers(-largest, largest + 1, (fan_in, width))
    weight[:, 0] = largest  # an extreme column: the largest sum the float32 path allows
    multiplier = (rng.random(width) * 1e-4).astype(np.float32)
    offset = (rng.random(width) * 10 - 5).astype(np.float32)
    low, high = (0.0, 255.0) if relu else (-2.0 ** 20, 2.0 ** 20)
    table = rng.integers(-50000, 50000, (64, width)).astype(np.float32) if with_table else None
    patterns = rng.integers(0, 64, rows) if with_table else None
    expected = x @ weight.astype(np.float32)
    requantizer()(expected, multiplier, offset, low, high, table, patterns)
    got = matmul_layer(backend)(x, pack_weights(weight, backend), multiplier, offset, low, high, table, patterns)
    assert got.dtype == np.float32 and np.array_equal(got, expected)


@pytest.mark.parametrize("backend", [b for b in _backend_parameters() if b.values[0] != "amx"])
@pytest.mark.parametrize("rows, fan_in, width, top, largest, with_table", [
    (4096, 256, 256, 1023, 8200, False), (33, 72, 256, 255, 32767, True), (9, 75, 130, 4095, 7000, False),
])
def test_accelerated_wide_layer_gives_the_float64_paths_integers(backend, rows, fan_in, width, top, largest, with_table):
    """Wide models' layers (inputs up to 2**12, weights up to 2**15, sums up to 2**31): the
    int32 sums of VNNI and AVX2 rounded to float32 equal numpy's float64 sums rounded so,
    then requantised alike (tables whose float32 sum with them rounds included)."""
    from neuralzip.exact.kernels import matmul_layer, pack_weights, requantizer

    rng = np.random.default_rng(rows)
    x = rng.integers(0, top + 1, (rows, fan_in)).astype(np.float32)
    x[0] = top
    weight = rng.integers(-largest, largest + 1, (fan_in, width))
    weight[:, 0] = min(largest, (2**31 - 1) // (fan_in * top))  # the largest sum int32 holds
    assert float(x[0].astype(np.int64) @ weight[:, 0]) > 2**24  # beyond float32's exact integers
    multiplier = (rng.random(width) * 1e-7).astype(np.float32)
    offset = (rng.random(width) * 10 - 5).astype(np.float32)
    table = rng.integers(-2**27, 2**27, (64, width)).astype(np.float32) if with_table else None
    patterns = rng.integers(0, 64, rows) if with_table else None
    expected = (x.astype(np.float64) @ weight.astype(np.float64)).astype(np.float32)
    requantizer()(expected, multiplier, offset, -2.0 ** 20, 2.0 ** 20, table, patterns)
    got = matmul_layer(backend)(x, pack_weights(weight, backend), multiplier, offset, -2.0 ** 20, 2.0 ** 20, table, patterns)
    assert np.array_equal(got, expected)


def test_packed_weights_refuse_another_backends_layer():
    from neuralzip.exact.kernels import matmul_backends, matmul_layer, pack_weights

    weight = np.arange(-6, 6).reshape(4, 3)
    for backend in matmul_backends():
        other = "vnni" if backend != "vnni" else "amx"
        with pytest.raises(ValueError, match="does not match"):
            matmul_layer(backend)(np.ones((2, 4), np.float32), pack_weights(weight, other), np.ones(3, np.float32),
                                  np.zeros(3, np.float32), 0.0, 255.0)
    with pytest.raises(ValueError, match="int16"):
        pack_weights(np.array([[1 << 15]]), "vnni")


@pytest.mark.skipif(not __import__("neuralzip.exact.kernels", fromlist=["x"]).matmul_backends(),
                    reason="no AVX2 on this CPU (or the accelerator is not built)")
@pytest.mark.parametrize("blocks, activation_bits", [(0, 8), (1, 8), (0, 10), (1, 10)])
def test_the_local_codec_writes_the_same_bytes_with_and_without_the_accelerator(blocks, activation_bits, monkeypatch):
    from neuralzip.codecs.base import ImageShape
    from neuralzip.codecs.local import LocalCodec
    from neuralzip.exact import kernels
    from neuralzip.images import PixelImage

    from .conftest import smooth_image, tiny_local_model

    calibration = np.stack([smooth_image(12, 12, seed=s) for s in range(4)])
    tiny_local = LocalCodec.from_float(tiny_local_model(blocks=blocks, activation_bits=activation_bits), calibration)
    images = [PixelImage("RGB", smooth_image(h, w, seed=h)) for h, w in ((1, 1), (9, 14), (40, 33))]
    assert tiny_local.network.layers["hidden"].packed is not None
    accelerated = tiny_local.encode(images).payloads
    monkeypatch.setattr(kernels, "matmul_layer", lambda backend=None: None)
    assert tiny_local.encode(images).payloads == accelerated
    decoded = tiny_local.decode(accelerated, [ImageShape(im.mode, im.width, im.height) for im in images])
    assert all(np.array_equal(a.pixels, b.pixels) for a, b in zip(images, decoded))
