"""The analyses' arrays, checked with exact Gaussian experts and scripted gates."""

import numpy as np
import pytest
import torch

from mclcore.analyses import (
    as_seen_by_the_network,
    gate_choice_shares,
    snapshot_levels,
    trajectory,
)
from mclcore.diffusion import gaussian_denoiser
from mclcore.generation import sample_batches
from mclcore.samplers import edm_sigmas, initial_noise

EXPERTS = [gaussian_denoiser(m, 0.5) for m in (-2.0, 0.0, 3.0)]
SIGMAS = edm_sigmas(18, 0.01, 80.0)


def noise(n=6):
    return initial_noise(n, 80.0, seed=0, shape=(1, 4, 4))


def test_snapshots_run_evenly_from_the_noise_to_the_image():
    assert snapshot_levels(18, 7) == [0, 3, 6, 9, 12, 15, 18]
    assert snapshot_levels(18, 2) == [0, 18]
    assert snapshot_levels(3, 10) == [0, 1, 2, 3]  # never more levels than the grid has
    with pytest.raises(ValueError, match="cannot show both"):
        snapshot_levels(18, 1)


@pytest.mark.parametrize("sampler", ["euler", "heun"])
def test_a_trajectory_starts_at_the_noise_and_ends_at_the_sample(sampler):
    x_t = noise()
    states = trajectory(EXPERTS[2], x_t, SIGMAS, sampler, [0, 9, 18])
    assert states.shape == (3, *x_t.shape)
    assert torch.equal(states[0], x_t)
    assert torch.equal(states[-1], sample_batches(EXPERTS[2], x_t, SIGMAS, sampler))
    # Half-way down the grid the state is still far noisier than the final image.
    assert states[1].std() > 5 * states[2].std()


def test_a_level_off_the_grid_is_named():
    with pytest.raises(ValueError, match=r"levels \[25\]"):
        trajectory(EXPERTS[0], noise(), SIGMAS, "heun", [0, 25])


def test_the_shown_state_keeps_the_image_and_tames_the_noise():
    x = torch.randn(20000) * 80.0
    assert torch.equal(as_seen_by_the_network(x, 0.0, 0.5), x)
    assert as_seen_by_the_network(x, 80.0, 0.5).std().item() == pytest.approx(0.5, rel=0.02)


def always(k, n_experts=3):
    def gate(x, sigma):
        logits = torch.zeros(len(x), n_experts)
        logits[:, k] = 1.0
        return logits

    return gate


def test_an_always_k_gate_puts_every_decision_on_expert_k():
    shares = gate_choice_shares(EXPERTS, always(1), noise(), SIGMAS, "heun")
    assert shares.shape == (18, 3)
    assert np.array_equal(shares, np.tile([0.0, 1.0, 0.0], (18, 1)))


@pytest.mark.parametrize("sampler", ["euler", "heun"])
def test_the_shares_follow_a_gate_that_switches_with_sigma(sampler):
    def by_noise(x, sigma):  # expert 2 above sigma = 1, expert 0 at or below
        logits = torch.zeros(len(x), 3)
        logits[torch.arange(len(x)), torch.where(sigma > 1.0, 2, 0)] = 1.0
        return logits

    shares = gate_choice_shares(EXPERTS, by_noise, noise(), SIGMAS, sampler)
    expected = np.zeros((18, 3))
    expected[SIGMAS[:-1].numpy() > 1.0, 2] = 1.0
    expected[SIGMAS[:-1].numpy() <= 1.0, 0] = 1.0
    assert np.array_equal(shares, expected)


def test_a_gate_that_splits_by_example_splits_the_shares():
    def by_sign(x, sigma):  # expert 0 for a negative first pixel, else expert 1
        logits = torch.zeros(len(x), 3)
        logits[torch.arange(len(x)), (x[:, 0, 0, 0] >= 0).long()] = 1.0
        return logits

    x_t = torch.cat([-torch.ones(3, 1, 4, 4), torch.ones(1, 1, 4, 4)]) * 80.0
    shares = gate_choice_shares(EXPERTS, by_sign, x_t, SIGMAS, "euler")
    assert shares[0].tolist() == [0.75, 0.25, 0.0]  # at sigma_max, before any step
    assert np.allclose(shares.sum(axis=1), 1.0)
