import pytest
import torch

from conftest import TINY_MODEL, synthetic_digits
from mclcore.datasets import as_tensor
from mclcore.diffusion import build_denoiser, sample_training_sigmas
from mclcore.mcl import (
    annealed_weights,
    balanced_weights,
    expert_losses,
    relaxed_wta_weights,
    mcl_update,
    naive_step,
    wta_step,
    wta_weights,
)

TINY = TINY_MODEL


def make_experts(k: int, seed: int = 0):
    torch.manual_seed(seed)
    experts = [build_denoiser(**TINY) for _ in range(k)]
    for expert in experts:  # leave the zero-initialised start so the experts differ at once
        torch.nn.init.normal_(expert.net.conv_out.weight, std=0.05)
    return experts


def batch(n=48, seed=0):
    generator = torch.Generator().manual_seed(seed)
    x0 = as_tensor(synthetic_digits(n, seed)[0])
    sigma = sample_training_sigmas(n, "lognormal", 0.01, 80.0, generator=generator)
    return x0, sigma, torch.randn(x0.shape, generator=generator)


def clone_experts(experts):
    clones = make_experts(len(experts))
    for clone, expert in zip(clones, experts):
        clone.load_state_dict(expert.state_dict())
    return clones


def test_efficient_and_naive_wta_give_the_same_winners_losses_and_gradients():
    experts = make_experts(3)
    twins = clone_experts(experts)
    opts = [torch.optim.SGD(e.parameters(), lr=0.0) for e in experts]
    twin_opts = [torch.optim.SGD(e.parameters(), lr=0.0) for e in twins]
    x0, sigma, noise = batch()
    losses, winners = wta_step(experts, opts, x0, sigma, noise)
    naive_losses, naive_winners = naive_step(twins, twin_opts, x0, sigma, noise)
    assert torch.equal(winners, naive_winners)
    assert torch.allclose(losses, naive_losses, rtol=1e-5, atol=1e-7)
    assert len(set(winners.tolist())) > 1  # the comparison covers several winners
    for k, (expert, twin) in enumerate(zip(experts, twins)):
        for p, q in zip(expert.parameters(), twin.parameters()):
            if (winners == k).any():
                assert torch.allclose(p.grad, q.grad, rtol=1e-4, atol=1e-7)
            else:
                assert p.grad is None and not q.grad.any()


@pytest.mark.parametrize(
    "weights_fn",
    [lambda l: relaxed_wta_weights(l, 0.2), lambda l: annealed_weights(l, 0.05)],
    ids=["relaxed", "annealed"],
)
def test_efficient_and_naive_soft_steps_give_the_same_gradients(weights_fn):
    experts = make_experts(3)
    twins = clone_experts(experts)
    opts = [torch.optim.SGD(e.parameters(), lr=0.0) for e in experts]
    twin_opts = [torch.optim.SGD(e.parameters(), lr=0.0) for e in twins]
    x0, sigma, noise = batch()
    losses, winners = mcl_update(experts, opts, x0, sigma, noise, weights_fn)
    naive_losses, naive_winners = naive_step(twins, twin_opts, x0, sigma, noise, weights_fn)
    assert torch.equal(winners, naive_winners)
    assert torch.allclose(losses, naive_losses, rtol=1e-5, atol=1e-7)
    for expert, twin in zip(experts, twins):
        for p, q in zip(expert.parameters(), twin.parameters()):
            assert torch.allclose(p.grad, q.grad, rtol=1e-3, atol=1e-7)


def test_a_vanishing_softmin_weight_skips_the_example():
    experts = make_experts(2)
    with torch.no_grad():  # expert 1 predicts far off: its softmin weight underflows
        experts[1].net.conv_out.bias.fill_(25.0)
    opts = [torch.optim.Adam(e.parameters(), lr=1e-2) for e in experts]
    x0, sigma, noise = batch(seed=1)
    mcl_update(experts, opts, x0, sigma, noise, lambda l: annealed_weights(l, 1e-3))
    assert all(p.grad is None for p in experts[1].parameters())
    assert opts[1].state == {}


def test_a_losing_expert_is_untouched_bit_for_bit():
    experts = make_experts(2)
    with torch.no_grad():  # expert 1 predicts far off: it loses every example
        experts[1].net.conv_out.bias.fill_(25.0)
    opts = [torch.optim.AdamW(e.parameters(), lr=1e-2, weight_decay=0.1) for e in experts]
    # Give expert 1 optimiser momentum first, as after earlier wins.
    x0, sigma, noise = batch(seed=1)
    mcl_update(experts, opts, x0, sigma, noise, lambda l: relaxed_wta_weights(l, 0.5), 1.0)
    before = {k: v.clone() for k, v in experts[1].state_dict().items()}
    state_before = {k: v.clone() for k, v in opts[1].state[next(iter(opts[1].state))].items()}
    x0, sigma, noise = batch(seed=2)
    _, winners = wta_step(experts, opts, x0, sigma, noise, grad_clip=1.0)
    assert (winners == 0).all()
    for key, value in experts[1].state_dict().items():
        assert torch.equal(value, before[key]), key
    for key, value in opts[1].state[next(iter(opts[1].state))].items():
        assert torch.equal(value, state_before[key]), key


def test_the_winner_of_an_example_has_the_lowest_loss():
    experts = make_experts(4)
    x0, sigma, noise = batch()
    losses = expert_losses(experts, x0, sigma, noise)
    winners = wta_weights(losses).winners
    assert torch.equal(losses[winners, torch.arange(len(x0))], losses.min(dim=0).values)


def test_relaxed_weights_give_epsilon_to_the_others_and_sum_to_one():
    losses = torch.tensor([[1.0, 0.1], [0.5, 0.9], [0.2, 0.4]])
    assignment = relaxed_wta_weights(losses, epsilon=0.1)
    assert assignment.winners.tolist() == [2, 0]
    assert torch.allclose(assignment.weights.sum(dim=0), torch.ones(2))
    assert assignment.weights[2, 0].item() == pytest.approx(0.9)
    assert assignment.weights[0, 0].item() == pytest.approx(0.05)


def test_annealed_weights_run_from_uniform_to_hard_wta():
    losses = torch.tensor([[1.0, 0.1], [0.5, 0.9], [0.2, 0.4]])
    hot = annealed_weights(losses, temperature=1e6).weights
    assert torch.allclose(hot, torch.full_like(hot, 1 / 3), atol=1e-5)
    cold = annealed_weights(losses, temperature=1e-4).weights
    assert torch.allclose(cold, wta_weights(losses).weights, atol=1e-6)
    assert torch.equal(annealed_weights(losses, 0.0).weights, wta_weights(losses).weights)


def test_annealed_temperature_is_relative_to_each_examples_mean_loss():
    # Example 2 is example 1 with every loss 100 times larger: the same weights result.
    losses = torch.tensor([[1.0, 100.0], [1.1, 110.0], [0.9, 90.0]])
    weights = annealed_weights(losses, temperature=0.1).weights
    assert torch.allclose(weights[:, 0], weights[:, 1])
    mean = losses[:, 0].mean()
    expected = torch.softmax(-losses[:, 0] / (0.1 * mean), dim=0)
    assert torch.allclose(weights[:, 0], expected)


def test_balanced_assignment_respects_the_capacity_and_keeps_the_true_winners():
    # Expert 0 has the lowest loss everywhere; with capacity B/K it still takes only two.
    losses = torch.tensor(
        [[0.10, 0.20, 0.30, 0.40, 0.50, 0.60], [0.50, 0.21, 0.90, 0.41, 0.90, 0.61]]
    )
    assignment = balanced_weights(losses, capacity=1.0)
    owners = assignment.weights.argmax(dim=0)
    assert assignment.weights.sum(dim=0).tolist() == [1.0] * 6
    assert owners.tolist().count(0) == 3 and owners.tolist().count(1) == 3
    # Expert 0 keeps the examples where it is relatively best: 0 (5x better), 2 and 4.
    assert owners.tolist() == [0, 1, 0, 1, 0, 1]
    assert assignment.winners.tolist() == [0] * 6


def test_balanced_assignment_with_room_for_everything_is_hard_wta():
    losses = torch.rand(3, 20, generator=torch.Generator().manual_seed(0))
    assignment = balanced_weights(losses, capacity=3.0)
    assert torch.equal(assignment.weights, wta_weights(losses).weights)
