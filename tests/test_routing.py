import pytest
import torch

from mclcore.diffusion import gaussian_denoiser
from mclcore.gating import GateData, GateNet, gate_accuracy, per_sigma_majority_accuracy, train_gate
from mclcore.routing import (
    gated_router,
    heuristic_router,
    mixture_router,
    sigma_to_t,
    table_router,
    time_bands,
    win_table_rule,
)
from mclcore.samplers import edm_sigmas, sample_heun

MEANS = (-2.0, 0.0, 3.0)
EXPERTS = [gaussian_denoiser(m, 0.5) for m in MEANS]


class CountingExpert:
    """A Gaussian expert that records how many rows it was asked to denoise."""

    def __init__(self, mean):
        self.inner, self.rows = gaussian_denoiser(mean, 0.5), 0

    def __call__(self, x, sigma):
        self.rows += len(x)
        return self.inner(x, sigma)


def sign_gate(x, sigma):
    """Routes an example by the sign of its mean pixel: negative -> 0, positive -> 2."""
    positive = (x.flatten(1).mean(1) > 0).long()
    return torch.nn.functional.one_hot(positive * 2, 3).float() * 100


def test_time_bands_send_the_cleanest_band_to_expert_0_and_the_noisiest_to_k_minus_1():
    assert [time_bands(t, 5) for t in (0.0, 0.19, 0.2, 0.5, 0.99, 1.0)] == [0, 0, 1, 2, 4, 4]
    assert sigma_to_t(0.01, 0.01, 80.0) == 0.0 and sigma_to_t(80.0, 0.01, 80.0) == 1.0


def test_heuristic_router_uses_one_expert_per_step():
    router = heuristic_router(EXPERTS, 0.01, 80.0)
    x = torch.randn(4, 1)
    assert torch.equal(router(x, torch.tensor(79.0)), EXPERTS[2](x, torch.tensor(79.0)))
    assert torch.equal(router(x, torch.tensor(0.02)), EXPERTS[0](x, torch.tensor(0.02)))
    swapped = heuristic_router(EXPERTS, 0.01, 80.0, rule=lambda t, k: k - 1 - time_bands(t, k))
    assert torch.equal(swapped(x, torch.tensor(0.02)), EXPERTS[2](x, torch.tensor(0.02)))


def test_win_table_rule_names_the_band_winner():
    rule = win_table_rule([0.01, 1.0, 80.0], [[0.2, 0.7, 0.1], [0.6, 0.1, 0.3]])
    assert rule(0.5) == 1 and rule(5.0) == 0 and rule(80.0) == 0
    x = torch.randn(3, 1)
    assert torch.equal(table_router(EXPERTS, rule)(x, torch.tensor(0.5)), EXPERTS[1](x, 0.5))


def test_gated_router_sends_each_example_to_its_own_expert_once():
    experts = [CountingExpert(m) for m in MEANS]
    router = gated_router(experts, sign_gate)
    x = torch.tensor([[-1.0], [2.0], [-3.0], [4.0]])
    out = router(x, torch.tensor(1.0))
    expected = torch.stack([EXPERTS[0 if v < 0 else 2](v.reshape(1, 1), 1.0)[0] for v in x])
    assert torch.allclose(out, expected)
    assert [e.rows for e in experts] == [2, 0, 2]  # not all K on everything


def test_mixture_with_a_certain_gate_equals_the_gated_router():
    x = torch.randn(16, 1) * 3
    sigma = torch.full((16,), 2.0)
    assert torch.allclose(
        mixture_router(EXPERTS, sign_gate)(x, sigma), gated_router(EXPERTS, sign_gate)(x, sigma)
    )


def test_mixture_with_a_uniform_gate_averages_the_experts():
    uniform = lambda x, sigma: torch.zeros(len(x), 3)  # noqa: E731
    x = torch.randn(8, 1)
    expected = sum(e(x, torch.tensor(1.0)) for e in EXPERTS) / 3
    assert torch.allclose(mixture_router(EXPERTS, uniform)(x, torch.full((8,), 1.0)), expected)


def test_sampling_through_the_gated_router_lands_on_each_experts_mode():
    x_T = 80.0 * torch.randn(4000, 1, generator=torch.Generator().manual_seed(0))
    out = sample_heun(gated_router(EXPERTS, sign_gate), x_T, edm_sigmas(48, 0.01, 80.0))
    # Each trajectory keeps its sign, so it follows one expert's exact flow all the way:
    # x_0 = m + (x_T - m) s / sqrt(s^2 + sigma_max^2).
    means = torch.where(x_T < 0, MEANS[0], MEANS[2])
    exact = means + (x_T - means) * 0.5 / (0.5**2 + 80.0**2) ** 0.5
    assert (out - exact).abs().max().item() < 0.02


def test_gate_learns_more_than_time_on_a_task_that_needs_the_image():
    # The winner depends on the image (bright or dark), not on sigma: the per-sigma
    # majority baseline is near chance, and the gate must beat it.
    generator = torch.Generator().manual_seed(0)
    n = 1200
    bright = torch.rand(n, generator=generator) > 0.5
    x = torch.where(bright[:, None, None, None], 1.0, -1.0) * torch.ones(n, 1, 28, 28)
    sigma = torch.exp(torch.empty(n).uniform_(-3, 0, generator=generator))
    x = x + sigma.reshape(-1, 1, 1, 1) * torch.randn(x.shape, generator=generator)
    data = GateData(x, sigma, bright.long())
    train, test = GateData(x[:1000], sigma[:1000], data.winner[:1000]), GateData(
        x[1000:], sigma[1000:], data.winner[1000:]
    )
    torch.manual_seed(0)
    gate = train_gate(GateNet(2, width=8, emb_dim=16), train, 3, 50, 3e-3, 0, show_progress=False)
    edges = torch.logspace(-2, 0, 5).numpy()
    assert gate_accuracy(gate, test) > 0.95
    assert per_sigma_majority_accuracy(train, test, edges, 2) < 0.7


def test_gate_has_tens_of_thousands_of_parameters():
    count = sum(p.numel() for p in GateNet(5).parameters())
    assert 10_000 <= count <= 100_000
