"""Deterministic probability-flow ODE samplers and their noise-level grids.

A sampler is a plain function of (denoiser, x, sigmas): it knows nothing of networks,
experts or routing. `denoiser(x, sigma)` returns D(x; sigma) for a batch `x` and a scalar
or per-example `sigma`. The ODE is dx/dsigma = (x - D(x; sigma)) / sigma (EDM Eq. 4 with
sigma(t) = t, s(t) = 1).
"""

from __future__ import annotations

from typing import Callable

import torch

DenoiserFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
StepFn = Callable[[int, torch.Tensor], None]  # on_step(i, x): x has reached sigmas[i]


def geometric_sigmas(n: int, sigma_min: float, sigma_max: float) -> torch.Tensor:
    """n levels evenly spaced in log sigma from sigma_max to sigma_min, then 0."""
    if n == 1:
        levels = torch.tensor([sigma_max], dtype=torch.float64)
    else:
        t = torch.linspace(1, 0, n, dtype=torch.float64)
        levels = sigma_min ** (1 - t) * sigma_max**t
    return torch.cat([levels, levels.new_zeros(1)]).float()


def edm_sigmas(n: int, sigma_min: float, sigma_max: float, rho: float = 7.0) -> torch.Tensor:
    """n levels of the EDM grid (Karras et al. 2022, Eq. 5), then 0."""
    if n == 1:
        levels = torch.tensor([sigma_max], dtype=torch.float64)
    else:
        ramp = torch.linspace(0, 1, n, dtype=torch.float64)
        lo, hi = sigma_min ** (1 / rho), sigma_max ** (1 / rho)
        levels = (hi + ramp * (lo - hi)) ** rho
    return torch.cat([levels, levels.new_zeros(1)]).float()


def make_sigmas(grid: str, n: int, sigma_min: float, sigma_max: float, rho: float = 7.0):
    """The grid named by `grid` ('edm' or 'geometric')."""
    if grid == "edm":
        return edm_sigmas(n, sigma_min, sigma_max, rho)
    if grid == "geometric":
        return geometric_sigmas(n, sigma_min, sigma_max)
    raise ValueError(f"unknown sigma grid {grid!r}; use 'edm' or 'geometric'")


def _ode_slope(denoiser: DenoiserFn, x: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
    return (x - denoiser(x, sigma)) / sigma


@torch.no_grad()
def sample_euler(
    denoiser: DenoiserFn, x: torch.Tensor, sigmas: torch.Tensor, on_step: StepFn | None = None
) -> torch.Tensor:
    """Euler steps of the probability-flow ODE along `sigmas` (one evaluation per step).

    `on_step(i, x)`, if given, sees the state at every level: i = 0 (the noise) to N."""
    if on_step:
        on_step(0, x)
    for i, (sigma, sigma_next) in enumerate(zip(sigmas[:-1], sigmas[1:]), start=1):
        x = x + (sigma_next - sigma) * _ode_slope(denoiser, x, sigma)
        if on_step:
            on_step(i, x)
    return x


@torch.no_grad()
def sample_heun(
    denoiser: DenoiserFn, x: torch.Tensor, sigmas: torch.Tensor, on_step: StepFn | None = None
) -> torch.Tensor:
    """Heun's second-order steps (EDM Algorithm 1, deterministic); Euler on the step to 0.

    `on_step(i, x)`, if given, sees the state at every level: i = 0 (the noise) to N."""
    if on_step:
        on_step(0, x)
    for i, (sigma, sigma_next) in enumerate(zip(sigmas[:-1], sigmas[1:]), start=1):
        slope = _ode_slope(denoiser, x, sigma)
        x_euler = x + (sigma_next - sigma) * slope
        if sigma_next == 0:
            x = x_euler
        else:
            slope_next = _ode_slope(denoiser, x_euler, sigma_next)
            x = x + (sigma_next - sigma) * (slope + slope_next) / 2
        if on_step:
            on_step(i, x)
    return x


SAMPLERS = {"euler": sample_euler, "heun": sample_heun}


def evaluations_per_sample(sampler: str, sigmas: torch.Tensor) -> int:
    """Network evaluations one trajectory costs: N for Euler, 2N - 1 for Heun."""
    steps = len(sigmas) - 1
    return steps if sampler == "euler" else 2 * steps - int(bool(sigmas[-1] == 0))


def initial_noise(n: int, sigma_max: float, seed: int, shape=(1, 28, 28)) -> torch.Tensor:
    """x_T = sigma_max * z, z ~ N(0, I), drawn from its own seeded generator."""
    generator = torch.Generator().manual_seed(seed)
    return sigma_max * torch.randn(n, *shape, generator=generator)
