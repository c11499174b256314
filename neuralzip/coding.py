"""The entropy-coding layer: integer frequency tables and ANS coding.

This is the only module that talks to ``constriction`` (pinned: its arithmetic is part of the
file format). Everything a codec hands to it is already an exact integer table, so coding is
a pure function of integers and decodes identically everywhere.

Conventions
-----------
* ``PRECISION = 24``: every table is a vector of *frequencies* (positive integers) that sum
  to exactly ``2**24``. Every symbol has at least frequency 1, so every symbol is codable.
* :func:`frequencies_from_probabilities` is the one float -> integer routine. It uses only
  IEEE-754 basic operations (division, multiplication, floor) and sequential sums, so a
  given float table gives the same integers on every machine.
* :func:`binary_frequency` turns an exact integer split ``(left, right)`` into the 24-bit
  frequency of the left branch (codecs that code a value as a walk down a binary tree).
* Streams are constriction ``AnsCoder`` stacks (32-bit words, 64-bit state). Symbols are
  pushed in reverse so that they pop in the given order. :class:`BatchAnsDecoder` pops from
  many independent streams at once with numpy, bit-compatible with constriction's decoder
  (tests check this), which is what makes batched decoding of many files fast.
* :class:`AnsStack` exposes push/pop of a message for bits-back coding: ``pop`` with a
  model samples from the stream, ``push`` gives the bits back.
"""

from __future__ import annotations

import numpy as np

try:
    import constriction
except ImportError as error:  # pragma: no cover - constriction is a hard dependency
    raise ImportError("neuralzip needs constriction==0.5.0 (pip install constriction==0.5.0)") from error

PRECISION = 24
TOTAL = 1 << PRECISION
_CATEGORICAL = constriction.stream.model.Categorical(perfect=False)


class CodingError(Exception):
    """A table or stream that cannot be coded (a bug in a codec, or a corrupt payload)."""


# ---- integer tables -------------------------------------------------------------------------

def frequencies_from_probabilities(probabilities: np.ndarray) -> np.ndarray:
    """Float probability rows -> integer frequencies, every entry >= 1, each row summing to 2**24.

    ``probabilities``: float array [..., K], non-negative, any positive row sum (rows need
    not be normalised). Returns int64 of the same shape.

    Rule: ``f_i = 1 + floor(p_i / S * (2**24 - K))`` with ``S`` the sequential sum of the
    row; the few counts that the floors leave over go to the row's most probable symbol
    (the first one on ties). Only IEEE basic operations are used, so the result is the same
    on every platform for the same input.
    """
    p = np.ascontiguousarray(probabilities, dtype=np.float64)
    k = p.shape[-1]
    if k < 1 or k > TOTAL // 2:
        raise CodingError(f"cannot make a {PRECISION}-bit table for {k} symbols")
    if not np.all(np.isfinite(p)) or np.any(p < 0):
        raise CodingError("probabilities must be finite and non-negative")
    sums = np.cumsum(p, axis=-1)[..., -1:]
    if np.any(sums <= 0):
        raise CodingError("a probability row sums to zero")
    counts = 1 + np.floor(p / sums * float(TOTAL - k)).astype(np.int64)
    deficit = TOTAL - counts.sum(axis=-1)
    top = np.argmax(p, axis=-1)
    np.put_along_axis(counts, top[..., None], np.take_along_axis(counts, top[..., None], -1) + deficit[..., None], -1)
    return counts


def frequencies_from_cumulative(cumulative: np.ndarray) -> np.ndarray:
    """Exact non-decreasing integer cumulative values [..., K+1] -> frequencies [..., K].

    Used where a model gives an exact integer CDF (any total): each symbol gets its share of
    ``2**24 - K`` by exact integer arithmetic plus one, remainder to the largest share.
    """
    c = np.asarray(cumulative, dtype=np.int64)
    widths = np.diff(c, axis=-1)
    if np.any(widths < 0):
        raise CodingError("cumulative table decreases")
    return frequencies_from_probabilities(widths.astype(np.float64))


def binary_frequency(left: np.ndarray, right: np.ndarray) -> np.ndarray:
    """Frequency (1 .. 2**24-1) of the left branch for exact positive weights ``left``, ``right``.

    ``left`` and ``right`` are integers below 2**53 (exactly representable as float64). The
    float64 division and multiplication are correctly rounded IEEE operations, so the result
    is a deterministic function of the two integers on every machine.
    """
    left = np.asarray(left, dtype=np.float64)
    right = np.asarray(right, dtype=np.float64)
    share = np.floor(left / (left + right) * float(TOTAL - 2)).astype(np.int64)
    return 1 + np.clip(share, 0, TOTAL - 2)


def cumulative_from_frequencies(frequencies: np.ndarray) -> np.ndarray:
    """[..., K] frequencies -> [..., K+1] left cumulative values starting at 0, ending at 2**24."""
    f = np.asarray(frequencies, dtype=np.int64)
    zeros = np.zeros(f.shape[:-1] + (1,), dtype=np.int64)
    return np.concatenate([zeros, np.cumsum(f, axis=-1)], axis=-1)


def information_bits(symbols: np.ndarray, frequencies: np.ndarray) -> float:
    """Ideal code length in bits of ``symbols`` under integer ``frequencies`` [n, K]."""
    f = np.take_along_axis(np.asarray(frequencies), np.asarray(symbols, np.int64)[:, None], 1)[:, 0]
    return float(np.sum(PRECISION - np.log2(f.astype(np.float64))))


def _check_table(symbols: np.ndarray, frequencies: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    symbols = np.ascontiguousarray(symbols, dtype=np.int32).reshape(-1)
    frequencies = np.ascontiguousarray(frequencies, dtype=np.int64)
    if frequencies.ndim != 2 or frequencies.shape[0] != symbols.shape[0]:
        raise CodingError(f"need one frequency row per symbol, got {frequencies.shape} for {symbols.shape}")
    if np.any(frequencies < 1) or np.any(frequencies.sum(axis=1) != TOTAL):
        raise CodingError(f"frequencies must be >= 1 and sum to 2**{PRECISION}")
    if np.any(symbols < 0) or np.any(symbols >= frequencies.shape[1]):
        raise CodingError("symbol outside its table")
    return symbols, frequencies


def _constriction_counts(frequencies: np.ndarray) -> np.ndarray:
    """constriction's Categorical(perfect=False) turns counts c summing to 2**24 - K into
    frequencies exactly c + 1 (scale exactly 1); this is the inverse of that step."""
    return np.ascontiguousarray(frequencies - 1, dtype=np.float64)


# ---- streams --------------------------------------------------------------------------------

def encode(symbols: np.ndarray, frequencies: np.ndarray, words: np.ndarray | None = None) -> np.ndarray:
    """Push ``symbols`` (with their tables) onto an ANS stream so that they decode in order.

    ``words``: an existing stream to push onto (None: a new one). Returns the uint32 words.
    """
    symbols, frequencies = _check_table(symbols, frequencies)
    coder = constriction.stream.stack.AnsCoder() if words is None else constriction.stream.stack.AnsCoder(np.ascontiguousarray(words, np.uint32))
    if len(symbols) and frequencies.shape[1] > 1:  # a one-symbol alphabet carries no information
        coder.encode_reverse(symbols, _CATEGORICAL, _constriction_counts(frequencies))
    return coder.get_compressed()


def decode(words: np.ndarray, frequencies: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Pop ``len(frequencies)`` symbols; returns (symbols int64, remaining words)."""
    frequencies = np.ascontiguousarray(frequencies, dtype=np.int64)
    coder = _stream(words)
    if len(frequencies) == 0 or frequencies.shape[1] == 1:
        return np.zeros(len(frequencies), np.int64), coder.get_compressed()
    symbols = coder.decode(_CATEGORICAL, _constriction_counts(frequencies))
    return symbols.astype(np.int64), coder.get_compressed()


def _stream(words: np.ndarray):
    words = np.ascontiguousarray(words, dtype=np.uint32)
    if len(words) and words[-1] == 0:
        raise CodingError("corrupt stream: last word is zero")
    return constriction.stream.stack.AnsCoder(words)


class AnsStack:
    """A mutable ANS stack for bits-back coding: push and pop symbols with integer tables.

    ``AnsStack(words)`` continues an existing stream; ``AnsStack.seeded(n, seed)`` starts
    from ``n`` pseudo-random words that both sides can regenerate (so they need not be
    stored): popping from them is how the very first image of a bits-back chain gets its
    "initial bits".
    """

    def __init__(self, words: np.ndarray | None = None):
        self._coder = constriction.stream.stack.AnsCoder() if words is None else _stream(words)

    @classmethod
    def seeded(cls, n_words: int, seed: int) -> "AnsStack":
        return cls(seed_words(n_words, seed))

    def push(self, symbols: np.ndarray, frequencies: np.ndarray) -> None:
        """Encode so that a following ``pop`` with the same tables returns ``symbols`` in order."""
        symbols, frequencies = _check_table(symbols, frequencies)
        if len(symbols) and frequencies.shape[1] > 1:
            self._coder.encode_reverse(symbols, _CATEGORICAL, _constriction_counts(frequencies))

    def pop(self, frequencies: np.ndarray) -> np.ndarray:
        frequencies = np.ascontiguousarray(frequencies, dtype=np.int64)
        if len(frequencies) == 0 or frequencies.shape[1] == 1:
            return np.zeros(len(frequencies), np.int64)
        return self._coder.decode(_CATEGORICAL, _constriction_counts(frequencies)).astype(np.int64)

    def push_binary(self, bits: np.ndarray, left_frequencies: np.ndarray) -> None:
        """Push binary decisions (symbol 0 has ``left_frequencies`` out of 2**24) so that
        :meth:`pop_binary` with the same frequencies returns them in the given order."""
        f = np.asarray(left_frequencies, dtype=np.int64)
        self.push(bits, np.stack([f, TOTAL - f], axis=1))

    def pop_binary(self, left_frequencies: np.ndarray, active: np.ndarray | None = None) -> np.ndarray:
        """Pop one binary decision per row (only the ``active`` rows; others give 0)."""
        f = np.asarray(left_frequencies, dtype=np.int64)
        if active is None:
            return self.pop(np.stack([f, TOTAL - f], axis=1))
        out = np.zeros(len(f), dtype=np.int64)
        rows = np.nonzero(active)[0]
        if len(rows):
            out[rows] = self.pop(np.stack([f[rows], TOTAL - f[rows]], axis=1))
        return out

    def words(self) -> np.ndarray:
        return self._coder.get_compressed()

    def num_bits(self) -> int:
        return int(self._coder.num_bits())


def stream_to_bytes(words: np.ndarray) -> bytes:
    """Little-endian bytes of a stream, without the last word's zero high bytes.

    A stream's last word is never zero (constriction's invariant), so at most three zero
    bytes are dropped and :func:`bytes_to_stream` restores them unambiguously; this saves
    about 12 bits per stream on average."""
    return np.ascontiguousarray(words, dtype="<u4").tobytes().rstrip(b"\x00")


def bytes_to_stream(data: bytes) -> np.ndarray:
    """Inverse of :func:`stream_to_bytes`."""
    padded = bytes(data) + b"\x00" * (-len(data) % 4)
    words = np.frombuffer(padded, dtype="<u4").astype(np.uint32)
    if len(words) and words[-1] == 0:
        raise CodingError("corrupt stream: last word is zero")
    return words


def seed_words(n_words: int, seed: int) -> np.ndarray:
    """Deterministic pseudo-random uint32 words (PCG64 via numpy; the last word is non-zero)."""
    words = np.random.Generator(np.random.PCG64(seed)).integers(0, 2**32, size=n_words, dtype=np.uint64)
    words = words.astype(np.uint32)
    if n_words:
        words[-1] |= 1
    return words


def _check_intervals(left: np.ndarray, frequency: np.ndarray) -> None:
    if np.any(frequency < 1) or np.any(left < 0) or np.any(left + frequency > TOTAL):
        raise CodingError("symbol interval outside the 24-bit range")


class BatchAnsEncoder:
    """Pushes symbols onto many independent ANS streams at once (one symbol per stream per
    call), each given by its interval: left cumulative and frequency out of 2**24.

    Bit-compatible with constriction's ``AnsCoder`` (the same words for the same pushes), so
    :class:`BatchAnsDecoder` and constriction both decode the streams. Coding a symbol by its
    interval alone means a model never has to build a whole table: a codec that can compute
    the cumulative at two points can code with it. Push in reverse of the decoding order.
    """

    def __init__(self, n: int, capacity: int = 64, seals: np.ndarray | None = None):
        """``seals``: per stream a 32-bit value the stream starts from (what constriction's
        ``AnsCoder([seal])`` holds): the decoder finds it in the state once every symbol is
        popped (:meth:`BatchAnsDecoder.seals`). It fills what an empty start wastes (the
        first symbol of a zero state costs about log2 of its left edge, ~24 bits), so a
        32-bit seal costs ~8 bits more than none. 0 is the plain empty start."""
        self._state = np.zeros(n, dtype=np.uint64) if seals is None else np.asarray(seals, dtype=np.uint32).astype(np.uint64)
        if len(self._state) != n:
            raise ValueError("one seal per stream")
        self._words = np.zeros((capacity, n), dtype=np.uint32)  # emitted words, per stream in order
        self._count = np.zeros(n, dtype=np.int64)
        self._columns = np.arange(n)

    def push(self, left: np.ndarray, frequency: np.ndarray, active: np.ndarray | None = None) -> None:
        """Push one symbol per stream (only where ``active``); ``0 <= left``, ``1 <=
        frequency``, ``left + frequency <= 2**24``."""
        left = np.asarray(left, dtype=np.int64)
        frequency = np.asarray(frequency, dtype=np.int64)
        _check_intervals(left, frequency)
        self._push(left, frequency, active)

    def push_sequences(self, left: np.ndarray, frequency: np.ndarray, lengths: np.ndarray) -> None:
        """Push each stream's whole sequence of symbols so that they pop in order: row i of
        ``left`` / ``frequency`` [n, L] holds stream i's first ``lengths[i]`` symbols in
        decoding order (the rest is ignored). Same words as pushing them one by one."""
        lengths = np.asarray(lengths, dtype=np.int64)
        from .exact.kernels import ans_kernel  # here: the kernels module imports this one

        accelerator = ans_kernel()
        if accelerator is not None and left.ndim == 2 and left.shape == frequency.shape == (len(self._state), left.shape[1]):
            pushed = accelerator.push_sequences(self._state, left, frequency, lengths, PRECISION)
            if pushed is None:
                raise CodingError("symbol interval outside the 24-bit range")
            self._state, words, emitted = pushed
            self._append(words, emitted)
            return
        shortest = int(lengths.min(initial=0))
        for k in range(left.shape[1] - 1, -1, -1):  # column by column: no int64 copy of the whole
            column_left = left[:, k].astype(np.int64)
            column_frequency = frequency[:, k].astype(np.int64)
            active = None if k < shortest else k < lengths
            rows = slice(None) if active is None else active
            _check_intervals(column_left[rows], column_frequency[rows])
            self._push(column_left, column_frequency, active)

    def _append(self, words: np.ndarray, emitted: np.ndarray) -> None:
        """Append ``words[i, :emitted[i]]`` to stream i's emitted words."""
        needed = int((self._count + emitted).max(initial=0))
        if needed > len(self._words):
            grown = np.zeros((max(needed, 2 * len(self._words)), len(self._state)), dtype=np.uint32)
            grown[: len(self._words)] = self._words
            self._words = grown
        rows = np.repeat(np.arange(len(emitted)), emitted)
        within = np.arange(len(rows)) - np.repeat(np.cumsum(emitted) - emitted, emitted)
        self._words[self._count[rows] + within, rows] = words[rows, within]
        self._count += emitted

    def _push(self, left: np.ndarray, frequency: np.ndarray, active: np.ndarray | None) -> None:
        state = self._state
        p = frequency.astype(np.uint64)
        flush = (state >> np.uint64(64 - PRECISION)) >= p
        if active is not None:
            flush &= active
        if np.any(flush):
            if self._count.max() >= len(self._words):
                self._words = np.concatenate([self._words, np.zeros_like(self._words)])
            rows = np.nonzero(flush)[0]
            self._words[self._count[rows], rows] = (state[rows] & np.uint64(0xFFFFFFFF)).astype(np.uint32)
            self._count[rows] += 1
            state = np.where(flush, state >> np.uint64(32), state)
        new_state = ((state // p) << np.uint64(PRECISION)) | (state % p + left.astype(np.uint64))
        self._state = new_state if active is None else np.where(active, new_state, state)

    def push_binary(self, bits: np.ndarray, left_frequency: np.ndarray, active: np.ndarray | None = None) -> None:
        """Push one binary decision per stream (symbol 0 has ``left_frequency``)."""
        bits = np.asarray(bits, dtype=np.int64)
        f = np.asarray(left_frequency, dtype=np.int64)
        self.push(np.where(bits == 1, f, 0), np.where(bits == 1, TOTAL - f, f), active)

    def streams(self) -> list[np.ndarray]:
        """Each stream's words (what constriction's ``get_compressed`` gives)."""
        out = []
        for i in range(len(self._state)):
            state = int(self._state[i])
            head = [state & 0xFFFFFFFF, state >> 32] if state >> 32 else ([state] if state else [])
            out.append(np.concatenate([self._words[: self._count[i], i], np.array(head, dtype=np.uint32)]))
        return out


class BatchAnsDecoder:
    """Pops symbols from many independent ANS streams at once (one symbol per stream per call).

    Bit-compatible with constriction's ``AnsCoder`` (32-bit words, 64-bit state, 24-bit
    precision): stream i initialised from ``streams[i]`` pops exactly what
    ``AnsCoder(streams[i]).decode`` would. Streams may differ in length.
    """

    def __init__(self, streams: list[np.ndarray]):
        lengths = np.array([len(s) for s in streams], dtype=np.int64)
        self._words = np.concatenate([np.asarray(s, np.uint64) for s in streams] + [np.zeros(1, np.uint64)])
        self._begin = np.concatenate([[0], np.cumsum(lengths)[:-1]]).astype(np.int64)
        self._next = self._begin + lengths - 1  # index of the next word to read (stack top)
        n = len(streams)
        state = np.zeros(n, dtype=np.uint64)
        for i in range(n):  # initial state: words from the top until it holds >= 2**32
            if lengths[i] == 0:
                continue
            if self._words[self._next[i]] == 0:
                raise CodingError("corrupt stream: last word is zero")
            s = int(self._words[self._next[i]])
            self._next[i] -= 1
            while self._next[i] >= self._begin[i] and s < (1 << 32):
                s = (s << 32) | int(self._words[self._next[i]])
                self._next[i] -= 1
            state[i] = s
        self._state = state

    def __len__(self) -> int:
        return len(self._state)

    def quantiles(self, streams: np.ndarray | None = None) -> np.ndarray:
        """Each stream's current quantile (int64, 0 .. 2**24 - 1): the symbol to pop next is
        the one whose interval contains it. ``streams``: only these (distinct) streams."""
        state = self._state if streams is None else self._state[streams]
        return (state & np.uint64(TOTAL - 1)).astype(np.int64)

    def buffers(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """(state uint64, next word index, first word index, words uint64), the arrays an
        accelerator pops from in place (contiguous; the same rules as :meth:`advance`)."""
        return self._state, self._next, self._begin, self._words

    def advance_streams(self, streams: np.ndarray, left: np.ndarray, frequency: np.ndarray) -> None:
        """:meth:`advance` for the distinct ``streams`` (indices) only, one symbol each."""
        state = self._state[streams]
        following = self._next[streams]
        quantile = state & np.uint64(TOTAL - 1)
        new_state = (state >> np.uint64(PRECISION)) * np.asarray(frequency, np.int64).astype(np.uint64) + (
            quantile - np.asarray(left, np.int64).astype(np.uint64))
        refill = (new_state < np.uint64(1 << 32)) & (following >= self._begin[streams])
        if np.any(refill):
            word = self._words[np.where(refill, following, len(self._words) - 1)]
            new_state = np.where(refill, (new_state << np.uint64(32)) | word, new_state)
            self._next[streams] = np.where(refill, following - 1, following)
        self._state[streams] = new_state

    def advance(self, left: np.ndarray, frequency: np.ndarray, active: np.ndarray | None = None) -> None:
        """Pop the symbol whose interval ``[left, left + frequency)`` contains the quantile
        (the caller found it); streams where ``active`` is False are left untouched."""
        state = self._state
        quantile = state & np.uint64(TOTAL - 1)
        left = np.asarray(left, dtype=np.int64)
        frequency = np.asarray(frequency, dtype=np.int64)
        new_state = (state >> np.uint64(PRECISION)) * frequency.astype(np.uint64) + (quantile - left.astype(np.uint64))
        refill = (new_state < np.uint64(1 << 32)) & (self._next >= self._begin)
        if active is not None:
            new_state = np.where(active, new_state, state)
            refill &= active
        if np.any(refill):
            word = self._words[np.where(refill, self._next, len(self._words) - 1)]
            new_state = np.where(refill, (new_state << np.uint64(32)) | word, new_state)
            self._next = np.where(refill, self._next - 1, self._next)
        self._state = new_state

    def decode(self, cumulative: np.ndarray, active: np.ndarray | None = None) -> np.ndarray:
        """One symbol per stream; ``cumulative``: int64 [n, K+1] (0 .. 2**24). Streams where
        ``active`` is False are left untouched (their result is 0)."""
        quantile = self.quantiles()
        cum = np.asarray(cumulative, dtype=np.int64)
        symbol = (cum[:, 1:-1] <= quantile[:, None]).sum(axis=1)
        left = np.take_along_axis(cum, symbol[:, None], 1)[:, 0]
        frequency = np.take_along_axis(cum, symbol[:, None] + 1, 1)[:, 0] - left
        self.advance(left, frequency, active)
        return symbol if active is None else np.where(active, symbol, 0)

    def decode_binary(self, left_frequency: np.ndarray, active: np.ndarray | None = None) -> np.ndarray:
        """One bit per stream; symbol 0 has frequency ``left_frequency``, symbol 1 the rest."""
        f = np.asarray(left_frequency, dtype=np.int64)
        cum = np.stack([np.zeros_like(f), f, np.full_like(f, TOTAL)], axis=1)
        return self.decode(cum, active)

    def exhausted(self) -> np.ndarray:
        """True for streams whose words are all consumed and whose state holds no data."""
        return (self._next < self._begin) & (self._state == np.uint64(0))

    def seals(self) -> np.ndarray:
        """Per stream, once all its symbols are popped: the seal it was encoded from (int64,
        0 .. 2**32 - 1; 0 for an unsealed stream), or -1 where words remain or the state
        holds more than 32 bits (a corrupt stream, or symbols left)."""
        done = (self._next < self._begin) & (self._state < np.uint64(1 << 32))
        return np.where(done, self._state.astype(np.int64), -1)

    def remaining_words(self) -> np.ndarray:
        """Unread bulk words per stream (a fully decoded stream of ours leaves none)."""
        return self._next - self._begin + 1


class BatchAnsStack(BatchAnsDecoder):
    """Many ANS stacks side by side that are both pushed and popped (bits-back coding with
    one chain per stack, all chains stepped together): pops are :class:`BatchAnsDecoder`'s
    (the same buffers, so the C accelerator pops from it too), pushes are
    :class:`BatchAnsEncoder`'s arithmetic. Stack ``i`` behaves exactly like a constriction
    ``AnsCoder`` started from ``streams[i]`` that receives the same pushes and pops, and
    :meth:`streams` gives what its ``get_compressed`` would.

    Each stack's bulk words live in its own region of one array (``begin[i]`` up to a
    capacity); a push that would overflow a region doubles every region."""

    def __init__(self, streams: list[np.ndarray], capacity: int = 1024):
        super().__init__(streams)
        self._relayout(max(capacity, int(self.remaining_words().max(initial=0)) + 1))

    def _relayout(self, capacity: int) -> None:
        n = len(self._state)
        used = self._next - self._begin + 1
        words = np.zeros(n * capacity + 1, dtype=np.uint64)  # + the read-past sentinel of advance
        begin = np.arange(n, dtype=np.int64) * capacity
        for i in range(n):
            words[begin[i] : begin[i] + used[i]] = self._words[self._begin[i] : self._begin[i] + used[i]]
        self._words, self._begin, self._next, self._capacity = words, begin, begin + used - 1, capacity

    def push_streams(self, streams: np.ndarray, left: np.ndarray, frequency: np.ndarray) -> None:
        """Push one symbol on each of the distinct ``streams`` (indices), given by its
        interval, so that the next pop from that stream returns it."""
        streams = np.asarray(streams, dtype=np.int64)
        left = np.asarray(left, dtype=np.int64)
        frequency = np.asarray(frequency, dtype=np.int64)
        _check_intervals(left, frequency)
        state = self._state[streams]
        p = frequency.astype(np.uint64)
        flush = (state >> np.uint64(64 - PRECISION)) >= p
        if np.any(flush):
            rows = streams[flush]
            if np.any(self._next[rows] + 1 >= self._begin[rows] + self._capacity):
                self._relayout(2 * self._capacity)
            self._next[rows] += 1
            self._words[self._next[rows]] = state[flush] & np.uint64(0xFFFFFFFF)
            state = np.where(flush, state >> np.uint64(32), state)
        self._state[streams] = ((state // p) << np.uint64(PRECISION)) | (state % p + left.astype(np.uint64))

    def push_sequences(self, streams: np.ndarray, left: np.ndarray, frequency: np.ndarray, lengths: np.ndarray) -> None:
        """Push on each of the distinct ``streams`` its row's first ``lengths`` symbols of
        ``left`` / ``frequency`` [n, L] so that they pop in order (pushed last first)."""
        streams = np.asarray(streams, dtype=np.int64)
        lengths = np.asarray(lengths, dtype=np.int64)
        from .exact.kernels import ans_kernel  # here: the kernels module imports this one

        accelerator = ans_kernel()
        if accelerator is not None and left.ndim == 2 and left.shape == frequency.shape == (len(streams), left.shape[1]):
            # the same arithmetic as the loop below, a whole sequence per stack in one C call
            pushed = accelerator.push_sequences(self._state[streams], left, frequency, lengths, PRECISION)
            if pushed is None:
                raise CodingError("symbol interval outside the 24-bit range")
            state, words, emitted = pushed
            while np.any(self._next[streams] + emitted >= self._begin[streams] + self._capacity):
                self._relayout(2 * self._capacity)
            rows = np.repeat(np.arange(len(streams)), emitted)
            within = np.arange(len(rows)) - np.repeat(np.cumsum(emitted) - emitted, emitted)
            self._words[self._next[streams][rows] + 1 + within] = words[rows, within]
            self._next[streams] += emitted
            self._state[streams] = state
            return
        for k in range(left.shape[1] - 1, -1, -1):
            rows = np.nonzero(k < lengths)[0]
            if len(rows):
                self.push_streams(streams[rows], left[rows, k], frequency[rows, k])

    def num_bits(self) -> np.ndarray:
        """Each stack's size in bits (as constriction's ``num_bits``)."""
        state = self._state
        head = np.where(state >> np.uint64(32) != 0, 64, np.where(state != 0, 32, 0))
        return (self._next - self._begin + 1) * 32 + head

    def streams(self) -> list[np.ndarray]:
        """Each stack's words (what constriction's ``get_compressed`` gives)."""
        out = []
        for i in range(len(self._state)):
            state = int(self._state[i])
            head = [state & 0xFFFFFFFF, state >> 32] if state >> 32 else ([state] if state else [])
            bulk = self._words[self._begin[i] : self._next[i] + 1].astype(np.uint32)
            out.append(np.concatenate([bulk, np.array(head, dtype=np.uint32)]))
        return out
