"""How many CPU threads the neural codecs use: ``NZIP_THREADS`` (``nzip --threads``), else
every core. Torch codecs apply it to torch when they are built; the local codec, which needs
no torch, splits its batches over that many threads itself."""

from __future__ import annotations

import os


def codec_threads() -> int:
    value = os.environ.get("NZIP_THREADS", "")
    return max(1, int(value)) if value.isdigit() else max(1, os.cpu_count() or 1)


def configure_torch() -> None:
    """Apply ``NZIP_THREADS`` to torch (only call where torch is needed anyway)."""
    if os.environ.get("NZIP_THREADS", "").isdigit():
        import torch

        torch.set_num_threads(int(os.environ["NZIP_THREADS"]))
