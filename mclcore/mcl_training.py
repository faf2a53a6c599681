"""Training K expert denoisers by Multiple Choice Learning, with win-rate bookkeeping."""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import torch

from mclcore.diffusion import Denoiser, sample_training_sigmas
from mclcore.mcl import (
    Assignment,
    annealed_weights,
    expert_losses,
    relaxed_wta_weights,
    soft_step,
    train_winners,
    wta_weights,
)
from mclcore.progress import progress
from mclcore.training import EMA, epoch_order

log = logging.getLogger(__name__)


@dataclass
class MCLConfig:
    """Settings of one MCL run (see the `train_mcl` section of params.yaml)."""

    epochs: int
    batch_size: int
    lr: float
    ema_decay: float
    grad_clip: float
    sigma_sampling: str
    p_mean: float
    p_std: float
    sigma_min: float
    sigma_max: float
    seed: int
    rule: str = "annealed"  # wta | relaxed | annealed
    epsilon: float = 0.05
    temperature: float = 1.0
    anneal_fraction: float = 0.5
    assignment: str = "noise_draw"  # noise_draw | image
    draws_per_image: int = 4
    max_steps: int = 0
    log_every: int = 1
    sigma_bands: int = 8


def temperature_at(cfg: MCLConfig, step: int, total: int) -> float:
    """Annealed MCL temperature: T0 decaying linearly to 0 over `anneal_fraction` of the run."""
    horizon = max(1, int(cfg.anneal_fraction * total))
    return cfg.temperature * max(0.0, 1.0 - step / horizon)


def sigma_band_edges(cfg: MCLConfig) -> np.ndarray:
    """Edges of `sigma_bands` bands evenly spaced in log sigma over [sigma_min, sigma_max]."""
    return np.geomspace(cfg.sigma_min, cfg.sigma_max, cfg.sigma_bands + 1)


@dataclass
class WinCounts:
    """How many examples each expert won, overall and per noise-level band."""

    k: int
    edges: np.ndarray
    by_band: np.ndarray = field(init=False)

    def __post_init__(self):
        self.by_band = np.zeros((len(self.edges) - 1, self.k), dtype=np.int64)

    def add(self, sigma: torch.Tensor, winners: torch.Tensor) -> None:
        bands = np.clip(
            np.searchsorted(self.edges, sigma.cpu().numpy()) - 1, 0, len(self.edges) - 2
        )
        np.add.at(self.by_band, (bands, winners.cpu().numpy()), 1)

    def rates(self) -> np.ndarray:
        """Share of all examples won by each expert."""
        total = self.by_band.sum()
        return self.by_band.sum(axis=0) / max(total, 1)

    def band_rates(self) -> np.ndarray:
        """[bands, K]: within each band, the share each expert won."""
        totals = self.by_band.sum(axis=1, keepdims=True)
        return self.by_band / np.maximum(totals, 1)


def _assignment_fn(cfg: MCLConfig, step: int, total: int) -> Callable[[torch.Tensor], Assignment]:
    if cfg.rule == "wta":
        return wta_weights
    if cfg.rule == "relaxed":
        return lambda losses: relaxed_wta_weights(losses, cfg.epsilon)
    if cfg.rule == "annealed":
        temperature = temperature_at(cfg, step, total)
        return lambda losses: annealed_weights(losses, temperature)
    raise ValueError(f"unknown MCL rule {cfg.rule!r}; use wta, relaxed or annealed")


def _expand_batch(x0, cfg: MCLConfig, noise_rng):
    """Repeat each image `draws_per_image` times when assigning by image; draw sigma and noise."""
    draws = cfg.draws_per_image if cfg.assignment == "image" else 1
    x0 = x0.repeat_interleave(draws, dim=0)
    sigma = sample_training_sigmas(
        len(x0), cfg.sigma_sampling, cfg.sigma_min, cfg.sigma_max, cfg.p_mean, cfg.p_std, noise_rng
    ).to(x0.device)
    noise = torch.randn(x0.shape, generator=noise_rng).to(x0.device)
    return x0, sigma, noise, draws


def mcl_step(experts, optimizers, x0, cfg: MCLConfig, noise_rng, step: int, total: int):
    """One MCL step on a batch of images; returns ([K, rows] losses, [rows] winners, sigma)."""
    x0, sigma, noise, draws = _expand_batch(x0, cfg, noise_rng)
    assign = _assignment_fn(cfg, step, total)
    hard = cfg.rule == "wta" or (cfg.rule == "annealed" and temperature_at(cfg, step, total) == 0)

    def per_row(losses: torch.Tensor) -> Assignment:
        # Assignment by image: the loss summed over an image's draws picks one expert for all.
        grouped = assign(losses.reshape(len(experts), -1, draws).sum(dim=2))
        return Assignment(
            grouped.weights.repeat_interleave(draws, dim=1),
            grouped.winners.repeat_interleave(draws),
        )

    if hard:
        with torch.no_grad():
            losses = expert_losses(experts, x0, sigma, noise)
        winners = per_row(losses).winners
        train_winners(experts, optimizers, x0, sigma, noise, winners, cfg.grad_clip)
        return losses, winners, sigma
    losses, winners = soft_step(experts, optimizers, x0, sigma, noise, per_row, cfg.grad_clip)
    return losses, winners, sigma


def train_mcl(
    experts: list[Denoiser],
    images: torch.Tensor,
    cfg: MCLConfig,
    device: torch.device,
    log_metrics=None,
    show_progress: bool = True,
) -> tuple[list[EMA], WinCounts]:
    """Train the experts by MCL on `images`; return their EMAs and the final wins.

    The final wins are counted over the last quarter of the steps, after an annealed
    run has reached hard WTA: they show where each expert ends up, not where it started.
    """
    log_metrics = log_metrics or (lambda metrics, step: None)
    for expert in experts:
        expert.to(device)
    optimizers = [torch.optim.Adam(e.parameters(), lr=cfg.lr) for e in experts]
    emas = [EMA(e, cfg.ema_decay) for e in experts]
    noise_rng = torch.Generator().manual_seed(cfg.seed)
    steps_per_epoch = len(images) // cfg.batch_size
    total = cfg.epochs * steps_per_epoch
    total = min(total, cfg.max_steps) if cfg.max_steps else total
    edges = sigma_band_edges(cfg)
    wins = WinCounts(len(experts), edges)
    final_wins = WinCounts(len(experts), edges)
    final_from = int(0.75 * total)

    bar = progress(total=total, desc=f"train_mcl (K={len(experts)})", disable=not show_progress)
    for step in range(total):
        epoch, index = divmod(step, steps_per_epoch)
        if index == 0:
            wins = WinCounts(len(experts), edges)
        order = epoch_order(len(images), cfg.seed, epoch)
        ids = order[index * cfg.batch_size : (index + 1) * cfg.batch_size]
        losses, winners, sigma = mcl_step(
            experts, optimizers, images[ids].to(device), cfg, noise_rng, step, total
        )
        for ema, expert in zip(emas, experts):
            ema.update(expert)
        wins.add(sigma, winners)
        if step >= final_from:
            final_wins.add(sigma, winners)
        loss = losses.gather(0, winners[None]).mean().item()
        if not math.isfinite(loss):
            raise FloatingPointError(f"MCL loss became {loss}; lower train_mcl.lr")
        bar.update(1)
        bar.set_postfix(loss=f"{loss:.4f}", epoch=epoch)
        if (step + 1) % cfg.log_every == 0:
            log_metrics({"train_loss": loss}, step + 1)
        if (step + 1) % steps_per_epoch == 0 or step + 1 == total:
            rates = wins.rates()
            metrics = {f"win_rate_expert_{k}": r for k, r in enumerate(rates)}
            for band, band_rates in enumerate(wins.band_rates()):
                metrics.update(
                    {f"band{band}_win_rate_expert_{k}": r for k, r in enumerate(band_rates)}
                )
            log_metrics({"epoch": epoch + 1, **metrics}, step + 1)
            log.info("epoch %d win rates %s", epoch + 1, np.round(rates, 3).tolist())
    bar.close()
    return emas, final_wins
