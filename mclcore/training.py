"""Training one score network: data order, the loss step, EMA, logging and resumption."""

from __future__ import annotations

import copy
import hashlib
import json
import logging
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch
from torch import nn
from mclcore.progress import progress

from mclcore.diffusion import Denoiser, denoising_loss, sample_training_sigmas
from mclcore.files import torch_save

log = logging.getLogger(__name__)

MetricsLogger = Callable[[dict, int], None]


class EMA:
    """Exponential moving average of a module's weights with warm-up.

    The effective decay min(decay, (1 + n) / (10 + n)) after n updates keeps the first
    few hundred steps of a short run from being dominated by the random initialisation.
    """

    def __init__(self, module: nn.Module, decay: float):
        self.decay = decay
        self.updates = 0
        self.resumed_at = 0  # the step a resumed run started from (0 for a fresh one)
        self.module = copy.deepcopy(module).eval().requires_grad_(False)

    @torch.no_grad()
    def update(self, module: nn.Module) -> None:
        decay = min(self.decay, (1 + self.updates) / (10 + self.updates))
        for ema_p, p in zip(self.module.parameters(), module.parameters()):
            ema_p.lerp_(p.detach(), 1 - decay)
        for ema_b, b in zip(self.module.buffers(), module.buffers()):
            ema_b.copy_(b)
        self.updates += 1


@dataclass
class TrainConfig:
    """What the loop needs of `mclcore.config.TrainParams` and `ModelParams`."""

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
    max_steps: int = 0
    log_every: int = 25
    checkpoint_every: int = 200

    def fingerprint(self, extra: dict | None = None) -> str:
        """A digest of everything that makes a resumed run differ from a fresh one."""
        payload = json.dumps({"config": self.__dict__, "extra": extra or {}}, sort_keys=True)
        return hashlib.sha256(payload.encode()).hexdigest()[:16]


def train_config(train, model) -> TrainConfig:
    """The loop's settings from the `train_baseline` and `model` sections of params.yaml."""
    return TrainConfig(
        epochs=train.epochs,
        batch_size=train.batch_size,
        lr=train.lr,
        ema_decay=train.ema_decay,
        grad_clip=train.grad_clip,
        sigma_sampling=train.sigma_sampling,
        p_mean=train.p_mean,
        p_std=train.p_std,
        sigma_min=model.sigma_min,
        sigma_max=model.sigma_max,
        seed=train.seed,
        max_steps=train.max_steps,
        log_every=train.log_every,
        checkpoint_every=train.checkpoint_every,
    )


def epoch_order(n: int, seed: int, epoch: int) -> torch.Tensor:
    """The permutation of the training set for one epoch, reproducible on its own."""
    return torch.randperm(n, generator=torch.Generator().manual_seed(seed * 100_003 + epoch))


def total_steps(n_train: int, cfg: TrainConfig) -> int:
    """Optimiser steps in the whole run (the last partial batch of an epoch is dropped)."""
    steps = cfg.epochs * (n_train // cfg.batch_size)
    return min(steps, cfg.max_steps) if cfg.max_steps else steps


def train_denoiser(
    denoiser: Denoiser,
    images: torch.Tensor,
    cfg: TrainConfig,
    device: torch.device,
    log_metrics: MetricsLogger | None = None,
    resume_path: str | Path | None = None,
    resume_extra: dict | None = None,
    show_progress: bool = True,
) -> EMA:
    """Train `denoiser` on `images` ([N, 1, 28, 28] in [-1, 1]); return its EMA.

    With `resume_path`, the full state is saved there every `checkpoint_every` steps and a
    matching state found there at start is resumed from, bit for bit; it is removed at
    the end. `log_metrics(metrics, step)` receives the loss per step and per epoch; the
    returned EMA also carries `loss_curve`, every logged (step, loss), resumed runs included.
    """
    if len(images) < cfg.batch_size:
        raise ValueError(
            f"{len(images)} training images are fewer than one batch of {cfg.batch_size}; "
            "lower the batch size"
        )
    log_metrics = log_metrics or (lambda metrics, step: None)
    denoiser.to(device)
    optimizer = torch.optim.Adam(denoiser.parameters(), lr=cfg.lr)
    ema = EMA(denoiser, cfg.ema_decay)
    noise_rng = torch.Generator().manual_seed(cfg.seed)
    steps_per_epoch = len(images) // cfg.batch_size
    n_steps = total_steps(len(images), cfg)
    fingerprint = cfg.fingerprint(resume_extra)
    step, saved = load_resume_state(
        resume_path, fingerprint, [denoiser], [ema], [optimizer], noise_rng
    )
    ema.resumed_at = step
    ema.loss_curve = saved.get("loss_curve", [])

    bar = progress(
        total=n_steps, initial=step, desc="train", unit="step", disable=not show_progress
    )
    epoch_losses: list[float] = []
    while step < n_steps:
        epoch, index = divmod(step, steps_per_epoch)
        order = epoch_order(len(images), cfg.seed, epoch)
        batch_ids = order[index * cfg.batch_size : (index + 1) * cfg.batch_size]
        loss = _train_step(denoiser, optimizer, images[batch_ids].to(device), cfg, noise_rng)
        ema.update(denoiser)
        step += 1
        epoch_losses.append(loss)
        bar.update(1)
        bar.set_postfix(loss=f"{loss:.4f}", epoch=epoch)
        if step % cfg.log_every == 0:
            log_metrics({"train_loss": loss}, step)
            ema.loss_curve.append((step, loss))
        if step % steps_per_epoch == 0 or step == n_steps:
            epoch_mean = sum(epoch_losses) / len(epoch_losses)
            log_metrics({"epoch_loss": epoch_mean, "epoch": epoch + 1}, step)
            log.info("epoch %d: mean loss %.4f", epoch + 1, epoch_mean)
            epoch_losses = []
        if resume_path and step % cfg.checkpoint_every == 0 and step < n_steps:
            save_resume_state(
                resume_path,
                fingerprint,
                step,
                [denoiser],
                [ema],
                [optimizer],
                noise_rng,
                loss_curve=ema.loss_curve,
            )
    bar.close()
    if resume_path and Path(resume_path).exists():
        Path(resume_path).unlink()
    return ema


def _train_step(denoiser, optimizer, x0, cfg: TrainConfig, noise_rng) -> float:
    sigma = sample_training_sigmas(
        len(x0), cfg.sigma_sampling, cfg.sigma_min, cfg.sigma_max, cfg.p_mean, cfg.p_std, noise_rng
    ).to(x0.device)
    noise = torch.randn(x0.shape, generator=noise_rng).to(x0.device)
    loss = denoising_loss(denoiser, x0, sigma, noise).mean()
    if not math.isfinite(loss.item()):
        raise FloatingPointError(
            f"training loss became {loss.item()}; lower the learning rate or the noise range"
        )
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    if cfg.grad_clip > 0:
        nn.utils.clip_grad_norm_(denoiser.parameters(), cfg.grad_clip)
    optimizer.step()
    return loss.item()


def save_resume_state(path, fingerprint, step, models, emas, optimizers, noise_rng, **extra):
    """Everything a run needs to continue bit for bit from `step`: weights, EMAs, optimiser
    moments and the noise generator, for one network or several (lists in the same order)."""
    torch_save(
        {
            "fingerprint": fingerprint,
            "step": step,
            "models": [m.state_dict() for m in models],
            "emas": [ema.module.state_dict() for ema in emas],
            "ema_updates": [ema.updates for ema in emas],
            "optimizers": [o.state_dict() for o in optimizers],
            "noise_rng": noise_rng.get_state(),
            "extra": extra,
        },
        path,
    )


def load_resume_state(path, fingerprint, models, emas, optimizers, noise_rng) -> tuple[int, dict]:
    """Restore a state saved by `save_resume_state` if there is one for this fingerprint.

    Returns (the step to continue from, the extra items saved with it); (0, {}) when there
    is nothing to resume or it was saved with other settings.
    """
    if not path or not Path(path).exists():
        return 0, {}
    state = torch.load(path, map_location="cpu", weights_only=False)
    if state.get("fingerprint") != fingerprint or len(state.get("models", [])) != len(models):
        log.warning("ignoring %s: it was saved with other parameters", path)
        return 0, {}
    for model, ema, optimizer, i in zip(models, emas, optimizers, range(len(models))):
        model.load_state_dict(state["models"][i])
        ema.module.load_state_dict(state["emas"][i])
        ema.updates = state["ema_updates"][i]
        optimizer.load_state_dict(state["optimizers"][i])
    noise_rng.set_state(state["noise_rng"])
    log.info("resuming from %s at step %d", path, state["step"])
    return state["step"], state["extra"]


@torch.no_grad()
def denoising_error_by_sigma(
    denoiser: Denoiser, x0: torch.Tensor, sigmas, seed: int = 0, batch_size: int = 500
) -> dict[float, float]:
    """Mean squared error of D(x0 + sigma n; sigma) against x0 at each fixed sigma.

    Unweighted, so it compares any two denoisers of the same data, whatever their
    preconditioning; evaluated on held-out images with noise from `seed`.
    """
    denoiser.eval()
    generator = torch.Generator().manual_seed(seed)
    device = next(denoiser.parameters()).device
    errors = {}
    for sigma in sigmas:
        total = 0.0
        for batch in x0.split(batch_size):
            noise = torch.randn(batch.shape, generator=generator)
            x = (batch + sigma * noise).to(device)
            denoised = denoiser(x, torch.full((len(batch),), float(sigma), device=device))
            total += (denoised.cpu() - batch).square().flatten(1).mean(1).sum().item()
        errors[float(sigma)] = total / len(x0)
    return errors
