"""Wavefront order and ANS stream layout of local autoregressive codecs (docs/FORMAT.md).

A local model with horizon ``h`` predicts pixel (i, j) from the ``h`` rows above within
``h`` columns either side and the ``h`` pixels to its left. Its last dependencies are
(i - 1, j + h) and (i, j - 1), so with step ``t = (h + 1) i + j`` every dependency of a
pixel is decoded at an earlier step, and all pixels of one step decode together:
``(h + 1)(H - 1) + W`` steps for an H x W image instead of H * W.

Streams: row i is coded on stream ``i mod S`` of its image, with ``S`` = :func:`stream_count`
(a function of the image's size and the horizon alone, so it is not stored). A step's
active rows are consecutive, so when S is at least their number (about W / (h + 1)) every
pixel of a step pops from a different stream; with fewer streams (small images, where each
stream's ending would cost more than parallelism gains) a step's pixels that share a stream
pop one after another in increasing row order. Within a pixel, channels pop R, G, B. The
encoder pushes each stream's symbols in exactly the reverse of this order.
"""

from __future__ import annotations

import math

import numpy as np

PIXELS_PER_STREAM = 2048  # ~20 bits of stream ending per stream: under 0.004 bits per sub-pixel


def steps(height: int, width: int, horizon: int) -> int:
    """Number of wavefront steps of an image."""
    if height == 0 or width == 0:
        return 0
    return (horizon + 1) * (height - 1) + width


def parallel_rows(height: int, width: int, horizon: int) -> int:
    """The most rows any step decodes at once."""
    return max(1, min(height, math.ceil(width / (horizon + 1))))


def stream_count(height: int, width: int, horizon: int) -> int:
    """ANS streams per image: enough for every pixel of a step to have its own, but no
    more than one per ``PIXELS_PER_STREAM`` pixels (and at least one)."""
    return max(1, min(parallel_rows(height, width, horizon), (height * width) // PIXELS_PER_STREAM))


def active(t: int, height: int, width: int, horizon: int) -> tuple[np.ndarray, np.ndarray]:
    """(rows, columns) of the pixels decoded at step ``t``, rows increasing."""
    first = max(0, -((width - 1 - t) // (horizon + 1)))  # smallest i with t - (h+1) i <= W - 1
    last = min(height - 1, t // (horizon + 1))
    rows = np.arange(first, last + 1, dtype=np.int64)
    return rows, t - (horizon + 1) * rows


def pop_order(height: int, width: int, horizon: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """For every pixel in raster order: (stream, rank in its stream's pop order), and each
    stream's number of pixels. Pixels of a stream pop by step, then by row."""
    s = stream_count(height, width, horizon)
    rows = np.repeat(np.arange(height, dtype=np.int64), width)
    cols = np.tile(np.arange(width, dtype=np.int64), height)
    stream = rows % s
    step = (horizon + 1) * rows + cols
    order = np.lexsort((rows, step, stream))  # by stream, then step, then row
    counts = np.bincount(stream, minlength=s)
    first = np.concatenate([[0], np.cumsum(counts)[:-1]])
    rank = np.empty(height * width, dtype=np.int64)
    rank[order] = np.arange(height * width) - first[stream[order]]
    return stream, rank, counts


def rounds(rows: np.ndarray, streams: int) -> list[np.ndarray]:
    """Split a step's active pixels (consecutive rows) into rounds in which no two pixels
    share a stream: round r holds the pixels whose rank among their stream's is r."""
    if len(rows) <= streams:
        return [np.arange(len(rows))]
    rank = (rows - rows[0]) // streams
    return [np.nonzero(rank == r)[0] for r in range(int(rank[-1]) + 1)]
