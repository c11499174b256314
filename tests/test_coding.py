"""The entropy-coding layer: exact round trips, the information bound, the batch decoder."""

import pytest
import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from neuralzip import coding


def _table_and_symbols(seed: int, n: int, k: int, skew: float):
    rng = np.random.default_rng(seed)
    p = rng.random((n, k)) ** skew
    p[rng.random((n, k)) < 0.2] = 0.0  # zero-probability symbols must still be codable
    p[:, 0] += 1e-9
    f = coding.frequencies_from_probabilities(p)
    symbols = np.array([rng.choice(k, p=row / row.sum()) for row in f.astype(np.float64)], dtype=np.int64)
    return p, f, symbols


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), n=st.integers(0, 400), k=st.integers(1, 300), skew=st.floats(0.2, 8.0))
def test_round_trip_and_information_bound(seed, n, k, skew):
    _, f, symbols = _table_and_symbols(seed, n, k, skew)
    assert np.all(f >= 1) and np.all(f.sum(axis=1) == coding.TOTAL)
    words = coding.encode(symbols, f)
    decoded, rest = coding.decode(words, f)
    assert np.array_equal(decoded, symbols)
    assert len(rest) == 0
    ideal = coding.information_bits(symbols, f)
    assert 32 * len(words) <= ideal * 1.001 + 64


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), k=st.integers(1, 50))
def test_frequencies_are_deterministic_and_ordered(seed, k):
    rng = np.random.default_rng(seed)
    p = rng.random((20, k))
    f1 = coding.frequencies_from_probabilities(p)
    f2 = coding.frequencies_from_probabilities(p.copy())
    assert np.array_equal(f1, f2)
    # a more probable symbol never gets fewer counts
    order = np.argsort(p, axis=1)
    assert np.all(np.diff(np.take_along_axis(f1, order, 1), axis=1) >= -1)


def test_frequencies_reject_bad_tables():
    import pytest

    for bad in (np.array([[0.0, 0.0]]), np.array([[np.nan, 1.0]]), np.array([[-1.0, 2.0]])):
        with pytest.raises(coding.CodingError):
            coding.frequencies_from_probabilities(bad)


@settings(max_examples=20, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), streams=st.integers(1, 12))
def test_batch_decoder_matches_constriction(seed, streams):
    rng = np.random.default_rng(seed)
    data = []
    for _ in range(streams):
        n = int(rng.integers(0, 60))
        k = int(rng.integers(2, 6))
        _, f, symbols = _table_and_symbols(int(rng.integers(0, 2**31)), n, k, 3.0)
        data.append((coding.encode(symbols, f), coding.cumulative_from_frequencies(f), symbols))
    decoder = coding.BatchAnsDecoder([w for w, _, _ in data])
    longest = max(len(s) for _, _, s in data)
    for t in range(longest):
        active = np.array([t < len(s) for _, _, s in data])
        k = max(c.shape[1] for _, c, _ in data)
        cum = np.full((streams, k), coding.TOTAL, dtype=np.int64)
        for i, (_, c, s) in enumerate(data):
            if t < len(s):
                cum[i, : c.shape[1]] = c[t]
            else:
                cum[i, :2] = [0, 1]
        got = decoder.decode(cum, active)
        for i, (_, _, s) in enumerate(data):
            if t < len(s):
                assert got[i] == s[t]
    assert np.all(decoder.exhausted()) and np.all(decoder.remaining_words() == 0)


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), streams=st.integers(1, 6))
def test_batch_encoder_writes_constriction_streams(seed, streams):
    """Pushing intervals (with some streams idle at some steps) gives, word for word, the
    stream constriction writes for the same symbols and tables."""
    rng = np.random.default_rng(seed)
    length = int(rng.integers(0, 120))
    k = int(rng.integers(2, 7))
    tables = [_table_and_symbols(int(rng.integers(0, 2**31)), length, k, float(rng.uniform(0.3, 6)))[1:] for _ in range(streams)]
    active = rng.random((length, streams)) < 0.8
    encoder = coding.BatchAnsEncoder(streams, capacity=1)  # capacity grows as needed
    for t in range(length - 1, -1, -1):
        left = np.zeros(streams, dtype=np.int64)
        frequency = np.ones(streams, dtype=np.int64)
        for i, (f, symbols) in enumerate(tables):
            cumulative = coding.cumulative_from_frequencies(f[t])
            left[i], frequency[i] = cumulative[symbols[t]], f[t, symbols[t]]
        encoder.push(left, frequency, active[t])
    for i, words in enumerate(encoder.streams()):
        f, symbols = tables[i]
        kept = active[:, i]
        assert np.array_equal(words, coding.encode(symbols[kept], f[kept]))


def test_binary_frequency_is_exact_and_bounded():
    left = np.array([1, 2**49, 5, 1], dtype=np.int64)
    right = np.array([2**49, 1, 5, 1], dtype=np.int64)
    f = coding.binary_frequency(left, right)
    assert np.all((f >= 1) & (f <= coding.TOTAL - 1))
    assert f[2] == f[3] == 1 + (coding.TOTAL - 2) // 2


def test_stream_bytes_round_trip():
    rng = np.random.default_rng(1)
    for _ in range(50):
        words = rng.integers(0, 2**32, size=int(rng.integers(0, 5)), dtype=np.uint64).astype(np.uint32)
        if len(words):
            words[-1] = max(1, int(words[-1]) >> int(rng.integers(0, 32)))
        data = coding.stream_to_bytes(words)
        assert np.array_equal(coding.bytes_to_stream(data), words)


def test_ans_stack_bits_back_identity():
    """pop with a model then push the same symbols back gives the identical stream."""
    stack = coding.AnsStack.seeded(8, seed=123)
    before = stack.words().copy()
    f = coding.frequencies_from_probabilities(np.random.default_rng(0).random((10, 7)))
    popped = stack.pop(f)
    stack.push(popped, f)
    assert np.array_equal(stack.words(), before)


@pytest.mark.parametrize("accelerated", [True, False])
def test_sealed_streams_match_constriction_and_give_the_seal_back(accelerated, monkeypatch):
    """A stream started from a 32-bit seal is constriction's AnsCoder([seal]) receiving the
    same pushes; popping everything leaves the seal (0: the plain empty start)."""
    from neuralzip.coding import BatchAnsDecoder, BatchAnsEncoder, BatchAnsStack
    from neuralzip.exact import kernels

    if not accelerated:
        monkeypatch.setattr(kernels, "ans_kernel", lambda: None)
    rng = np.random.default_rng(3)
    seals = np.array([0, 1, 12345, 2**32 - 1, 2**31 + 7], dtype=np.uint32)
    lengths = np.array([0, 1, 3, 40, 200])
    n, longest = len(seals), int(lengths.max())
    frequency = rng.integers(1, 2**22, (n, longest)).astype(np.int32)
    left = (rng.integers(0, 2**24, (n, longest)) % (2**24 - frequency)).astype(np.int32)
    encoder = BatchAnsEncoder(n, seals=seals)
    encoder.push_sequences(left, frequency, lengths)
    streams = encoder.streams()
    stack = BatchAnsStack([np.array([seal], np.uint32) if seal else np.zeros(0, np.uint32) for seal in seals])
    stack.push_sequences(np.arange(n), left, frequency, lengths)  # constriction's AnsCoder([seal]), tested above
    assert all(np.array_equal(a, b) for a, b in zip(streams, stack.streams()))
    decoder = BatchAnsDecoder(streams)
    for k in range(longest):
        active = k < lengths
        quantile = decoder.quantiles()
        inside = (quantile >= left[:, k]) & (quantile < left[:, k] + frequency[:, k])
        assert inside[active].all()
        decoder.advance(left[:, k], frequency[:, k], active)
    assert decoder.seals().tolist() == seals.astype(np.int64).tolist()
    assert decoder.exhausted().tolist() == (seals == 0).tolist()
