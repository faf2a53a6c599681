import pytest
import torch

from conftest import TINY_MODEL, synthetic_digits
from mclcore.checkpoints import CheckpointError
from mclcore.datasets import as_tensor
from mclcore.diffusion import build_denoiser, denoising_loss
from mclcore.gating import GateNet, label_winners, load_gate, save_gate

TINY = TINY_MODEL


def test_labels_are_the_experts_with_the_lowest_loss_on_each_noisy_input():
    torch.manual_seed(0)
    experts = [build_denoiser(**TINY).eval() for _ in range(3)]
    for expert in experts:
        torch.nn.init.normal_(expert.net.conv_out.weight, std=0.05)
    x0 = as_tensor(synthetic_digits(20, 0)[0])
    data = label_winners(experts, x0, 2, "lognormal", 0.01, 80.0, seed=0, show_progress=False)
    assert data.x.shape == (40, 1, 28, 28) and data.winner.shape == (40,)
    x0_rep = x0.repeat(2, 1, 1, 1)
    noise = (data.x - x0_rep) / data.sigma.reshape(-1, 1, 1, 1)
    with torch.no_grad():
        losses = torch.stack([denoising_loss(e, x0_rep, data.sigma, noise) for e in experts])
    assert torch.equal(data.winner, losses.argmin(dim=0))


def test_gate_checkpoint_round_trip(tmp_path):
    gate = GateNet(4, width=8, emb_dim=16, sigma_data=0.7)
    save_gate(gate, {"width": 8, "emb_dim": 16, "epochs": 1}, tmp_path / "gate.pt")
    loaded = load_gate(tmp_path / "gate.pt")
    x, sigma = torch.randn(3, 1, 28, 28), torch.tensor([0.1, 1.0, 10.0])
    assert torch.equal(loaded(x, sigma), gate.eval()(x, sigma))
    assert loaded.sigma_data == 0.7 and loaded.head.out_features == 4


def test_a_gate_for_another_number_of_experts_is_refused_with_the_fix(tmp_path):
    save_gate(GateNet(4, width=8, emb_dim=16), {"width": 8, "emb_dim": 16}, tmp_path / "g.pt")
    assert load_gate(tmp_path / "g.pt", k=4).head.out_features == 4
    with pytest.raises(CheckpointError, match="routes between 4 experts.*holds 3.*train_gating"):
        load_gate(tmp_path / "g.pt", k=3)
