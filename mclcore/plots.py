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


def save_class_histograms(
    shares: dict[str, np.ndarray], names: list[str], path, images: int | None = None
) -> None:
    """One bar chart of class shares per row of `shares`, the uniform share 1/C dashed;
    `images`, the number classified per row, goes in the title."""
    plt = _pyplot()
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
    counted = f"{images} samples of each expert" if images else "each expert's samples"
    fig.suptitle(f"Classes of {counted} (dashed: uniform share)")
    fig.tight_layout()
    _save(fig, path)


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    return plt


def _save(fig, path) -> None:
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110)
    _pyplot().close(fig)


def save_trajectories(rows: dict[str, np.ndarray], sigmas: list[float], path) -> None:
    """One row of snapshots per strategy ({label: uint8 [S, h, w]}), one column per noise
    level, labelled with its sigma (0 is the final image)."""
    plt = _pyplot()
    n_rows, n_cols = len(rows), len(sigmas)
    fig, axes = plt.subplots(
        n_rows, n_cols, figsize=(1.2 * n_cols + 1.4, 1.25 * n_rows + 0.7), squeeze=False
    )
    for r, (label, snaps) in enumerate(rows.items()):
        for c, image in enumerate(snaps):
            ax = axes[r, c]
            ax.imshow(image, cmap="gray", vmin=0, vmax=255)
            ax.set_xticks([])
            ax.set_yticks([])
            if r == 0:
                ax.set_title("final" if sigmas[c] == 0 else f"σ = {sigmas[c]:.3g}", fontsize=9)
        axes[r, 0].set_ylabel(label, rotation=0, ha="right", va="center", fontsize=9)
    fig.suptitle("One initial noise through each strategy (left: pure noise, right: image)")
    fig.tight_layout()
    _save(fig, path)


def save_temporal_specialisation(
    level_sigmas, gate_shares, band_edges, band_rates, path, n_trajectories: int
) -> None:
    """Left: the share of gated decisions per expert at each sampling level, stacked, one
    bar per level reaching half-way (in log sigma) to its neighbours. Right: the experts'
    training win rates per band of sigma, stacked. Both run from high noise (left) to
    clean (right) on the same log-sigma axis, in the same colours; a band or level with
    no decisions is left empty."""
    plt = _pyplot()
    k = gate_shares.shape[1]
    colours = [plt.get_cmap("tab10")(i % 10) for i in range(k)]
    labels = [f"expert {i}" for i in range(k)]
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4), sharey=True)
    order = np.argsort(level_sigmas)  # the grid runs from high noise down; bars go up
    level_edges = _level_edges(level_sigmas)
    _stacked_bars(left, level_edges, np.asarray(gate_shares)[order], colours, labels)
    left.set_title(f"Gate's choices along {n_trajectories} sampling trajectories")
    edges = np.asarray(band_edges)
    _stacked_bars(right, edges, np.asarray(band_rates), colours, labels)
    right.set_title("Training win rates per band of sigma (last quarter)")
    for ax in (left, right):
        ax.set_xscale("log")
        ax.set_xlim(max(edges.max(), level_edges.max()), min(edges.min(), level_edges.min()))
        ax.set_xlabel("sigma (high noise → clean)")
        ax.set_ylim(0, 1)
    left.set_ylabel("share")
    right.legend(loc="center left", bbox_to_anchor=(1.0, 0.5), fontsize=8)
    fig.tight_layout()
    _save(fig, path)


def _level_edges(levels) -> np.ndarray:
    """Bar edges around positive levels (sorted here), half-way between them in log space."""
    logs = np.log(np.sort(np.asarray(levels, dtype=np.float64)))
    if len(logs) == 1:
        return np.exp(logs[0] + np.array([-0.5, 0.5]))
    mids = (logs[1:] + logs[:-1]) / 2
    return np.exp(np.concatenate([[2 * logs[0] - mids[0]], mids, [2 * logs[-1] - mids[-1]]]))


def _stacked_bars(ax, edges, shares, colours, labels) -> None:
    """Stacked bars of `shares` [bars, K], bar j between edges[j] and edges[j + 1]."""
    bottom = np.zeros(len(shares))
    for i in range(shares.shape[1]):
        ax.bar(
            edges[:-1], shares[:, i], width=np.diff(edges), bottom=bottom, align="edge",
            color=colours[i], label=labels[i], edgecolor="white", linewidth=0.5,
        )  # fmt: skip
        bottom += shares[:, i]
