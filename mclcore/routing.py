"""Routing between experts at sampling time: each strategy is a denoiser D(x; sigma).

The samplers in `mclcore.samplers` call any of these like a single network, so every
strategy works with every sampler and sigma grid. Time and noise level are linked by
sigma(t) = sigma_min^(1-t) sigma_max^t: t = 0 is clean data, t = 1 pure noise.
"""

from __future__ import annotations

import math
from typing import Callable, Sequence

import numpy as np
import torch

Denoise = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
TimeRule = Callable[[float, int], int]


def sigma_to_t(sigma: float, sigma_min: float, sigma_max: float) -> float:
    """The inverse of sigma(t) = sigma_min^(1-t) sigma_max^t, clipped to [0, 1]."""
    t = math.log(sigma / sigma_min) / math.log(sigma_max / sigma_min)
    return min(max(t, 0.0), 1.0)


def time_bands(t: float, k: int) -> int:
    """The default heuristic: [0, 1] cut into K equal bands of t; band j goes to expert j.

    So expert 0 denoises the cleanest band (t < 1/K, sigma near sigma_min) and expert K-1
    the noisiest (t >= (K-1)/K, sigma near sigma_max).
    """
    return min(int(t * k), k - 1)


def win_table_rule(band_edges: Sequence[float], band_win_rates) -> Callable[[float], int]:
    """A rule of sigma: the expert that won most training examples in sigma's band."""
    edges = np.asarray(band_edges, dtype=np.float64)
    best = np.asarray(band_win_rates).argmax(axis=1)

    def rule(sigma: float) -> int:
        band = int(np.clip(np.searchsorted(edges, sigma) - 1, 0, len(best) - 1))
        return int(best[band])

    return rule


def _scalar_sigma(sigma: torch.Tensor) -> float:
    sigma = torch.as_tensor(sigma)
    if sigma.ndim and not bool((sigma == sigma.flatten()[0]).all()):
        raise ValueError("a time-based router needs one sigma for the whole batch")
    return float(sigma.flatten()[0])


def heuristic_router(
    experts: Sequence[Denoise],
    sigma_min: float,
    sigma_max: float,
    rule: TimeRule = time_bands,
) -> Denoise:
    """One expert per step for the whole batch, chosen by `rule(t, K)`; no learned parameters."""

    def denoise(x: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
        t = sigma_to_t(_scalar_sigma(sigma), sigma_min, sigma_max)
        return experts[rule(t, len(experts))](x, sigma)

    return denoise


def table_router(experts: Sequence[Denoise], sigma_rule: Callable[[float], int]) -> Denoise:
    """One expert per step, the one `sigma_rule(sigma)` names (e.g. from the win table)."""

    def denoise(x: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
        return experts[sigma_rule(_scalar_sigma(sigma))](x, sigma)

    return denoise


def _per_example_sigma(sigma, x: torch.Tensor) -> torch.Tensor:
    sigma = torch.as_tensor(sigma, dtype=x.dtype, device=x.device)
    return sigma.expand(len(x)) if sigma.ndim == 0 else sigma.reshape(len(x))


def gated_router(experts: Sequence[Denoise], gate: Callable) -> Denoise:
    """The gate picks an expert per example at every step; each expert sees only its own.

    `gate(x, sigma) -> [B, K]` logits. An expert is evaluated once per step, on the
    examples routed to it, not on the whole batch.
    """

    def denoise(x: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
        sigma = _per_example_sigma(sigma, x)
        choice = gate(x, sigma).argmax(dim=1)
        out = torch.empty_like(x)
        for k, expert in enumerate(experts):
            rows = (choice == k).nonzero().flatten()
            if len(rows):
                out[rows] = expert(x[rows], sigma[rows])
        return out

    return denoise


def mixture_router(experts: Sequence[Denoise], gate: Callable) -> Denoise:
    """The soft counterpart of `gated_router`: D = sum_k p_k(x, sigma) D_k(x; sigma).

    The score (D - x) / sigma^2 is affine in D, so mixing the denoisers by the gate's
    probabilities mixes the experts' scores by the same weights.
    """

    def denoise(x: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
        sigma = _per_example_sigma(sigma, x)
        probs = torch.softmax(gate(x, sigma), dim=1)
        out = torch.zeros_like(x)
        for k, expert in enumerate(experts):
            out += probs[:, k].reshape(-1, *([1] * (x.ndim - 1))) * expert(x, sigma)
        return out

    return denoise
