"""Per-image head offsets of the local codec: the encoder adapts the model to the image.

A model trained on one kind of image is miscalibrated on another: the CIFAR-10 model is too
sure of itself on a film scan, a model of wallpaper crops a little off in its means. JPEG-XL
adapts its contexts to each image; a fixed network cannot. For an image of at least
:data:`MIN_PIXELS` pixels, a model version whose card enables them (``"coding":
{"head_offsets": true}``) lets the encoder fit one offset per head output (the mixture's
logits, means, log-scales and couplings: 100 numbers for 10 mixtures of RGB), the same for
every pixel, to the image: the decoder adds them to every head the integer network computes
and clips the sums to the head's range, so both sides use the same integers. On the Kodak
photographs this saves 0.07-0.10 bits per sub-pixel for ~200 bytes (0.002 on 768x512).

The fit is float (Adam, :data:`FIT_STEPS` steps on the float mixture likelihood of a fixed
sample of :data:`FIT_PIXELS` of the image's pixels, from their exact heads, in numpy: no
torch to import) and runs only in the encoder; what the payload
carries, and the decoder uses, are integers. The encoder keeps the offsets only if the exact
code length of the sample says they save more than their bytes; otherwise the block says
"none" (one byte).

Block (docs/FORMAT.md, *Head offsets*): varint n, 0 (no offsets) or the head's size; then n
zigzag varints, the offsets in units of :data:`OFFSET_UNIT` head units (2**-9; the head is
in 2**-12).
"""

from __future__ import annotations

import numpy as np

from ..container import varint
from ..distributions import MixtureLayout, mixture_log_likelihood_and_gradient
from ..exact.local import HEAD_LIMIT
from .base import PayloadError
from .tiles import read_varint

MIN_PIXELS = 1 << 14  # images at least this large carry the block (smaller: ~200 bytes is too dear)
OFFSET_UNIT = 8  # head units per stored unit: offsets on a 2**-9 grid
UNIT_LIMIT = HEAD_LIMIT // OFFSET_UNIT  # |stored unit| bound: an offset never exceeds the head's range
# The fit's sample and steps: on Kodak, 4,096 pixels lose ~0.003 bits per sub-pixel against
# 8,192 in half the time (~1 s on one core); fewer steps lose more.
FIT_PIXELS = 4096
FIT_STEPS = 60
# Offsets save less than this fraction of an image's bits (Kodak, local v11/v12 and local-photo
# v2: 2.3-3.6%); auto skips the fit where even this would not reach the best size so far.
MAX_GAIN = 0.04
# Adam's step per head output kind: the logits and log-scales move freely, the means and the
# channel couplings ten times slower (at the same rate they overshot: on Kodak, fitted
# means made some images 0.4 bits per sub-pixel worse instead of 0.08 better).
FIT_RATE_FAST, FIT_RATE_SLOW = 0.03, 0.003
HEAD_ONE = 4096  # head units per float unit (2**-12)
ADAM_BETAS, ADAM_EPS = (0.9, 0.999), 1e-8  # PyTorch's defaults
FIT_ROWS = 512  # pixels per piece of the gradient: its temporaries stay in cache (3x faster than all)


def enabled(card: dict) -> bool:
    """Whether a model version's files carry head offsets (its card says so; never changes)."""
    return bool(card.get("coding", {}).get("head_offsets", False))


def carries_block(height: int, width: int) -> bool:
    """Whether an image of this size carries the block (with a model that enables it)."""
    return height * width >= MIN_PIXELS


def encode_block(units: np.ndarray | None) -> bytes:
    """The block of stored units int64 [size] (None: no offsets)."""
    if units is None:
        return varint(0)
    zigzag = [(2 * int(u)) if u >= 0 else (-2 * int(u) - 1) for u in units]
    return varint(len(units)) + b"".join(varint(z) for z in zigzag)


def decode_block(payload: bytes, pos: int, size: int, codec: str) -> tuple[np.ndarray | None, int]:
    """(stored units int64 [size] or None, next position) of the block at ``pos``."""
    count, pos = read_varint(payload, pos, f"{codec} head offsets")
    if count == 0:
        return None, pos
    if count != size:
        raise PayloadError(f"{codec} payload is corrupt ({count} head offsets for a head of {size})")
    units = np.empty(size, dtype=np.int64)
    for i in range(size):
        z, pos = read_varint(payload, pos, f"{codec} head offsets")
        units[i] = z // 2 if z % 2 == 0 else -(z + 1) // 2
        if abs(units[i]) > UNIT_LIMIT:
            raise PayloadError(f"{codec} payload is corrupt (a head offset beyond the head's range)")
    return units, pos


def apply(head: np.ndarray, offsets: np.ndarray) -> np.ndarray:
    """Heads int64 [..., size] plus offsets in head units (broadcast), clipped to the head's
    range as the integer network clips its own output: integer arithmetic, exact."""
    return np.clip(head + offsets, -HEAD_LIMIT, HEAD_LIMIT)


def fit(head: np.ndarray, values: np.ndarray, layout: MixtureLayout) -> np.ndarray:
    """Stored units int64 [size] of the offsets that maximise the float mixture likelihood
    of ``values`` int [N, c] (c = 3, or 1 for grey: only channel 0 is coded) under the exact
    heads ``head`` int64 [N, size]: :data:`FIT_STEPS` steps of Adam (PyTorch's update rule,
    written out) on the numpy likelihood and gradient, so an encode imports no torch.
    Deterministic: the same inputs give the same offsets on any thread count."""
    columns, fitted = _coded_columns(layout, values.shape[1])
    params = head[:, columns].astype(np.float64) / HEAD_ONE
    x = values.astype(np.float64) * (2.0 / 255.0) - 1.0
    k = layout.mixtures
    rate = np.full(layout.size, FIT_RATE_FAST)
    rate[k : k + layout.channels * k] = FIT_RATE_SLOW  # means
    rate[k + 2 * layout.channels * k :] = FIT_RATE_SLOW  # couplings
    rate = rate[columns]
    offsets, first, second = (np.zeros(len(columns)) for _ in range(3))
    for step in range(1, FIT_STEPS + 1):
        gradient = np.zeros(len(columns))
        for start in range(0, len(params), FIT_ROWS):  # in the same order every time: deterministic
            rows = slice(start, start + FIT_ROWS)
            gradient -= mixture_log_likelihood_and_gradient(params[rows] + offsets, x[rows], fitted)[1].sum(axis=0)
        gradient /= len(params)  # of the loss: the mean negative log-likelihood
        first = ADAM_BETAS[0] * first + (1 - ADAM_BETAS[0]) * gradient
        second = ADAM_BETAS[1] * second + (1 - ADAM_BETAS[1]) * gradient**2
        denominator = np.sqrt(second) / np.sqrt(1 - ADAM_BETAS[1] ** step) + ADAM_EPS
        offsets -= rate / (1 - ADAM_BETAS[0] ** step) * first / denominator
    units = np.zeros(layout.size, dtype=np.int64)
    units[columns] = np.rint(offsets * HEAD_ONE / OFFSET_UNIT)
    return np.clip(units, -UNIT_LIMIT, UNIT_LIMIT)


def _coded_columns(layout: MixtureLayout, channels: int) -> tuple[list[int], MixtureLayout]:
    """The head columns that code ``channels`` channels and their layout: all of them for
    RGB; for grey, the logits and channel 0's means and log-scales (what its one coded
    channel reads)."""
    if channels == layout.channels:
        return list(range(layout.size)), layout
    k = layout.mixtures
    means, log_scales = k, k + layout.channels * k
    return [*range(k), *range(means, means + k), *range(log_scales, log_scales + k)], MixtureLayout(1, k)
