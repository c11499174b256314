"""How many CPU threads the neural codecs use: ``NZIP_THREADS`` (``nzip --threads``), else
every core. Torch codecs apply it to torch when they are built; the local codec, which needs
no torch, splits its batches over that many threads itself."""

from __future__ import annotations

import os
import threading
from contextlib import contextmanager

_limit = threading.local()  # a cap set by :func:`fewer_threads`, per calling thread


def codec_threads() -> int:
    """``NZIP_THREADS``, else the core count; within :func:`fewer_threads`, capped for the
    calling thread."""
    value = os.environ.get("NZIP_THREADS", "")
    threads = max(1, int(value)) if value.isdigit() else max(1, os.cpu_count() or 1)
    return min(threads, getattr(_limit, "threads", threads))


@contextmanager
def fewer_threads(spared: int):
    """Within: this thread's codecs use ``spared`` fewer threads than :func:`codec_threads`
    says (at least one), and so does torch (its thread count is process-wide: only use this
    while no other thread runs torch). For work done beside another thread that keeps a
    core busy (auto's estimates while a classical encoder runs): more threads than cores
    would slow both. Decoded images never depend on thread counts (the encoders' float
    fits may, as :func:`~neuralzip.codecs.head_offsets.fit` says)."""
    import torch

    previous_torch, previous = torch.get_num_threads(), getattr(_limit, "threads", None)
    _limit.threads = max(1, codec_threads() - spared)
    torch.set_num_threads(_limit.threads)
    try:
        yield
    finally:
        torch.set_num_threads(previous_torch)
        if previous is None:
            del _limit.threads
        else:
            _limit.threads = previous


def configure_torch() -> None:
    """Apply ``NZIP_THREADS`` to torch (only call where torch is needed anyway)."""
    if os.environ.get("NZIP_THREADS", "").isdigit():
        import torch

        torch.set_num_threads(codec_threads())
