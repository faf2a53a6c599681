"""Image files for people to look at."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from mclcore.files import atomic_path


def image_grid(images: np.ndarray, columns: int = 10, pad: int = 2) -> np.ndarray:
    """Tile uint8 images [n, h, w] into one uint8 picture with `pad` pixels between them."""
    n, h, w = images.shape
    rows = math.ceil(n / columns)
    grid = np.full((rows * (h + pad) + pad, columns * (w + pad) + pad), 255, dtype=np.uint8)
    for i, image in enumerate(images):
        r, c = divmod(i, columns)
        top, left = pad + r * (h + pad), pad + c * (w + pad)
        grid[top : top + h, left : left + w] = image
    return grid


def save_grid(images: np.ndarray, path: str | Path, columns: int = 10, scale: int = 3) -> None:
    """Write a PNG grid of the images, enlarged `scale` times, atomically."""
    from PIL import Image

    picture = Image.fromarray(image_grid(images, columns))
    picture = picture.resize((picture.width * scale, picture.height * scale), Image.NEAREST)
    with atomic_path(path) as tmp:
        picture.save(tmp, format="PNG")
