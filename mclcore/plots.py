"""Charts of the analyses (matplotlib, written atomically as PNG)."""

from __future__ import annotations

import numpy as np

from mclcore.files import atomic_path

FASHION_MNIST_CLASSES = (
    "T-shirt", "Trouser", "Pullover", "Dress", "Coat",
    "Sandal", "Shirt", "Sneaker", "Bag", "Boot",
)  # fmt: skip


def class_names(dataset: str, n: int) -> list[str]:
    """Labels of the n classes: Fashion-MNIST's names, else the class indices (digits)."""
    if dataset == "fashion_mnist" and n == len(FASHION_MNIST_CLASSES):
        return list(FASHION_MNIST_CLASSES)
    return [str(i) for i in range(n)]


def save_class_histograms(shares: dict[str, np.ndarray], names: list[str], path) -> None:
    """One bar chart of class shares per row of `shares`, the uniform share 1/C dashed."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    rows = list(shares)
    fig, axes = plt.subplots(
        len(rows), 1, figsize=(7, 1.6 * len(rows) + 0.6), sharex=True, squeeze=False
    )
    top = max(0.3, max(float(s.max()) for s in shares.values()) * 1.1)
    for ax, row in zip(axes[:, 0], rows):
        ax.bar(range(len(names)), shares[row], color="tab:blue")
        ax.axhline(1 / len(names), color="black", linestyle="--", linewidth=1)
        ax.set_ylim(0, top)
        ax.set_ylabel(row, rotation=0, ha="right", va="center")
    axes[-1, 0].set_xticks(range(len(names)), names, rotation=45, ha="right")
    fig.suptitle("Classes of each expert's samples (dashed: uniform share)")
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110)
    plt.close(fig)
