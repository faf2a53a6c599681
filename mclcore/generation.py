"""Drawing images from a denoiser: seeded initial noise, batched ODE sampling, pixels."""

from __future__ import annotations

import numpy as np
import torch
from mclcore.progress import progress

from mclcore.datasets import to_uint8
from mclcore.samplers import SAMPLERS, DenoiserFn, initial_noise


def generate(
    denoiser: DenoiserFn,
    n: int,
    sigmas: torch.Tensor,
    sampler: str,
    seed: int,
    batch_size: int,
    device: torch.device | str = "cpu",
    show_progress: bool = True,
) -> np.ndarray:
    """n images as uint8 [n, 28, 28]; the only randomness is the initial noise from `seed`."""
    if sampler not in SAMPLERS:
        raise ValueError(f"unknown sampler {sampler!r}; use one of {', '.join(SAMPLERS)}")
    noise = initial_noise(n, float(sigmas[0]), seed)
    sample = SAMPLERS[sampler]
    sigmas = sigmas.to(device)
    batches = []
    for x in progress(
        noise.split(batch_size), desc=f"sample ({sampler})", disable=not show_progress
    ):
        batches.append(sample(denoiser, x.to(device), sigmas).cpu())
    return to_uint8(torch.cat(batches)[:, 0].numpy())
