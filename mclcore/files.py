"""Atomic writes: an output appears whole under its final name or not at all."""

from __future__ import annotations

import contextlib
import json
import os
import sys
import tempfile
from pathlib import Path


@contextlib.contextmanager
def atomic_path(path: str | Path):
    """Yield a temporary path beside `path`; on success it replaces `path` in one rename."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(handle)
    try:
        yield Path(tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def write_json(path: str | Path, data) -> None:
    """Write `data` as indented JSON, atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")


def write_text(path: str | Path, text: str) -> None:
    """Write `text`, atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(text)


def write_csv(path: str | Path, header, rows) -> None:
    """Write a header line and rows as CSV, atomically (floats with 6 significant digits)."""
    import csv

    def cell(value):
        return f"{value:.6g}" if isinstance(value, float) else value

    with atomic_path(path) as tmp, open(tmp, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        writer.writerows([cell(v) for v in row] for row in rows)


def torch_save(obj, path: str | Path) -> None:
    """torch.save, atomically."""
    import torch

    with atomic_path(path) as tmp:
        torch.save(obj, tmp)


def emit_json(data, out: str) -> None:
    """Print `data` as JSON when `out` is "-", else write it to the file `out`, atomically."""
    if out == "-":
        sys.stdout.write(json.dumps(data, indent=2) + "\n")
    else:
        write_json(out, data)
