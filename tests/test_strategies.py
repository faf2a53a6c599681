"""The sampling API: each strategy from given noise, checked with exact Gaussian experts."""

import pytest
import torch

from mclcore import strategies
from mclcore.diffusion import gaussian_denoiser
from mclcore.samplers import edm_sigmas, initial_noise

MEANS = (-2.0, 0.0, 3.0)
EXPERTS = [gaussian_denoiser(m, 0.5) for m in MEANS]
SIGMAS = edm_sigmas(18, 0.01, 80.0)


def noise(n=12):
    return initial_noise(n, 80.0, seed=0, shape=(1, 4, 4))


def test_a_single_expert_lands_on_its_own_gaussian():
    x = strategies.sample_with_expert(EXPERTS, 2, noise(400), SIGMAS, batch_size=64)
    assert x.mean().item() == pytest.approx(3.0, abs=0.05)
    assert x.std().item() == pytest.approx(0.5, abs=0.05)


def test_a_missing_expert_is_named():
    with pytest.raises(ValueError, match="expert 3 does not exist: the ensemble has K = 3"):
        strategies.sample_with_expert(EXPERTS, 3, noise(), SIGMAS)


def test_the_batch_size_does_not_change_a_trajectory():
    a = strategies.sample_with_expert(EXPERTS, 1, noise(), SIGMAS, batch_size=5)
    b = strategies.sample_with_expert(EXPERTS, 1, noise(), SIGMAS, batch_size=12)
    assert torch.allclose(a, b, atol=1e-6)


def test_a_constant_heuristic_rule_is_that_expert():
    x = strategies.sample_with_heuristic(EXPERTS, noise(), SIGMAS, 0.01, 80.0, rule=lambda t, k: 1)
    assert torch.equal(x, strategies.sample_with_expert(EXPERTS, 1, noise(), SIGMAS))


def test_a_win_table_with_one_winner_everywhere_is_that_expert():
    table = [[0.1, 0.1, 0.8], [0.0, 0.2, 0.8]]
    x = strategies.sample_with_win_table(EXPERTS, noise(), SIGMAS, [0.01, 1.0, 80.0], table)
    assert torch.equal(x, strategies.sample_with_expert(EXPERTS, 2, noise(), SIGMAS))


def always(k, logit=50.0):
    def gate(x, sigma):
        logits = torch.zeros(len(x), len(MEANS))
        logits[:, k] = logit
        return logits

    return gate


def test_a_gate_that_always_names_one_expert_is_that_expert_hard_and_soft():
    expected = strategies.sample_with_expert(EXPERTS, 0, noise(), SIGMAS)
    assert torch.equal(strategies.sample_with_gate(EXPERTS, always(0), noise(), SIGMAS), expected)
    soft = strategies.sample_with_gate(EXPERTS, always(0), noise(), SIGMAS, soft=True)
    assert torch.allclose(soft, expected, atol=1e-5)


def test_a_uniform_mixture_of_gaussian_experts_follows_their_averaged_denoiser():
    # Mixing the denoisers with equal weights is the exact denoiser of N(1/3, 0.25) here,
    # because all three experts share one variance: samples land on that Gaussian.
    x = strategies.sample_with_gate(EXPERTS, always(0, 0.0), noise(400), SIGMAS, soft=True)
    assert x.mean().item() == pytest.approx(sum(MEANS) / 3, abs=0.05)
    assert x.std().item() == pytest.approx(0.5, abs=0.05)


def test_the_pool_is_each_expert_on_its_own_block_of_the_noise():
    z = noise(10)  # blocks of 4, 3 and 3
    pooled = strategies.sample_pooled(EXPERTS, z, SIGMAS)
    blocks = [(0, 4), (4, 7), (7, 10)]
    for k, (lo, hi) in enumerate(blocks):
        alone = strategies.sample_with_expert(EXPERTS, k, z, SIGMAS)
        assert torch.equal(pooled[lo:hi], alone[lo:hi])


def test_expert_evaluations_count_k_networks_only_for_the_mixture():
    assert strategies.expert_evaluations("gated", 5, "heun", SIGMAS) == 35
    assert strategies.expert_evaluations("mixture", 5, "heun", SIGMAS) == 175
    assert strategies.expert_evaluations("experts", 5, "euler", SIGMAS) == 18
