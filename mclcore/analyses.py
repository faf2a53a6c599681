"""The study's analyses of a trained ensemble, as arrays (the figures are in `plots`).

- Intra-class diversity: one initial noise integrated by different strategies, with the
  state kept at a few levels from pure noise to the final image (`trajectory`).
- Temporal specialisation: over many gated trajectories, the share of the gate's
  decisions that went to each expert at each noise level (`gate_choice_shares`).
"""

from __future__ import annotations

from typing import Callable, Sequence

import numpy as np
import torch

from mclcore.generation import sample_batches
from mclcore.routing import Denoise, gated_router
from mclcore.samplers import SAMPLERS


def snapshot_levels(n_steps: int, n_snapshots: int) -> list[int]:
    """Indices of `n_snapshots` grid levels evenly spaced from the noise (level 0) to the
    final image (level `n_steps`), both ends included."""
    if n_snapshots < 2:
        raise ValueError(f"{n_snapshots} snapshots cannot show both the noise and the image")
    return sorted({int(i) for i in np.linspace(0, n_steps, n_snapshots).round()})


def trajectory(
    denoiser: Denoise, noise: torch.Tensor, sigmas: torch.Tensor, sampler: str, keep: Sequence[int]
) -> torch.Tensor:
    """[len(keep), *noise.shape]: the ODE state x at each grid level in `keep` (level i is
    x at sigmas[i]; the last level is the final image), on the CPU."""
    if sampler not in SAMPLERS:
        raise ValueError(f"unknown sampler {sampler!r}; use one of {', '.join(SAMPLERS)}")
    wanted, states = set(keep), {}

    def on_step(i: int, x: torch.Tensor) -> None:
        if i in wanted:
            states[i] = x.detach().cpu().clone()

    SAMPLERS[sampler](denoiser, noise, sigmas.to(noise.device), on_step)
    missing = wanted - set(states)
    if missing:
        raise ValueError(f"levels {sorted(missing)} are not on a grid of {len(sigmas)} levels")
    return torch.stack([states[i] for i in keep])


def as_seen_by_the_network(x: torch.Tensor, sigma: float, sigma_data: float) -> torch.Tensor:
    """x scaled to the data's spread, sigma_data / sqrt(sigma^2 + sigma_data^2) (EDM's c_in
    times sigma_data): pure noise shows as grey noise instead of clipped black and white,
    and the final image (sigma = 0) is unchanged."""
    return x * sigma_data / (sigma**2 + sigma_data**2) ** 0.5


def gate_choice_shares(
    experts: Sequence[Denoise],
    gate: Callable,
    noise: torch.Tensor,
    sigmas: torch.Tensor,
    sampler: str = "heun",
    batch_size: int = 500,
) -> np.ndarray:
    """[levels, K]: for each level of the grid that the sampler evaluates (sigmas[:-1]
    when the grid ends at 0), the share of the gate's decisions there that went to each
    expert, over the gated trajectories from `noise`. Every decision counts, so Heun's
    two evaluations that land on one level both do."""
    levels = sigmas[:-1] if float(sigmas[-1]) == 0 else sigmas
    counts = np.zeros((len(levels), len(experts)))

    def recording_gate(x: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
        logits = gate(x, sigma)
        level = int((levels.to(sigma.device) - sigma.flatten()[0]).abs().argmin())
        choices = logits.argmax(dim=1)
        counts[level] += torch.bincount(choices, minlength=len(experts)).cpu().numpy()
        return logits

    sample_batches(gated_router(experts, recording_gate), noise, sigmas, sampler, batch_size)
    totals = counts.sum(axis=1, keepdims=True)
    return np.divide(counts, totals, out=np.zeros_like(counts), where=totals > 0)
