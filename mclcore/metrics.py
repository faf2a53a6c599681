"""Sample-quality metrics on feature vectors: FID, precision and recall, density and coverage."""

from __future__ import annotations

import numpy as np
import torch


def gaussian_fit(features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean and (unbiased) covariance of feature rows."""
    features = np.asarray(features, dtype=np.float64)
    if features.ndim != 2 or len(features) < 2:
        raise ValueError(f"need at least 2 feature rows of shape [N, D], got {features.shape}")
    return features.mean(axis=0), np.cov(features, rowvar=False)


def _sqrt_psd(matrix: np.ndarray) -> np.ndarray:
    values, vectors = np.linalg.eigh(matrix)
    return (vectors * np.sqrt(np.clip(values, 0, None))) @ vectors.T


def frechet_distance(mu1, cov1, mu2, cov2) -> float:
    """||mu1 - mu2||^2 + Tr(C1 + C2 - 2 (C1 C2)^(1/2)) (Heusel et al. 2017, Eq. 6).

    Tr (C1 C2)^(1/2) is computed as the sum of square roots of the eigenvalues of the
    symmetric matrix C1^(1/2) C2 C1^(1/2), which has the same spectrum and stays real.
    """
    root1 = _sqrt_psd(cov1)
    middle = root1 @ cov2 @ root1
    trace_sqrt = np.sqrt(np.clip(np.linalg.eigvalsh((middle + middle.T) / 2), 0, None)).sum()
    distance = np.sum((mu1 - mu2) ** 2) + np.trace(cov1) + np.trace(cov2) - 2 * trace_sqrt
    return float(max(distance, 0.0))


def fid(real: np.ndarray, fake: np.ndarray) -> float:
    """Frechet distance between Gaussian fits of two feature sets."""
    return frechet_distance(*gaussian_fit(real), *gaussian_fit(fake))


def _pairwise_distances(a: torch.Tensor, b: torch.Tensor, chunk: int = 2048):
    """Yield (row offset, distance block) of the Euclidean distances from rows of a to b."""
    for start in range(0, len(a), chunk):
        yield start, torch.cdist(a[start : start + chunk], b)


def knn_radii(features: np.ndarray, k: int) -> np.ndarray:
    """Distance from each point to its k-th nearest neighbour in the same set (not itself)."""
    points = torch.as_tensor(np.asarray(features, dtype=np.float64))
    if len(points) <= k:
        raise ValueError(f"need more than k={k} points for k-NN radii, got {len(points)}")
    radii = torch.empty(len(points), dtype=torch.float64)
    for start, block in _pairwise_distances(points, points):
        # The k+1 smallest include the point itself at distance 0.
        radii[start : start + len(block)] = block.topk(k + 1, dim=1, largest=False).values[:, k]
    return radii.numpy()


def coverage_of(manifold: np.ndarray, radii: np.ndarray, queries: np.ndarray) -> np.ndarray:
    """For each query, whether it lies within the k-NN radius of any manifold point."""
    centres = torch.as_tensor(np.asarray(manifold, dtype=np.float64))
    radius = torch.as_tensor(radii)
    query = torch.as_tensor(np.asarray(queries, dtype=np.float64))
    inside = torch.zeros(len(query), dtype=torch.bool)
    for start, block in _pairwise_distances(query, centres):
        inside[start : start + len(block)] = (block <= radius[None, :]).any(dim=1)
    return inside.numpy()


def precision_recall(real: np.ndarray, fake: np.ndarray, k: int = 3) -> tuple[float, float]:
    """Improved precision and recall (Kynkaanniemi et al. 2019, Eqs. 1-3).

    Precision: share of fake points inside the real manifold (the union of balls around
    each real point with its k-NN radius). Recall: share of real points inside the fake one.
    """
    precision = coverage_of(real, knn_radii(real, k), fake).mean()
    recall = coverage_of(fake, knn_radii(fake, k), real).mean()
    return float(precision), float(recall)


def density_coverage(real: np.ndarray, fake: np.ndarray, k: int = 5) -> tuple[float, float]:
    """Density and coverage (Naeem et al. 2020, Eqs. 3-4), on the real k-NN balls only.

    Density: the average number of real balls a fake point falls in, over k (about 1 when
    both sets come from one distribution, above 1 where fakes crowd dense regions).
    Coverage: the share of real points whose ball holds at least one fake.
    """
    radii = torch.as_tensor(knn_radii(real, k))
    centres = torch.as_tensor(np.asarray(real, dtype=np.float64))
    query = torch.as_tensor(np.asarray(fake, dtype=np.float64))
    inside_count = 0.0
    covered = torch.zeros(len(centres), dtype=torch.bool)
    for _, block in _pairwise_distances(query, centres):
        inside = block <= radii[None, :]
        inside_count += float(inside.sum())
        covered |= inside.any(dim=0)
    return inside_count / (k * len(query)), float(covered.float().mean())


def class_shares(labels, n_classes: int) -> np.ndarray:
    """[n_classes]: the share of the labels that falls in each class."""
    labels = np.asarray(labels)
    return np.bincount(labels, minlength=n_classes) / len(labels)


def quality_metrics(real: np.ndarray, fake: np.ndarray, k: int = 3) -> dict[str, float]:
    """FID, precision and recall of `fake` against `real` features."""
    precision, recall = precision_recall(real, fake, k)
    return {"fid": fid(real, fake), "precision": precision, "recall": recall}


def sample_quality(
    reference: np.ndarray, fake: np.ndarray, k: int, seed: int, dc_k: int = 5
) -> dict[str, float]:
    """FID against the whole reference; precision and recall (k), density and coverage
    (dc_k) against as many reference points as there are fakes, drawn with `seed`.

    k-NN radii shrink as a set grows, so precision and recall compare sets of equal size
    (as Kynkaanniemi et al. 2019 do); FID uses every reference point for its statistics.
    """
    if len(fake) > len(reference):
        raise ValueError(f"{len(fake)} samples but only {len(reference)} reference images")
    subset = np.random.default_rng(seed).choice(len(reference), len(fake), replace=False)
    real = reference[np.sort(subset)]
    precision, recall = precision_recall(real, fake, k)
    density, coverage = density_coverage(real, fake, dc_k)
    return {
        "fid": fid(reference, fake),
        "precision": precision,
        "recall": recall,
        "density": density,
        "coverage": coverage,
    }
