"""The optional C accelerator of the local codec's mixture coding, of batched ANS encoding
and of the exact layers' requantisation (``_mixture.c``).

:func:`kernel`, :func:`ans_kernel` and :func:`requantizer` return it, or None when it was not built (no C compiler at install time)
or ``NZIP_NO_KERNEL=1`` asks for the numpy definition. Both compute the same integers
(tests/test_kernels.py compares them); the accelerator runs one pass per row instead of
one numpy pass per operation, and ctypes releases the GIL while it runs, so threads
decode in parallel.
"""

from __future__ import annotations

import ctypes
import functools
import importlib.util
import os

import numpy as np

from ..coding import TOTAL
from . import mixture as m

ABI_VERSION = 3  # nz_abi_version() of the _mixture.c this module calls
_I64P = ctypes.POINTER(ctypes.c_int64)
_U64P = ctypes.POINTER(ctypes.c_uint64)
_I32P = ctypes.POINTER(ctypes.c_int32)
_U32P = ctypes.POINTER(ctypes.c_uint32)


class _Constants(ctypes.Structure):
    _fields_ = [(name, ctypes.c_int64) for name in (
        "k", "c", "levels", "total", "z_span", "guard", "cdf_frac", "floor_", "mean_one", "act_one",
        "weight_span", "weight_frac", "tanh_span", "log_scale_low", "log_scale_high", "mean_low", "mean_high")]


class _Tables(ctypes.Structure):
    _fields_ = [("sigmoid_half", _I32P), ("weight", _I32P), ("tanh_", _I32P), ("inverse_low", _U32P),
                ("inverse_wide", ctypes.c_int64)]


def _pointer(array: np.ndarray, kind=_I64P):
    return array.ctypes.data_as(kind)


def sigmoid_upper_half(sigmoid: np.ndarray) -> np.ndarray:
    """The C code's copy of the logistic CDF table: entries z_span.. as int32. Valid only
    because the table is symmetric about its centre, which this checks (the same integers,
    or no accelerator)."""
    span = m.Z_SPAN
    upper, lower = sigmoid[span:], sigmoid[span::-1]
    if len(sigmoid) != 2 * span + 1 or not np.array_equal(upper + lower, np.full_like(upper, 1 << m.CDF_FRAC)):
        raise ValueError("mixture kernel: the sigmoid table is not symmetric")
    return as_int32(upper)


def as_int32(table: np.ndarray) -> np.ndarray:
    """A table as the C code's int32 (checked to fit: the same integers, or no accelerator)."""
    if np.abs(table).max(initial=0) >= 1 << 31:
        raise ValueError("mixture kernel: table values beyond int32")
    return np.ascontiguousarray(table, dtype=np.int32)


def split_inverse_scales(inverse_scale: np.ndarray) -> tuple[np.ndarray, int]:
    """The C code's form of the inverse-scale table: uint32 low words and the number of
    leading entries that add 2**32 (checked: the same integers, or no accelerator)."""
    wide = int(np.count_nonzero(inverse_scale >= 1 << 32))
    if (inverse_scale.min(initial=0) < 0 or inverse_scale.max(initial=0) >= 1 << 33
            or not np.all(inverse_scale[:wide] >= 1 << 32)):
        raise ValueError("mixture kernel: inverse scales not of the expected form")
    return np.ascontiguousarray(inverse_scale - np.where(np.arange(len(inverse_scale)) < wide, 1 << 32, 0),
                                dtype=np.uint32), wide


class MixtureKernel:
    """ctypes front of the C functions for one mixture layout (K mixtures, C channels)."""

    def __init__(self, library: ctypes.CDLL, mixtures: int, channels: int):
        self._lib = library
        self.constants = _Constants(mixtures, channels, m.LEVELS, TOTAL, m.Z_SPAN, m.GUARD, m.CDF_FRAC, m.FLOOR,
                                    m.MEAN_ONE, m.ACT_ONE, m.WEIGHT_SPAN, m.WEIGHT_FRAC, m.TANH_SPAN,
                                    m.LOG_SCALE_LOW, m.LOG_SCALE_HIGH, m.MEAN_LOW, m.MEAN_HIGH)
        sigmoid, inverse_scale, weight, tanh, _ = m._tables()
        inverse_low, inverse_wide = split_inverse_scales(inverse_scale)
        self._keep = [sigmoid_upper_half(sigmoid), as_int32(weight), as_int32(tanh), inverse_low]
        self.tables = _Tables(*(_pointer(a, kind) for a, kind in zip(self._keep, (_I32P, _I32P, _I32P, _U32P))),
                              inverse_wide)

    def intervals(self, head: np.ndarray, values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(left, frequency) int64 [n, c] of ``values`` [n, c] under ``head`` [n, size]."""
        head = np.ascontiguousarray(head, dtype=np.int64)
        values = np.ascontiguousarray(values, dtype=np.int64)
        n, c = values.shape
        left = np.empty((n, c), dtype=np.int64)
        frequency = np.empty((n, c), dtype=np.int64)
        status = self._lib.nz_intervals(ctypes.byref(self.constants), ctypes.byref(self.tables), n, c,
                                        _pointer(head), head.shape[1], _pointer(values), _pointer(left), _pointer(frequency))
        if status:
            raise ValueError("mixture kernel: unsupported layout")
        return left, frequency

    def decode(self, head: np.ndarray, c: int, streams: np.ndarray, decoder) -> np.ndarray:
        """Pop ``c`` values per row from ``decoder`` (a BatchAnsDecoder) stream ``streams[row]``."""
        head = np.ascontiguousarray(head, dtype=np.int64)
        streams = np.ascontiguousarray(streams, dtype=np.int64)
        values = np.empty((len(head), c), dtype=np.int64)
        state, following, begin, words = decoder.buffers()
        status = self._lib.nz_decode(ctypes.byref(self.constants), ctypes.byref(self.tables), len(head), c,
                                     _pointer(head), head.shape[1], _pointer(streams), _pointer(state, _U64P),
                                     _pointer(following), _pointer(begin), _pointer(words, _U64P), _pointer(values))
        if status:
            raise ValueError("mixture kernel: unsupported layout")
        return values


class AnsKernel:
    """ctypes front of ``nz_ans_push``: :meth:`BatchAnsEncoder.push_sequences` in C."""

    def __init__(self, library: ctypes.CDLL):
        self._lib = library

    def push_sequences(self, state: np.ndarray, left: np.ndarray, frequency: np.ndarray, lengths: np.ndarray,
                       precision: int) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
        """(new state uint64 [n], words uint32 [n, width], emitted int64 [n]): stream i's new
        words are ``words[i, :emitted[i]]`` in emission order. None if an interval or a
        length is out of range."""
        left = np.ascontiguousarray(left, dtype=np.int32)
        frequency = np.ascontiguousarray(frequency, dtype=np.int32)
        lengths = np.ascontiguousarray(lengths, dtype=np.int64)
        n, width = left.shape
        state = np.array(state, dtype=np.uint64)  # a copy: the caller's state stays as it was on failure
        words = np.empty((n, width), dtype=np.uint32)
        emitted = np.empty(n, dtype=np.int64)
        status = self._lib.nz_ans_push(n, width, _pointer(left, _I32P), _pointer(frequency, _I32P), _pointer(lengths),
                                       precision, _pointer(state, _U64P), _pointer(words, _U32P), _pointer(emitted))
        return None if status else (state, words, emitted)


@functools.lru_cache(maxsize=None)
def _library() -> ctypes.CDLL | None:
    spec = importlib.util.find_spec("neuralzip.exact._mixture")
    if spec is None or not spec.origin:
        return None
    try:
        library = ctypes.CDLL(spec.origin)
    except OSError:
        return None
    version = getattr(library, "nz_abi_version", None)
    if version is None or version() != ABI_VERSION:
        return None  # built from another _mixture.c: the numpy code runs (same integers)
    for name in ("nz_intervals", "nz_decode", "nz_ans_push"):
        getattr(library, name).restype = ctypes.c_int
    library.nz_requantize.restype = None
    library.nz_requantize.argtypes = [ctypes.c_int64, ctypes.c_int64, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p,
                                      ctypes.c_float, ctypes.c_float, ctypes.c_void_p, ctypes.c_void_p]
    return library


@functools.lru_cache(maxsize=None)
def _kernel(mixtures: int, channels: int) -> MixtureKernel | None:
    library = _library()
    return None if library is None else MixtureKernel(library, mixtures, channels)


def kernel(mixtures: int, channels: int) -> MixtureKernel | None:
    """The accelerator for this layout, or None (not built, or NZIP_NO_KERNEL=1)."""
    if os.environ.get("NZIP_NO_KERNEL") == "1":
        return None
    return _kernel(mixtures, channels)


@functools.lru_cache(maxsize=None)
def _ans_kernel() -> AnsKernel | None:
    library = _library()
    return None if library is None else AnsKernel(library)


def ans_kernel() -> AnsKernel | None:
    """The ANS encoding accelerator, or None (not built, or NZIP_NO_KERNEL=1)."""
    if os.environ.get("NZIP_NO_KERNEL") == "1":
        return None
    return _ans_kernel()


def requantizer():
    """``requantize(acc, multiplier, offset, low, high, table=None, rows=None)``:
    :class:`~neuralzip.exact.local.ExactLayer`'s requantisation of a C-contiguous float32
    [n, width] array in place (with ``table[rows[i]]`` added to row i first, when given),
    or None (not built, or NZIP_NO_KERNEL=1)."""
    if os.environ.get("NZIP_NO_KERNEL") == "1":
        return None
    library = _library()
    if library is None:
        return None
    function = library.nz_requantize

    def requantize(acc: np.ndarray, multiplier: np.ndarray, offset: np.ndarray, low: float, high: float,
                   table: np.ndarray | None = None, rows: np.ndarray | None = None) -> None:
        n, width = acc.shape
        if table is None:
            function(n, width, acc.ctypes.data, multiplier.ctypes.data, offset.ctypes.data, low, high, None, None)
            return
        table = np.ascontiguousarray(table, dtype=np.float32)
        rows = np.ascontiguousarray(rows, dtype=np.int64)
        if table.shape[1] != width or rows.shape != (n,) or (n and (rows.min() < 0 or rows.max() >= len(table))):
            raise ValueError("requantize: table rows out of range")
        function(n, width, acc.ctypes.data, multiplier.ctypes.data, offset.ctypes.data, low, high,
                 table.ctypes.data, rows.ctypes.data)

    return requantize
