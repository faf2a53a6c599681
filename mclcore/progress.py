"""Progress bars that redraw live in a terminal and print rarely into a log file."""

from __future__ import annotations

import sys

from tqdm import tqdm


def progress(iterable=None, **kwargs) -> tqdm:
    """A tqdm bar; when stderr is not a terminal it prints at most every 30 seconds."""
    if not sys.stderr.isatty():
        kwargs.setdefault("mininterval", 30.0)
        kwargs.setdefault("maxinterval", 60.0)
    return tqdm(iterable, **kwargs)
