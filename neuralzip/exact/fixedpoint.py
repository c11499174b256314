"""Fixed-point conventions and lookup tables for exact (integer) network inference.

Why: a lossless decoder must recompute the encoder's probabilities bit for bit. Float
networks do not: matrix products change with batch size and thread count, and vectorised
transcendental functions differ in the last bit between code paths. So coding uses an
*integer network*: every activation is an integer ``a`` meaning ``a / 2**ACT_FRAC``, every
weight an integer meaning ``w / 2**WEIGHT_FRAC``, and every nonlinearity a lookup table.

* Products and sums are done in float64 on integer values whose partial sums stay below
  2**53 (checked by :func:`check_fan_in`), so they are exact in any summation order, on any
  BLAS, batch size, thread count or machine.
* Requantisation multiplies by a power of two and rounds half to even: exact.
* Tables are built from :func:`det_exp`, which uses only IEEE-754 basic operations
  (correctly rounded everywhere), so every machine builds identical tables.
"""

from __future__ import annotations

import functools
import math

import numpy as np

ACT_FRAC = 12  # activations: a / 4096
ACT_ONE = 1 << ACT_FRAC
ACT_LIMIT = 1 << 20  # |activation| <= 256
WEIGHT_FRAC = 14  # weights: w / 16384
WEIGHT_LIMIT = 1 << 18  # |weight| <= 16
GATE_FRAC = 16  # sigmoid gate values: s / 65536
TABLE_SPAN = 16  # nonlinearities saturate beyond |x| = 16 (to within the output resolution)
EXACT_SUM_LIMIT = 1 << 53

_LN2_HI = 6.93147180369123816490e-01  # trailing zero bits: k * _LN2_HI is exact for |k| < 2**11
_LN2_LO = 1.90821492927058770002e-10
_TAYLOR = [1.0 / math.factorial(n) for n in range(14)]


def det_exp(x) -> np.ndarray:
    """exp(x) in float64 from basic IEEE operations only (relative error ~1e-15).

    Deterministic and portable: the same input gives the same bits on every platform,
    unlike ``np.exp`` whose SIMD and scalar paths may differ in the last place."""
    x = np.clip(np.asarray(x, dtype=np.float64), -700.0, 700.0)
    k = np.rint(x * (1.0 / _LN2_HI))
    r = (x - k * _LN2_HI) - k * _LN2_LO
    poly = np.full_like(r, _TAYLOR[-1])
    for coefficient in reversed(_TAYLOR[:-1]):
        poly = poly * r + coefficient
    return np.ldexp(poly, k.astype(np.int64))


def det_sigmoid(x) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    return 1.0 / (1.0 + det_exp(-x))


def to_fixed(values, frac: int) -> np.ndarray:
    """Round real values to integers on the 2**-frac grid (half to even), as int64."""
    return np.rint(np.asarray(values, dtype=np.float64) * float(1 << frac)).astype(np.int64)


@functools.lru_cache(maxsize=None)
def elu_negative_table() -> np.ndarray:
    """ELU on x = -i / 2**ACT_FRAC for i = 0 .. TABLE_SPAN * 2**ACT_FRAC, in activation units."""
    i = np.arange(TABLE_SPAN * ACT_ONE + 1, dtype=np.float64)
    return to_fixed(det_exp(-i / ACT_ONE) - 1.0, ACT_FRAC)


@functools.lru_cache(maxsize=None)
def gate_sigmoid_table() -> np.ndarray:
    """sigmoid(x) for x = j / 2**ACT_FRAC, j = -span .. span, in 2**-GATE_FRAC units."""
    j = np.arange(-TABLE_SPAN * ACT_ONE, TABLE_SPAN * ACT_ONE + 1, dtype=np.float64)
    return to_fixed(det_sigmoid(j / ACT_ONE), GATE_FRAC)


def check_fan_in(fan_in: int, input_limit: int = ACT_LIMIT) -> None:
    """Raise if a dot product of ``fan_in`` terms could leave float64's exact integer range."""
    if fan_in * input_limit * WEIGHT_LIMIT + (WEIGHT_LIMIT << ACT_FRAC) >= EXACT_SUM_LIMIT:
        raise ValueError(f"fan-in {fan_in} too large for exact float64 accumulation")
