"""How many CPU threads the neural codecs use: ``NZIP_THREADS`` (``nzip --threads``), else
every core. Torch codecs apply it to torch when they are built; the local codec, which needs
no torch, splits its batches over that many threads itself."""

from __future__ import annotations

import os
import sys
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
    would slow both. Torch is not imported for this (~1.5 s): if it is loaded, its count is
    capped and restored after; if a torch codec loads it within, the codec applies the cap
    (:func:`configure_torch`) and the full count is set after. Neither decoded images nor
    payloads depend on thread counts (codecs/base.py)."""
    torch = sys.modules.get("torch")
    previous_torch, previous = (torch.get_num_threads() if torch else None), getattr(_limit, "threads", None)
    _limit.threads = max(1, codec_threads() - spared)
    if torch:
        torch.set_num_threads(_limit.threads)
    try:
        yield
    finally:
        if previous is None:
            del _limit.threads
        else:
            _limit.threads = previous
        if torch:
            torch.set_num_threads(previous_torch)
        elif "torch" in sys.modules:  # loaded within, at the capped count
            sys.modules["torch"].set_num_threads(codec_threads())


def configure_torch() -> None:
    """Apply ``NZIP_THREADS`` to torch, capped within :func:`fewer_threads` (only call where
    torch is needed anyway)."""
    if os.environ.get("NZIP_THREADS", "").isdigit() or hasattr(_limit, "threads"):
        import torch

        torch.set_num_threads(codec_threads())
