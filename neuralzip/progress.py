"""Progress bars that show on a terminal and stay quiet otherwise (logs, pipes, CI)."""

from __future__ import annotations

import os
import sys

from tqdm.auto import tqdm


def progress_enabled(stream=None) -> bool:
    """True when ``stream`` (stderr by default) is a terminal and NZIP_PROGRESS is not 0."""
    if os.environ.get("NZIP_PROGRESS") == "0":
        return False
    if os.environ.get("NZIP_PROGRESS") == "1":
        return True
    stream = stream or sys.stderr
    return hasattr(stream, "isatty") and stream.isatty()


def progress(iterable=None, **kwargs):
    """``tqdm`` on stderr, disabled when stderr is not a terminal (or ``disable=True``)."""
    if kwargs.get("disable") is None:
        kwargs["disable"] = not progress_enabled()
    kwargs.setdefault("dynamic_ncols", True)
    return tqdm(iterable, file=sys.stderr, **kwargs)
