"""Sampling with a trained ensemble: one function per routing strategy, from given noise.

This is the Python face of the study. Each function takes the loaded experts (see
`mclcore.ensemble.load_ensemble`), the initial noise x_T and a sigma grid, and returns
the final images as a float tensor in [-1, 1]-ish data units:

    experts, checkpoint = load_ensemble("models/experts.pt")
    gate = load_gate("models/gate.pt")
    noise = initial_noise(16, sigma_max=80.0, seed=0)
    sigmas = make_sigmas("edm", 18, 0.01, 80.0)
    x = sample_with_expert(experts, 2, noise, sigmas)            # expert 2 throughout
    x = sample_with_heuristic(experts, noise, sigmas, 0.01, 80.0)  # time bands
    x = sample_with_gate(experts, gate, noise, sigmas)             # gate per example

Given the same noise, the strategies differ only in which expert denoises what, so their
outputs can be compared image by image.
"""

from __future__ import annotations

from typing import Callable, Sequence

import torch

from mclcore.generation import sample_batches
from mclcore.routing import (
    Denoise,
    TimeRule,
    gated_router,
    heuristic_router,
    mixture_router,
    table_router,
    time_bands,
    win_table_rule,
)
from mclcore.samplers import evaluations_per_sample

# What the `sample` stage produces, one DVC foreach item each. `experts` is K rows
# (expert_0 ... expert_{K-1}); every other item is one row of the results table.
SAMPLE_ITEMS = ("baseline", "experts", "heuristic", "gated", "mixture", "pooled_ensemble")


def sample_with_expert(
    experts: Sequence[Denoise], k: int, noise, sigmas, sampler="heun", batch_size=500
) -> torch.Tensor:
    """`expert_k`: expert k alone for the whole trajectory."""
    if not 0 <= k < len(experts):
        raise ValueError(f"expert {k} does not exist: the ensemble has K = {len(experts)}")
    return sample_batches(experts[k], noise, sigmas, sampler, batch_size)


def sample_with_heuristic(
    experts: Sequence[Denoise],
    noise,
    sigmas,
    sigma_min: float,
    sigma_max: float,
    rule: TimeRule = time_bands,
    sampler="heun",
    batch_size=500,
) -> torch.Tensor:
    """`heuristic`: at each step one expert for the whole batch, `rule(t, K)` (default:
    K equal bands of t, expert 0 on the cleanest)."""
    router = heuristic_router(experts, sigma_min, sigma_max, rule)
    return sample_batches(router, noise, sigmas, sampler, batch_size)


def sample_with_win_table(
    experts: Sequence[Denoise],
    noise,
    sigmas,
    band_edges,
    band_win_rates,
    sampler="heun",
    batch_size=500,
) -> torch.Tensor:
    """The heuristic read from training: at each sigma, the expert that won most there."""
    router = table_router(experts, win_table_rule(band_edges, band_win_rates))
    return sample_batches(router, noise, sigmas, sampler, batch_size)


def sample_with_gate(
    experts: Sequence[Denoise],
    gate: Callable,
    noise,
    sigmas,
    sampler="heun",
    batch_size=500,
    soft: bool = False,
) -> torch.Tensor:
    """`gated`: the gate's choice per example and step; `soft=True` gives `mixture`."""
    router = (mixture_router if soft else gated_router)(experts, gate)
    return sample_batches(router, noise, sigmas, sampler, batch_size)


def sample_pooled(
    experts: Sequence[Denoise], noise, sigmas, sampler="heun", batch_size=500
) -> torch.Tensor:
    """`pooled_ensemble`: the noise cut into K nearly equal blocks, block k by expert k.

    Each image is exactly what `sample_with_expert(k)` makes of the same noise, so the
    pool is n/K images from each expert at the cost of one strategy.
    """
    blocks = torch.tensor_split(noise, len(experts))
    return torch.cat(
        [sample_batches(e, b, sigmas, sampler, batch_size) for e, b in zip(experts, blocks)]
    )


def heuristic_denoiser(
    experts: Sequence[Denoise], checkpoint: dict, rule: str, sigma_min: float, sigma_max: float
) -> Denoise:
    """The `heuristic` router that `sample.heuristic` names: `time_bands`, or `win_table`
    (the band win rates saved in the ensemble's checkpoint by `train_mcl`)."""
    if rule == "win_table":
        edges, table = checkpoint["band_edges"], checkpoint["band_win_rates"]
        return table_router(experts, win_table_rule(edges, table))
    if rule == "time_bands":
        return heuristic_router(experts, sigma_min, sigma_max, time_bands)
    raise ValueError(f"unknown heuristic {rule!r}; use time_bands or win_table")


def expert_evaluations(item: str, k: int, sampler: str, sigmas) -> int:
    """Expert-network evaluations per image of one strategy (the gate's own are extra)."""
    per_trajectory = evaluations_per_sample(sampler, sigmas)
    return per_trajectory * (k if item == "mixture" else 1)
