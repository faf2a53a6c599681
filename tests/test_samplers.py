import math

import pytest
import torch

from mclcore.diffusion import gaussian_denoiser
from mclcore.samplers import (
    edm_sigmas,
    evaluations_per_sample,
    geometric_sigmas,
    initial_noise,
    sample_euler,
    sample_heun,
)

SIGMA_MIN, SIGMA_MAX = 0.01, 80.0
MEAN, STD = 0.3, 0.5


def exact_flow(x_T: torch.Tensor) -> torch.Tensor:
    """Exact probability-flow map for N(MEAN, STD^2) data: x - m scales by sqrt(s^2+sigma^2)."""
    return MEAN + (x_T - MEAN) * STD / math.sqrt(STD**2 + SIGMA_MAX**2)


def max_error(sampler, steps: int, grid=edm_sigmas) -> float:
    x_T = initial_noise(2000, SIGMA_MAX, seed=0, shape=(1,)).double()
    sigmas = grid(steps, SIGMA_MIN, SIGMA_MAX).double()
    out = sampler(gaussian_denoiser(MEAN, STD), x_T, sigmas)
    return (out - exact_flow(x_T)).abs().max().item()


def test_heun_follows_the_exact_flow_of_a_gaussian():
    # Worst case over 2,000 trajectories, against a data standard deviation of 0.5.
    assert max_error(sample_heun, 18) < 0.1
    assert max_error(sample_heun, 72) < 0.005


def test_heun_needs_far_fewer_steps_than_euler():
    # Heun's 2N - 1 evaluations beat Euler given twice as many (4N).
    heun = max_error(sample_heun, 36)
    assert max_error(sample_euler, 36) > 5 * heun
    assert max_error(sample_euler, 144) > heun


def test_error_orders_are_one_for_euler_and_two_for_heun():
    # Halving the step size halves Euler's error and quarters Heun's.
    euler_ratio = max_error(sample_euler, 40, geometric_sigmas) / max_error(
        sample_euler, 80, geometric_sigmas
    )
    heun_ratio = max_error(sample_heun, 40, geometric_sigmas) / max_error(
        sample_heun, 80, geometric_sigmas
    )
    assert 1.6 < euler_ratio < 2.4
    assert 3.5 < heun_ratio < 6.0


def test_samples_have_the_mean_and_variance_of_the_gaussian():
    x_T = initial_noise(20_000, SIGMA_MAX, seed=1, shape=(1,)).double()
    out = sample_heun(gaussian_denoiser(MEAN, STD), x_T, edm_sigmas(36, SIGMA_MIN, SIGMA_MAX))
    assert out.mean().item() == pytest.approx(MEAN, abs=0.02)
    assert out.std().item() == pytest.approx(STD, rel=0.02)


def mixture_denoiser(means, std):
    """Exact D(x; sigma) of an equal-weight mixture of N(m_i, std^2) in one dimension."""
    means = torch.tensor(means, dtype=torch.float64)

    def denoise(x, sigma):
        sigma = torch.as_tensor(sigma, dtype=torch.float64)
        var = std**2 + sigma**2
        logits = -((x - means) ** 2) / (2 * var)  # [n, components]
        weights = torch.softmax(logits, dim=1)
        posterior_means = means + std**2 / var * (x - means)
        return (weights * posterior_means).sum(dim=1, keepdim=True)

    return denoise


def test_samples_reproduce_a_mixture_of_two_gaussians():
    x_T = initial_noise(20_000, SIGMA_MAX, seed=2, shape=(1,)).double()
    sigmas = edm_sigmas(32, SIGMA_MIN, SIGMA_MAX).double()
    out = sample_heun(mixture_denoiser([-1.0, 1.0], 0.2), x_T, sigmas)
    assert out.mean().item() == pytest.approx(0.0, abs=0.03)
    assert out.var().item() == pytest.approx(1.0 + 0.2**2, rel=0.03)
    assert (out > 0).double().mean().item() == pytest.approx(0.5, abs=0.02)
    # Both modes are sharp: almost nothing falls between them.
    assert (out.abs() < 0.4).double().mean().item() < 0.01


def test_edm_grid_runs_from_sigma_max_to_sigma_min_then_zero():
    sigmas = edm_sigmas(18, SIGMA_MIN, SIGMA_MAX)
    assert len(sigmas) == 19 and sigmas[-1] == 0
    assert sigmas[0].item() == pytest.approx(SIGMA_MAX) and sigmas[-2].item() == pytest.approx(
        SIGMA_MIN
    )
    assert bool((sigmas[1:] < sigmas[:-1]).all())


def test_geometric_grid_has_a_constant_ratio():
    sigmas = geometric_sigmas(10, SIGMA_MIN, SIGMA_MAX)[:-1].double()
    ratios = sigmas[1:] / sigmas[:-1]
    assert torch.allclose(ratios, ratios[0].expand_as(ratios), rtol=1e-5)


def test_evaluation_counts():
    sigmas = edm_sigmas(18, SIGMA_MIN, SIGMA_MAX)
    assert evaluations_per_sample("euler", sigmas) == 18
    assert evaluations_per_sample("heun", sigmas) == 35


def test_initial_noise_depends_only_on_the_seed():
    assert torch.equal(initial_noise(4, 80.0, 7), initial_noise(4, 80.0, 7))
    assert not torch.equal(initial_noise(4, 80.0, 7), initial_noise(4, 80.0, 8))


def test_more_initial_noise_extends_the_same_noise():
    # sample@experts draws more images than the other strategies for the class histogram;
    # its first n_samples must still start from the noises every strategy shares.
    assert torch.equal(initial_noise(1000, 80.0, 0)[:500], initial_noise(500, 80.0, 0))
    assert torch.equal(initial_noise(13, 80.0, 3)[:7], initial_noise(7, 80.0, 3))
