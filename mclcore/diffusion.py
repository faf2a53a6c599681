"""The variance-exploding noise process, the denoiser's preconditioning and its loss.

Notation follows Karras et al. 2022, "Elucidating the Design Space of Diffusion-Based
Generative Models" (EDM): x = x0 + sigma * n, D(x; sigma) ~ E[x0 | x], and the score is
grad log p(x; sigma) = (D(x; sigma) - x) / sigma^2 (their Eq. 3).
"""

from __future__ import annotations

import torch
from torch import nn

from mclcore.unet import ScoreUNet


def ve_sigma(t: torch.Tensor | float, sigma_min: float, sigma_max: float):
    """sigma(t) = sigma_min^(1-t) * sigma_max^t (Song et al. 2021, VE SDE)."""
    return sigma_min ** (1 - t) * sigma_max**t


def sample_training_sigmas(
    n: int,
    kind: str,
    sigma_min: float,
    sigma_max: float,
    p_mean: float = -1.2,
    p_std: float = 1.2,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Noise levels for one training batch.

    `loguniform`: sigma(t) with t ~ U[0, 1], as in the reference study. `lognormal`:
    ln sigma ~ N(p_mean, p_std^2) (EDM Table 1), clamped to [sigma_min, sigma_max].
    """
    if kind == "loguniform":
        return ve_sigma(torch.rand(n, generator=generator), sigma_min, sigma_max)
    if kind == "lognormal":
        log_sigma = p_mean + p_std * torch.randn(n, generator=generator)
        return log_sigma.exp().clamp(sigma_min, sigma_max)
    raise ValueError(f"unknown sigma sampling {kind!r}; use 'lognormal' or 'loguniform'")


class Denoiser(nn.Module):
    """D(x; sigma) = c_skip x + c_out F(c_in x; c_noise), with F a `ScoreUNet`.

    `edm`: the coefficients of EDM Table 1 (skip connection blended by sigma_data).
    `ve`: the reference study's parametrisation D = x + sigma F (noise prediction), with
    its two defects fixed: the input is scaled by c_in so that it stays of unit variance up
    to sigma_max, and the network sees ln(sigma)/4 rather than an almost constant time.
    """

    def __init__(self, net: ScoreUNet, precond: str = "edm", sigma_data: float = 0.5):
        super().__init__()
        if precond not in ("edm", "ve"):
            raise ValueError(f"unknown preconditioning {precond!r}; use 'edm' or 've'")
        self.net = net
        self.precond = precond
        self.sigma_data = sigma_data

    def coefficients(self, sigma: torch.Tensor):
        """(c_skip, c_out, c_in, c_noise) for a batch of noise levels."""
        sd = self.sigma_data
        c_in = 1 / (sigma**2 + sd**2).sqrt()
        c_noise = sigma.log() / 4
        if self.precond == "edm":
            c_skip = sd**2 / (sigma**2 + sd**2)
            c_out = sigma * sd / (sigma**2 + sd**2).sqrt()
        else:
            c_skip = torch.ones_like(sigma)
            c_out = sigma
        return c_skip, c_out, c_in, c_noise

    def loss_weight(self, sigma: torch.Tensor) -> torch.Tensor:
        """lambda(sigma) that makes the loss of unit scale at every noise level."""
        if self.precond == "edm":
            return (sigma**2 + self.sigma_data**2) / (sigma * self.sigma_data) ** 2
        return 1 / sigma**2

    def forward(self, x: torch.Tensor, sigma: torch.Tensor | float) -> torch.Tensor:
        sigma = torch.as_tensor(sigma, dtype=x.dtype, device=x.device)
        if sigma.ndim == 0:
            sigma = sigma.expand(x.shape[0])
        c_skip, c_out, c_in, c_noise = (c.reshape(-1, 1, 1, 1) for c in self.coefficients(sigma))
        return c_skip * x + c_out * self.net(c_in * x, c_noise.flatten())


def denoising_loss(
    denoiser: Denoiser, x0: torch.Tensor, sigma: torch.Tensor, noise: torch.Tensor
) -> torch.Tensor:
    """Per-example weighted denoising loss lambda(sigma) * mean ||D(x0 + sigma n) - x0||^2.

    The minimiser is D = E[x0 | x] (Tweedie), EDM Eq. 2 with their weighting (Eq. 8).
    """
    x = x0 + sigma.reshape(-1, 1, 1, 1) * noise
    error = (denoiser(x, sigma) - x0).square().flatten(1).mean(dim=1)
    return denoiser.loss_weight(sigma) * error


def build_denoiser(channels, emb_dim: int, groups: int, precond: str, sigma_data: float):
    """A fresh `Denoiser` around a new `ScoreUNet`."""
    return Denoiser(ScoreUNet(tuple(channels), emb_dim, groups), precond, sigma_data)


def gaussian_denoiser(mean: float, std: float):
    """The exact D(x; sigma) of data ~ N(mean, std^2 I): mean + std^2/(std^2+sigma^2) (x-mean)."""

    def denoise(x: torch.Tensor, sigma) -> torch.Tensor:
        sigma = torch.as_tensor(sigma, dtype=x.dtype).reshape(-1, *([1] * (x.ndim - 1)))
        return mean + std**2 / (std**2 + sigma**2) * (x - mean)

    return denoise


def score_from_denoiser(denoised: torch.Tensor, x: torch.Tensor, sigma: float) -> torch.Tensor:
    """grad_x log p(x; sigma) = (D(x; sigma) - x) / sigma^2 (EDM Eq. 3)."""
    return (denoised - x) / sigma**2
