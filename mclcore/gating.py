"""The gating network: which expert will denoise x_t best at this noise level."""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from mclcore.diffusion import Denoiser, sample_training_sigmas
from mclcore.mcl import expert_losses
from mclcore.progress import progress
from mclcore.unet import FourierEmbedding

log = logging.getLogger(__name__)


class GateNet(nn.Module):
    """A small CNN reading (x_t, sigma) and giving logits over the K experts.

    Three 3x3 convolutions (28 -> 14 -> 7 pixels) whose features are scaled and shifted by
    an embedding of ln(sigma)/4, then global average pooling and a linear head. The input
    is scaled by 1/sqrt(sigma^2 + sigma_data^2), as the experts' own input is.
    """

    def __init__(self, k: int, width: int = 32, emb_dim: int = 64, sigma_data: float = 0.5):
        super().__init__()
        self.sigma_data = sigma_data
        self.embed = nn.Sequential(
            FourierEmbedding(emb_dim), nn.Linear(emb_dim, emb_dim), nn.SiLU()
        )
        self.conv1 = nn.Conv2d(1, width, 3, padding=1)
        self.conv2 = nn.Conv2d(width, width, 3, stride=2, padding=1)
        self.conv3 = nn.Conv2d(width, width, 3, stride=2, padding=1)
        self.film = nn.Linear(emb_dim, 6 * width)
        self.norms = nn.ModuleList(nn.GroupNorm(4, width) for _ in range(3))
        self.head = nn.Linear(width + emb_dim, k)

    def forward(self, x: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
        sigma = torch.as_tensor(sigma, dtype=x.dtype, device=x.device).reshape(-1)
        sigma = sigma.expand(len(x)) if len(sigma) == 1 else sigma
        emb = self.embed(sigma.log() / 4)
        scales_shifts = self.film(emb)[:, :, None, None].chunk(6, dim=1)
        h = x / (sigma**2 + self.sigma_data**2).sqrt().reshape(-1, 1, 1, 1)
        for i, (conv, norm) in enumerate(zip((self.conv1, self.conv2, self.conv3), self.norms)):
            scale, shift = scales_shifts[2 * i], scales_shifts[2 * i + 1]
            h = F.silu(norm(conv(h)) * (1 + scale) + shift)
        return self.head(torch.cat([h.mean(dim=(2, 3)), emb], dim=1))


@dataclass
class GateData:
    """Noisy inputs, their noise levels, and the expert that denoised each one best."""

    x: torch.Tensor
    sigma: torch.Tensor
    winner: torch.Tensor


@torch.no_grad()
def label_winners(
    experts: list[Denoiser],
    x0: torch.Tensor,
    draws: int,
    sigma_sampling: str,
    sigma_min: float,
    sigma_max: float,
    seed: int,
    batch_size: int = 500,
    show_progress: bool = True,
) -> GateData:
    """`draws` noisy versions of each image and the frozen experts' winner on each."""
    generator = torch.Generator().manual_seed(seed)
    xs, sigmas, winners = [], [], []
    device = next(experts[0].parameters()).device
    x0 = x0.repeat(draws, 1, 1, 1)
    for batch in progress(x0.split(batch_size), desc="label winners", disable=not show_progress):
        sigma = sample_training_sigmas(
            len(batch), sigma_sampling, sigma_min, sigma_max, generator=generator
        )
        noise = torch.randn(batch.shape, generator=generator)
        losses = expert_losses(experts, batch.to(device), sigma.to(device), noise.to(device))
        xs.append(batch + sigma.reshape(-1, 1, 1, 1) * noise)
        sigmas.append(sigma)
        winners.append(losses.argmin(dim=0).cpu())
    return GateData(torch.cat(xs), torch.cat(sigmas), torch.cat(winners))


def train_gate(
    gate: GateNet,
    data: GateData,
    epochs: int,
    batch_size: int,
    lr: float,
    seed: int,
    device: torch.device | str = "cpu",
    log_metrics=None,
    show_progress: bool = True,
) -> GateNet:
    """Cross-entropy training of the gate on the winners' labels."""
    gate.to(device).train()
    optimizer = torch.optim.Adam(gate.parameters(), lr=lr)
    generator = torch.Generator().manual_seed(seed)
    steps_per_epoch = max(1, len(data.x) // batch_size)
    step = 0
    bar = progress(total=epochs * steps_per_epoch, desc="train_gating", disable=not show_progress)
    for _ in range(epochs):
        order = torch.randperm(len(data.x), generator=generator)
        for i in range(steps_per_epoch):
            ids = order[i * batch_size : (i + 1) * batch_size]
            logits = gate(data.x[ids].to(device), data.sigma[ids].to(device))
            loss = F.cross_entropy(logits, data.winner[ids].to(device))
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            step += 1
            bar.update(1)
            if log_metrics:
                log_metrics({"train_loss": loss.item()}, step)
    bar.close()
    return gate.eval()


@torch.no_grad()
def gate_accuracy(gate: GateNet, data: GateData, batch_size: int = 1000) -> float:
    """Share of examples where the gate names the actual winner."""
    device = next(gate.parameters()).device
    hits = 0
    for x, sigma, winner in zip(
        data.x.split(batch_size), data.sigma.split(batch_size), data.winner.split(batch_size)
    ):
        hits += (gate(x.to(device), sigma.to(device)).argmax(1).cpu() == winner).sum().item()
    return hits / len(data.x)


def per_sigma_majority_accuracy(train: GateData, test: GateData, edges: np.ndarray, k: int):
    """Accuracy of always naming the expert that won most training examples in sigma's band."""

    def bands(sigma):
        return np.clip(np.searchsorted(edges, sigma.numpy()) - 1, 0, len(edges) - 2)

    counts = np.zeros((len(edges) - 1, k), dtype=np.int64)
    np.add.at(counts, (bands(train.sigma), train.winner.numpy()), 1)
    prediction = counts.argmax(axis=1)[bands(test.sigma)]
    return float((prediction == test.winner.numpy()).mean())


GATE_KIND = "mcl-diffusion/gate"


def save_gate(gate: GateNet, config: dict, path) -> None:
    """Save the gate with the `train_gating` settings that rebuild it, atomically."""
    from mclcore.files import torch_save

    torch_save(
        {
            "kind": GATE_KIND,
            "k": gate.head.out_features,
            "config": dict(config),
            "sigma_data": gate.sigma_data,
            "state_dict": {k: v.detach().cpu() for k, v in gate.state_dict().items()},
        },
        path,
    )


def load_gate(path, device: torch.device | str = "cpu", k: int | None = None) -> GateNet:
    """Rebuild the gate saved by the `train_gating` stage, in eval mode; with `k`, check
    that it routes between that many experts."""
    from mclcore.checkpoints import CheckpointError, load_checkpoint

    state = load_checkpoint(path, GATE_KIND)
    if k is not None and state["k"] != k:
        raise CheckpointError(
            f"{path} routes between {state['k']} experts but the ensemble holds {k}; "
            "run `dvc repro train_gating` to retrain the gate"
        )
    cfg = state["config"]
    gate = GateNet(state["k"], cfg["width"], cfg["emb_dim"], state["sigma_data"])
    gate.load_state_dict(state["state_dict"])
    return gate.to(device).eval().requires_grad_(False)
