import numpy as np
import pytest
import scipy.linalg

from mclcore.metrics import (
    class_shares,
    density_coverage,
    fid,
    frechet_distance,
    gaussian_fit,
    knn_radii,
    precision_recall,
)


def features(n=600, dim=8, seed=0, shift=0.0):
    return np.random.default_rng(seed).normal(size=(n, dim)) + shift


def test_fid_of_a_set_with_itself_is_zero():
    x = features()
    assert fid(x, x) == pytest.approx(0.0, abs=1e-8)


def test_precision_and_recall_of_a_set_with_itself_are_one():
    x = features()
    assert precision_recall(x, x, k=3) == (1.0, 1.0)


def test_fid_grows_and_precision_recall_fall_as_a_set_moves_away():
    real = features(seed=0)
    fids, precisions, recalls = [], [], []
    for shift in (0.0, 0.5, 1.0, 2.0):
        fake = features(seed=1, shift=shift)
        fids.append(fid(real, fake))
        precision, recall = precision_recall(real, fake, k=3)
        precisions.append(precision)
        recalls.append(recall)
    assert fids == sorted(fids) and fids[-1] > 30
    assert precisions == sorted(precisions, reverse=True) and precisions[-1] < 0.3
    assert recalls == sorted(recalls, reverse=True) and recalls[-1] < 0.3


def test_frechet_distance_of_diagonal_gaussians_has_its_closed_form():
    mu1, mu2 = np.array([0.0, 1.0, 2.0]), np.array([1.0, 1.0, 0.0])
    var1, var2 = np.array([1.0, 4.0, 9.0]), np.array([4.0, 1.0, 1.0])
    # ||mu1 - mu2||^2 + sum (sqrt(var1) - sqrt(var2))^2 = 5 + (1 + 1 + 4)
    got = frechet_distance(mu1, np.diag(var1), mu2, np.diag(var2))
    assert got == pytest.approx(11.0, abs=1e-10)


def test_frechet_distance_agrees_with_the_matrix_square_root_form():
    a, b = features(400, 6, seed=2), features(300, 6, seed=3) @ np.diag([1, 2, 3, 1, 1, 0.5])
    (mu1, c1), (mu2, c2) = gaussian_fit(a), gaussian_fit(b)
    root = scipy.linalg.sqrtm(c1 @ c2).real
    expected = np.sum((mu1 - mu2) ** 2) + np.trace(c1 + c2 - 2 * root)
    assert frechet_distance(mu1, c1, mu2, c2) == pytest.approx(expected, rel=1e-8)


def brute_force_precision_recall(real, fake, k):
    """Kynkaanniemi et al. 2019 written out with explicit loops, for comparison."""

    def radius(points, i):
        distances = sorted(np.linalg.norm(points - points[i], axis=1))
        return distances[k]  # distances[0] is the point itself

    real_radii = [radius(real, i) for i in range(len(real))]
    fake_radii = [radius(fake, j) for j in range(len(fake))]
    inside_real = [
        any(np.linalg.norm(f - r) <= real_radii[i] for i, r in enumerate(real)) for f in fake
    ]
    inside_fake = [
        any(np.linalg.norm(r - f) <= fake_radii[j] for j, f in enumerate(fake)) for r in real
    ]
    return np.mean(inside_real), np.mean(inside_fake)


def test_precision_recall_match_a_brute_force_implementation():
    real, fake = features(80, 3, seed=4), features(60, 3, seed=5, shift=0.7)
    assert precision_recall(real, fake, k=3) == pytest.approx(
        brute_force_precision_recall(real, fake, 3)
    )


def test_knn_radius_excludes_the_point_itself():
    points = np.array([[0.0], [1.0], [3.0], [7.0]])
    assert knn_radii(points, 1).tolist() == [1.0, 1.0, 2.0, 4.0]
    assert knn_radii(points, 2).tolist() == [3.0, 2.0, 3.0, 6.0]


def test_a_fake_set_covering_half_the_real_one_has_full_precision_and_half_recall():
    real = features(1000, 2, seed=6)
    precision, recall = precision_recall(real, real[real[:, 0] > 0], k=3)
    assert precision == 1.0 and 0.45 < recall < 0.65


def test_sample_quality_of_a_set_against_itself_is_perfect():
    from mclcore.metrics import sample_quality

    x = features(300, 5, seed=7)
    result = sample_quality(x, x, k=3, seed=0)
    assert result["fid"] == pytest.approx(0.0, abs=1e-8)
    assert result["precision"] == 1.0 and result["recall"] == 1.0


def test_sample_quality_compares_precision_recall_on_sets_of_equal_size():
    from mclcore.metrics import sample_quality

    reference, fake = features(2000, 4, seed=8), features(200, 4, seed=9)
    got = sample_quality(reference, fake, k=3, seed=1)
    subset = np.sort(np.random.default_rng(1).choice(2000, 200, replace=False))
    assert (got["precision"], got["recall"]) == precision_recall(reference[subset], fake, 3)
    assert got["fid"] == pytest.approx(fid(reference, fake))
    with pytest.raises(ValueError, match="reference"):
        sample_quality(fake, reference, k=3, seed=1)


def brute_density_coverage(real, fake, k):
    """Naeem et al. 2020, Eqs. 3-4, written out with numpy loops (an independent check)."""
    real, fake = np.asarray(real, dtype=np.float64), np.asarray(fake, dtype=np.float64)
    radii = []
    for point in real:
        distances = np.sqrt(((real - point) ** 2).sum(axis=1))
        radii.append(np.sort(distances)[k])  # index 0 is the point itself
    inside = np.array(
        [[np.sqrt(((y - x) ** 2).sum()) <= r for x, r in zip(real, radii)] for y in fake]
    )
    return inside.sum() / (k * len(fake)), inside.any(axis=0).mean()


def test_density_and_coverage_match_a_brute_force_implementation():
    rng = np.random.default_rng(3)
    real, fake = rng.normal(size=(60, 4)), rng.normal(0.5, 1.2, size=(50, 4))
    density, coverage = density_coverage(real, fake, k=5)
    expected_density, expected_coverage = brute_density_coverage(real, fake, 5)
    assert density == pytest.approx(expected_density)
    assert coverage == pytest.approx(expected_coverage)


def test_identical_sets_are_fully_covered_and_far_sets_not_at_all():
    points = np.random.default_rng(4).normal(size=(80, 3))
    assert density_coverage(points, points, k=5)[1] == 1.0
    assert density_coverage(points, points + 100.0, k=5) == (0.0, 0.0)


def test_class_shares_count_every_class_even_the_empty_ones():
    assert class_shares([0, 2, 2, 2], 4).tolist() == [0.25, 0.0, 0.75, 0.0]


@pytest.mark.parametrize("k", [3, 5])
def test_all_four_agree_with_the_prdc_package(k):
    """prdc (Naeem et al.'s own implementation) on the same features, different sizes."""
    from prdc import compute_prdc

    real = features(n=300, dim=16, seed=0)
    fake = 1.2 * features(n=250, dim=16, seed=1, shift=0.3)
    expected = compute_prdc(real_features=real, fake_features=fake, nearest_k=k)
    # Ours average in float32, so the shares agree to float32 rounding.
    precision, recall = precision_recall(real, fake, k)
    density, coverage = density_coverage(real, fake, k)
    assert precision == pytest.approx(expected["precision"], abs=1e-6)
    assert recall == pytest.approx(expected["recall"], abs=1e-6)
    assert density == pytest.approx(expected["density"], abs=1e-6)
    assert coverage == pytest.approx(expected["coverage"], abs=1e-6)
    assert 0.05 < coverage < 0.95 and 0.05 < precision < 0.95  # not a trivial agreement
