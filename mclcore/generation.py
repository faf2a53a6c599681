"""Drawing images from a denoiser: seeded initial noise, batched ODE sampling, pixels."""

from __future__ import annotations

import numpy as np
import torch

from mclcore.datasets import to_uint8
from mclcore.progress import progress
from mclcore.samplers import SAMPLERS, DenoiserFn, initial_noise


def sample_batches(
    denoiser: DenoiserFn,
    noise: torch.Tensor,
    sigmas: torch.Tensor,
    sampler: str = "heun",
    batch_size: int = 500,
    show_progress: bool = False,
) -> torch.Tensor:
    """Integrate the ODE from `noise` (x_T, on the device to run on) in batches; on the CPU.

    Each trajectory depends only on its own noise, so the batch size never changes a result.
    """
    if sampler not in SAMPLERS:
        raise ValueError(f"unknown sampler {sampler!r}; use one of {', '.join(SAMPLERS)}")
    sample = SAMPLERS[sampler]
    sigmas = sigmas.to(noise.device)
    batches = [
        sample(denoiser, x, sigmas).cpu()
        for x in progress(
            noise.split(batch_size), desc=f"sample ({sampler})", disable=not show_progress
        )
    ]
    return torch.cat(batches) if batches else noise.new_zeros((0, *noise.shape[1:])).cpu()


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
    noise = initial_noise(n, float(sigmas[0]), seed).to(device)
    images = sample_batches(denoiser, noise, sigmas, sampler, batch_size, show_progress)
    return to_uint8(images[:, 0].numpy())
