"""Shared fixtures: small real data (from ../shared when present) or synthetic data."""

from __future__ import annotations

import gzip
import os
from pathlib import Path

import numpy as np
import pytest

from mclcore.idx import encode_idx, read_idx

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("MCL_TEST_DATA", REPO.parent / "shared" / "data"))
FASHION = SHARED_DATA / "fashion-mnist"


def synthetic_digits(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Images of ten distinct bar patterns with a little noise: a learnable stand-in."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 10, n)
    images = np.zeros((n, 28, 28), dtype=np.float64)
    for i, label in enumerate(labels):
        row = 4 + 2 * label
        images[i, row : row + 3, 4:24] = 220
        images[i, 4:24, row : row + 3] = 120 + 10 * label
    images += rng.normal(0, 10, images.shape)
    return np.clip(images, 0, 255).astype(np.uint8), labels.astype(np.uint8)


def write_idx_folder(folder: Path, n_train: int, n_test: int, gz: bool = True) -> Path:
    """Four IDX files of a small dataset: a slice of Fashion-MNIST when ../shared has it."""
    folder.mkdir(parents=True, exist_ok=True)
    if FASHION.is_dir():
        train = read_idx(FASHION / "train-images-idx3-ubyte.gz")[:n_train]
        train_y = read_idx(FASHION / "train-labels-idx1-ubyte.gz")[:n_train]
        test = read_idx(FASHION / "t10k-images-idx3-ubyte.gz")[:n_test]
        test_y = read_idx(FASHION / "t10k-labels-idx1-ubyte.gz")[:n_test]
    else:
        train, train_y = synthetic_digits(n_train, 0)
        test, test_y = synthetic_digits(n_test, 1)
    arrays = {
        "train-images-idx3-ubyte": train,
        "train-labels-idx1-ubyte": train_y,
        "t10k-images-idx3-ubyte": test,
        "t10k-labels-idx1-ubyte": test_y,
    }
    for name, array in arrays.items():
        data = encode_idx(np.ascontiguousarray(array))
        if gz:
            (folder / f"{name}.gz").write_bytes(gzip.compress(data))
        else:
            (folder / name).write_bytes(data)
    return folder


@pytest.fixture
def idx_folder(tmp_path: Path) -> Path:
    """A small dataset of 600 training and 300 test images as gzipped IDX files."""
    return write_idx_folder(tmp_path / "idx", 600, 300)


# A score network small enough for a unit test to train it in seconds.
TINY_MODEL = dict(channels=(8, 16, 16), emb_dim=32, groups=4, precond="edm", sigma_data=0.5)

# Optimisation settings every tiny training test shares (EDM noise levels, clipped steps).
TINY_OPTIMISATION = dict(
    ema_decay=0.99,
    grad_clip=1.0,
    sigma_sampling="lognormal",
    p_mean=-1.2,
    p_std=1.2,
    sigma_min=0.01,
    sigma_max=80.0,
    seed=0,
)
