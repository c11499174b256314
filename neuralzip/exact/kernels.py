"""The optional C accelerators of the local codec: its mixture coding, batched ANS encoding
and the exact layers' requantisation (``_mixture.c``), and the exact layers' matrix
products on AMX tiles, with AVX-512 VNNI or with AVX2 (``_matmul.c``).

:func:`kernel`, :func:`ans_kernel`, :func:`requantizer` and :func:`matmul_layer` return
them, or None when they were not built (no C compiler at install time), the CPU lacks the
instructions (``_matmul``), or ``NZIP_NO_KERNEL=1`` asks for the numpy definition. Both compute the same integers
(tests/test_kernels.py compares them); the accelerator runs one pass per row instead of
one numpy pass per operation, and ctypes releases the GIL while it runs, so threads
decode in parallel.
"""

from __future__ import annotations

import ctypes
import functools
import importlib.util
import os
from dataclasses import dataclass

import numpy as np

from ..coding import TOTAL
from . import mixture as m

ABI_VERSION = 4  # nz_abi_version() of the _mixture.c this module calls
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


def load_accelerator(module: str, abi_function: str, abi_version: int) -> ctypes.CDLL | None:
    """The built C library ``neuralzip.exact.<module>`` if it is there, loads, and reports
    ``abi_version`` from ``abi_function``; else None (not built, or built from another
    source: the numpy code runs, the same integers)."""
    spec = importlib.util.find_spec(f"neuralzip.exact.{module}")
    if spec is None or not spec.origin:
        return None
    try:
        library = ctypes.CDLL(spec.origin)
    except OSError:
        return None
    version = getattr(library, abi_function, None)
    if version is None or version() != abi_version:
        return None
    return library


@functools.lru_cache(maxsize=None)
def _library() -> ctypes.CDLL | None:
    library = load_accelerator("_mixture", "nz_abi_version", ABI_VERSION)
    if library is None:
        return None
    for name in ("nz_intervals", "nz_decode", "nz_ans_push"):
        getattr(library, name).restype = ctypes.c_int
    library.nz_requantize.restype = None
    library.nz_requantize.argtypes = [ctypes.c_int64, ctypes.c_int64, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p,
                                      ctypes.c_float, ctypes.c_float, ctypes.c_void_p, ctypes.c_void_p]
    library.nz_residual.restype = None
    library.nz_residual.argtypes = [ctypes.c_int64, ctypes.c_int64, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p,
                                    ctypes.c_float, ctypes.c_float, ctypes.c_void_p]
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


def residual_stepper():
    """``step(stream, branch, rescale, limit, top) -> activation``: the local network's
    residual stream step (:func:`neuralzip.exact.local.residual_step`) in one C pass, on
    C-contiguous float32 [n, width] arrays (``stream`` updated in place, ``branch`` may be
    None), or None (not built, or NZIP_NO_KERNEL=1)."""
    if os.environ.get("NZIP_NO_KERNEL") == "1":
        return None
    library = _library()
    if library is None:
        return None
    function = library.nz_residual

    def step(stream: np.ndarray, branch: np.ndarray | None, rescale: np.ndarray, limit: float, top: float) -> np.ndarray:
        n, width = stream.shape
        if not (stream.flags.c_contiguous and stream.dtype == np.float32):
            raise ValueError("residual step: the stream must be C-contiguous float32")
        if branch is not None:
            branch = np.ascontiguousarray(branch, dtype=np.float32)
            if branch.shape != stream.shape:
                raise ValueError("residual step: the branch does not match the stream")
        rescale = np.ascontiguousarray(rescale, dtype=np.float32)
        if rescale.shape != (width,):
            raise ValueError("residual step: one rescale per column")
        activation = np.empty_like(stream)
        function(n, width, stream.ctypes.data, None if branch is None else branch.ctypes.data, rescale.ctypes.data,
                 limit, top, activation.ctypes.data)
        return activation

    return step


# ---- the exact layers' matrix products on AMX tiles, AVX-512 VNNI or AVX2 (_matmul.c) -----

MATMUL_ABI_VERSION = 1  # nz_matmul_abi_version() of the _matmul.c this module calls
MATMUL_MAX_INPUTS = 1024  # inputs per row _matmul.c stages (MAX_K)
BF16_EXACT = 256  # the largest integer magnitude bfloat16 holds with all smaller ones
MATMUL_BACKENDS = ("amx", "vnni", "avx2")  # in order of preference (the fastest first where several run)
INT16_GROUPS = {"vnni": 64, "avx2": 32}  # outputs per packed group of the int16 kernels


@dataclass(frozen=True)
class PackedWeights:
    """One layer's integer weights in a backend's layout (see :func:`pack_weights`)."""

    backend: str  # "amx", "vnni" or "avx2"
    low: np.ndarray  # amx: uint16 bfloat16 bits [blocks, steps, 16, 16, 2]; vnni, avx2: int16 [groups, pairs, G, 2]
    high: np.ndarray | None  # amx only: the multiples of 256, when some |w| > 256
    fan_in: int
    width: int

    @property
    def padded_inputs(self) -> int:
        return self.low.shape[1] * (32 if self.backend == "amx" else 2)


def _bf16_bits(values: np.ndarray) -> np.ndarray:
    """bfloat16 bit patterns of small integers (exact: the float32's low 16 bits are zero)."""
    return (np.ascontiguousarray(values, dtype=np.float32).view(np.uint32) >> 16).astype(np.uint16)


def pack_weights(weight: np.ndarray, backend: str) -> PackedWeights:
    """Integer weights [in, out] in ``backend``'s layout, inputs and outputs zero padded.

    amx: per block of 16 outputs and step of 32 inputs one tile of [16 input pairs, 16
    outputs, 2]; weights beyond +-256 split exactly as ``lo + 256 hi`` with |lo| <= 128.
    vnni, avx2: per group of G outputs (64, 32) and pair of inputs [G outputs, 2] int16
    (|w| < 2**15)."""
    weight = np.asarray(weight, dtype=np.int64)
    fan_in, width = weight.shape
    if backend in INT16_GROUPS:
        if np.abs(weight).max(initial=0) >= 1 << 15:
            raise ValueError(f"{backend} layer: weights beyond int16")
        group = INT16_GROUPS[backend]
        k_pad, groups = fan_in + fan_in % 2, -(-width // group)
        full = np.zeros((k_pad, groups * group), dtype=np.int16)
        full[:fan_in, :width] = weight
        # [pairs, 2, groups, G] -> [groups, pairs, G, 2]
        packed = full.reshape(k_pad // 2, 2, groups, group).transpose(2, 0, 3, 1)
        return PackedWeights(backend, np.ascontiguousarray(packed), None, fan_in, width)
    if backend != "amx":
        raise ValueError(f"unknown matrix product backend {backend!r}")
    high = np.rint(weight / 256.0).astype(np.int64) if np.abs(weight).max(initial=0) > BF16_EXACT else None
    low = weight - 256 * high if high is not None else weight
    k_pad, blocks = -(-fan_in // 32) * 32, -(-width // 16)

    def tiles(part: np.ndarray) -> np.ndarray:
        full = np.zeros((k_pad, blocks * 16), dtype=np.float32)
        full[:fan_in, :width] = part
        # [steps, pairs 16, 2, blocks, 16] -> [blocks, steps, pairs, outputs 16, 2]
        shaped = full.reshape(k_pad // 32, 16, 2, blocks, 16).transpose(3, 0, 1, 4, 2)
        return np.ascontiguousarray(_bf16_bits(shaped))

    return PackedWeights(backend, tiles(low), None if high is None else tiles(high), fan_in, width)


@functools.lru_cache(maxsize=None)
def _matmul_library() -> ctypes.CDLL | None:
    library = load_accelerator("_matmul", "nz_matmul_abi_version", MATMUL_ABI_VERSION)
    if library is None:
        return None  # not built, or built from another source
    pointer, size, single = ctypes.c_void_p, ctypes.c_int64, ctypes.c_float
    for name in ("nz_amx_layer", "nz_vnni_layer", "nz_avx2_layer"):
        getattr(library, name).restype = None
    # n, k_in, x, k_pad, blocks, lo, hi, table, rows, multiplier, offset, low, high, width, out
    library.nz_amx_layer.argtypes = [size, size, pointer, size, size, pointer, pointer, pointer, pointer,
                                     pointer, pointer, single, single, size, pointer]
    # n, k_in, x, pairs, groups, packed, table, rows, multiplier, offset, low, high, width, out
    for name in ("nz_vnni_layer", "nz_avx2_layer"):
        getattr(library, name).argtypes = [size, size, pointer, size, size, pointer, pointer, pointer,
                                           pointer, pointer, single, single, size, pointer]
    return library


@functools.lru_cache(maxsize=None)
def _usable_backends() -> tuple[str, ...]:
    library = _matmul_library()
    if library is None:
        return ()
    # nz_amx_init also asks Linux for the tile state (refused on some kernels: then no AMX)
    return tuple(name for name in MATMUL_BACKENDS if getattr(library, f"nz_{name}_init")())


def matmul_backends() -> tuple[str, ...]:
    """The accelerated matrix product backends this CPU runs, best first (empty when the
    accelerator is not built, on CPUs without AVX2, or with NZIP_NO_KERNEL=1)."""
    if os.environ.get("NZIP_NO_KERNEL") == "1":
        return ()
    return _usable_backends()


def matmul_layer(backend: str | None = None):
    """``layer(x, weights, multiplier, offset, low, high, table=None, rows=None)``: an
    :class:`~neuralzip.exact.local.ExactLayer` on float32 rows ``x`` [n, in] (integers of at
    most 8 significant bits: the exact network's activations and features) with
    :class:`PackedWeights` of ``backend`` (default: the best of :func:`matmul_backends`),
    returning float32 [n, width], the same values as the float32 path; or None when that
    backend does not run here."""
    usable = matmul_backends()
    backend = backend or (usable[0] if usable else None)
    if backend not in usable:
        return None
    library = _matmul_library()

    def layer(x: np.ndarray, weights: PackedWeights, multiplier: np.ndarray, offset: np.ndarray, low: float,
              high: float, table: np.ndarray | None = None, rows: np.ndarray | None = None) -> np.ndarray:
        x = np.ascontiguousarray(x, dtype=np.float32)
        n, fan_in = x.shape
        if weights.backend != backend or fan_in != weights.fan_in or weights.padded_inputs > MATMUL_MAX_INPUTS:
            raise ValueError(f"{backend} layer: the input does not match the weights")
        multiplier = np.ascontiguousarray(multiplier, dtype=np.float32)
        offset = np.ascontiguousarray(offset, dtype=np.float32)
        table_pointer = rows_pointer = None
        if table is not None:
            table = np.ascontiguousarray(table, dtype=np.float32)
            rows = np.ascontiguousarray(rows, dtype=np.int64)
            if table.shape[1] != weights.width or rows.shape != (n,) or (n and (rows.min() < 0 or rows.max() >= len(table))):
                raise ValueError(f"{backend} layer: table rows out of range")
            table_pointer, rows_pointer = table.ctypes.data, rows.ctypes.data
        out = np.empty((n, weights.width), dtype=np.float32)
        if backend == "amx":
            library.nz_amx_layer(n, fan_in, x.ctypes.data, weights.padded_inputs, weights.low.shape[0],
                                 weights.low.ctypes.data, None if weights.high is None else weights.high.ctypes.data,
                                 table_pointer, rows_pointer, multiplier.ctypes.data, offset.ctypes.data, low, high,
                                 weights.width, out.ctypes.data)
        else:
            getattr(library, f"nz_{backend}_layer")(n, fan_in, x.ctypes.data, weights.low.shape[1], weights.low.shape[0],
                                  weights.low.ctypes.data, table_pointer, rows_pointer, multiplier.ctypes.data,
                                  offset.ctypes.data, low, high, weights.width, out.ctypes.data)
        return out

    return layer
