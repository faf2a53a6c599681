"""Training K expert denoisers by Multiple Choice Learning, with win-rate bookkeeping."""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from mclcore.diffusion import Denoiser, sample_training_sigmas
from mclcore.mcl import (
    Assignment,
    annealed_weights,
    balanced_weights,
    expert_losses,
    relaxed_wta_weights,
    mcl_update,
    naive_step,
    weight_density,
    wta_weights,
)
from mclcore.progress import progress
from mclcore.training import (
    EMA,
    TrainConfig,
    epoch_order,
    load_resume_state,
    save_resume_state,
    total_steps,
)

log = logging.getLogger(__name__)


@dataclass
class MCLConfig(TrainConfig):
    """Settings of one MCL run: the baseline loop's, plus how the experts share the examples
    (see the `train_mcl` section of params.yaml)."""

    rule: str = "balanced"  # wta | relaxed | balanced | annealed
    epsilon: float = 0.05
    capacity: float = 1.0
    temperature: float = 1.0
    final_temperature: float = 0.01
    anneal_fraction: float = 0.5
    assignment: str = "noise_draw"  # noise_draw | image
    draws_per_image: int = 4
    sigma_bands: int = 8
    wins_every: int = 25


def temperature_at(cfg: MCLConfig, step: int, total: int) -> float:
    """Annealed MCL temperature at `step` of `total`: geometric decay, then 0 (hard WTA).

    It falls from `temperature` to `final_temperature` by a constant factor per step over
    the first `anneal_fraction` of the run (Perera et al. 2024 decay it exponentially), so
    every decade of temperature gets the same number of steps; after that it is 0.
    """
    horizon = max(1, int(cfg.anneal_fraction * total))
    if step >= horizon or cfg.temperature <= 0:
        return 0.0
    return cfg.temperature * (cfg.final_temperature / cfg.temperature) ** (step / horizon)


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
    if cfg.rule == "balanced":
        return lambda losses: balanced_weights(losses, cfg.capacity)
    if cfg.rule == "annealed":
        temperature = temperature_at(cfg, step, total)
        return lambda losses: annealed_weights(losses, temperature)
    raise ValueError(f"unknown MCL rule {cfg.rule!r}; use wta, relaxed, balanced or annealed")


def _expand_batch(x0, cfg: MCLConfig, noise_rng):
    """Repeat each image `draws_per_image` times when assigning by image; draw sigma and noise."""
    draws = cfg.draws_per_image if cfg.assignment == "image" else 1
    x0 = x0.repeat_interleave(draws, dim=0)
    sigma = sample_training_sigmas(
        len(x0), cfg.sigma_sampling, cfg.sigma_min, cfg.sigma_max, cfg.p_mean, cfg.p_std, noise_rng
    ).to(x0.device)
    noise = torch.randn(x0.shape, generator=noise_rng).to(x0.device)
    return x0, sigma, noise, draws


# Above this share of (expert, example) pairs with weight, the naive route (all K forward
# and backward, no separate selection pass) costs less than the efficient one: the
# selection pass costs about a third of a training pass.
DENSE_ABOVE = 0.6


def mcl_step(
    experts, optimizers, x0, cfg: MCLConfig, noise_rng, step: int, total: int, dense=False
):
    """One MCL step on a batch of images; returns ([K, rows] losses, [rows] winners, sigma,
    weight density).

    Both routes compute the same update (tested); `dense=True` takes the naive one, which
    is cheaper while most experts learn from most examples (early in annealing, relaxed).
    """
    x0, sigma, noise, draws = _expand_batch(x0, cfg, noise_rng)
    assign = _assignment_fn(cfg, step, total)

    density = []

    def per_row(losses: torch.Tensor) -> Assignment:
        # Assignment by image: the loss summed over an image's draws picks one expert for all.
        grouped = assign(losses.reshape(len(experts), -1, draws).sum(dim=2))
        density.append(weight_density(grouped.weights))
        return Assignment(
            grouped.weights.repeat_interleave(draws, dim=1),
            grouped.winners.repeat_interleave(draws),
        )

    route = naive_step if dense else mcl_update
    losses, winners = route(experts, optimizers, x0, sigma, noise, per_row, cfg.grad_clip)
    return losses, winners, sigma, density[0]


@dataclass
class MCLRun:
    """What an MCL run leaves: the experts' EMAs, the wins over its last quarter, the win
    rates of every `wins_every` steps ([rows, 1 + K]: step, then one rate per expert) and
    the MCL loss (the winners' mean) at every logged step ([rows, 2]: step, loss)."""

    emas: list[EMA]
    final_wins: WinCounts
    win_rate_curve: np.ndarray
    loss_curve: np.ndarray


def train_mcl(
    experts: list[Denoiser],
    images: torch.Tensor,
    cfg: MCLConfig,
    device: torch.device,
    log_metrics=None,
    show_progress: bool = True,
    resume_path: str | Path | None = None,
    resume_extra: dict | None = None,
) -> MCLRun:
    """Train the experts by MCL on `images`; return their EMAs and win counts.

    The final wins are counted over the last quarter of the steps, after an annealed
    run has reached hard WTA: they show where each expert ends up, not where it started.
    With `resume_path`, the whole state (every expert, EMA and optimiser, the noise
    generator and the win counts) is saved there every `checkpoint_every` steps, and a
    run that finds a matching state there continues from it bit for bit.
    """
    if len(images) < cfg.batch_size:
        raise ValueError(
            f"{len(images)} training images are fewer than one batch of {cfg.batch_size}; "
            "lower train_mcl.batch_size"
        )
    log_metrics = log_metrics or (lambda metrics, step: None)
    for expert in experts:
        expert.to(device)
    optimizers = [torch.optim.Adam(e.parameters(), lr=cfg.lr) for e in experts]
    emas = [EMA(e, cfg.ema_decay) for e in experts]
    noise_rng = torch.Generator().manual_seed(cfg.seed)
    steps_per_epoch = len(images) // cfg.batch_size
    total = total_steps(len(images), cfg)
    edges = sigma_band_edges(cfg)
    wins = WinCounts(len(experts), edges)
    window = WinCounts(len(experts), edges)
    final_wins = WinCounts(len(experts), edges)
    curve: list[list[float]] = []
    loss_curve: list[tuple[int, float]] = []
    final_from = int(0.75 * total)
    fingerprint = cfg.fingerprint({"K": len(experts), **(resume_extra or {})})
    start, saved = load_resume_state(resume_path, fingerprint, experts, emas, optimizers, noise_rng)
    dense = cfg.rule in ("relaxed", "annealed")  # the first step's route; then the last's
    if start:
        wins.by_band[:], final_wins.by_band[:] = saved["wins"], saved["final_wins"]
        dense = saved["dense"]
        window.by_band[:] = saved["window"]
        curve = saved["curve"]
        loss_curve = saved["loss_curve"]
    for ema in emas:
        ema.resumed_at = start

    bar = progress(
        total=total, initial=start, desc=f"train_mcl (K={len(experts)})", disable=not show_progress
    )
    for step in range(start, total):
        epoch, index = divmod(step, steps_per_epoch)
        if index == 0:
            wins = WinCounts(len(experts), edges)
        order = epoch_order(len(images), cfg.seed, epoch)
        ids = order[index * cfg.batch_size : (index + 1) * cfg.batch_size]
        losses, winners, sigma, density = mcl_step(
            experts, optimizers, images[ids].to(device), cfg, noise_rng, step, total, dense
        )
        dense = density > DENSE_ABOVE
        for ema, expert in zip(emas, experts):
            ema.update(expert)
        wins.add(sigma, winners)
        window.add(sigma, winners)
        if step >= final_from:
            final_wins.add(sigma, winners)
        loss = losses.gather(0, winners[None]).mean().item()
        if not math.isfinite(loss):
            raise FloatingPointError(f"MCL loss became {loss}; lower train_mcl.lr")
        bar.update(1)
        bar.set_postfix(loss=f"{loss:.4f}", epoch=epoch)
        done = step + 1
        if done % cfg.log_every == 0:
            log_metrics(
                {
                    "train_loss": loss,
                    "temperature": _temperature(cfg, step, total),
                    "weight_density": density,
                },
                done,
            )
            loss_curve.append((done, loss))
        if done % cfg.wins_every == 0 or done == total:
            rates = window.rates()
            log_metrics({f"window_win_rate_expert_{k}": r for k, r in enumerate(rates)}, done)
            log.info(
                "step %d: win rates of the last %d steps %s",
                done,
                cfg.wins_every,
                np.round(rates, 3).tolist(),
            )
            curve.append([done, *rates.tolist()])
            window = WinCounts(len(experts), edges)
        if done % steps_per_epoch == 0 or done == total:
            _log_wins(wins, epoch, done, log_metrics)
        if resume_path and done % cfg.checkpoint_every == 0 and done < total:
            save_resume_state(
                resume_path,
                fingerprint,
                done,
                experts,
                emas,
                optimizers,
                noise_rng,
                wins=wins.by_band.copy(),
                final_wins=final_wins.by_band.copy(),
                window=window.by_band.copy(),
                curve=curve,
                loss_curve=loss_curve,
                dense=dense,
            )
    bar.close()
    if resume_path and Path(resume_path).exists():
        Path(resume_path).unlink()
    return MCLRun(
        emas,
        final_wins,
        np.array(curve).reshape(-1, len(experts) + 1),
        np.array(loss_curve).reshape(-1, 2),
    )


def _temperature(cfg: MCLConfig, step: int, total: int) -> float:
    return temperature_at(cfg, step, total) if cfg.rule == "annealed" else 0.0


def _log_wins(wins: WinCounts, epoch: int, step: int, log_metrics) -> None:
    rates = wins.rates()
    metrics = {f"win_rate_expert_{k}": r for k, r in enumerate(rates)}
    for band, band_rates in enumerate(wins.band_rates()):
        metrics.update({f"band{band}_win_rate_expert_{k}": r for k, r in enumerate(band_rates)})
    log_metrics({"epoch": epoch + 1, **metrics}, step)
    log.info("epoch %d win rates %s", epoch + 1, np.round(rates, 3).tolist())
