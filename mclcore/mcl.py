"""Multiple Choice Learning of K expert denoisers: who wins each example, and who learns.

Stochastic MCL (Lee et al. 2016, "Stochastic Multiple Choice Learning"): each training
example is scored by every expert with the same x0, noise level and noise draw, and only
the expert with the lowest denoising loss learns from it (winner-takes-all, WTA). Two
remedies for experts that never win are offered:

- relaxed WTA (Rupprecht et al. 2017, "Learning in an Uncertain World", Eq. 4): the
  winner gets weight 1 - epsilon and every other expert epsilon / (K - 1);
- annealed MCL (Perera et al. 2024, "Annealed Winner-Takes-All"): a softmin over the
  experts' losses at a temperature that decays to 0, where it becomes hard WTA.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from mclcore.diffusion import Denoiser, denoising_loss


@dataclass(frozen=True)
class Assignment:
    """The weight each expert gives each example ([K, B]) and the hard winners ([B])."""

    weights: torch.Tensor
    winners: torch.Tensor


def wta_weights(losses: torch.Tensor) -> Assignment:
    """Hard winner-takes-all: weight 1 for the lowest-loss expert of each example."""
    winners = losses.argmin(dim=0)
    weights = torch.zeros_like(losses)
    weights[winners, torch.arange(losses.shape[1])] = 1.0
    return Assignment(weights, winners)


def relaxed_wta_weights(losses: torch.Tensor, epsilon: float) -> Assignment:
    """Relaxed WTA: 1 - epsilon to the winner, epsilon / (K - 1) to each other expert."""
    hard = wta_weights(losses)
    k = losses.shape[0]
    if k == 1:
        return hard
    weights = hard.weights * (1 - epsilon) + (1 - hard.weights) * (epsilon / (k - 1))
    return Assignment(weights, hard.winners)


def annealed_weights(losses: torch.Tensor, temperature: float) -> Assignment:
    """Softmin of the losses at `temperature`; hard WTA at temperature 0."""
    if temperature <= 0:
        return wta_weights(losses)
    weights = torch.softmax(-losses / temperature, dim=0)
    return Assignment(weights, losses.argmin(dim=0))


@torch.no_grad()
def expert_losses(
    experts: list[Denoiser], x0: torch.Tensor, sigma: torch.Tensor, noise: torch.Tensor
) -> torch.Tensor:
    """[K, B] denoising losses of every expert on the same examples, without a graph."""
    return torch.stack([denoising_loss(expert, x0, sigma, noise) for expert in experts])


def _step_expert(expert: nn.Module, optimizer, grad_clip: float) -> None:
    # Clipping is per expert: a loser's gradient never enters another expert's norm.
    if grad_clip > 0:
        nn.utils.clip_grad_norm_(expert.parameters(), grad_clip)
    optimizer.step()


def wta_step(
    experts: list[Denoiser],
    optimizers: list[torch.optim.Optimizer],
    x0: torch.Tensor,
    sigma: torch.Tensor,
    noise: torch.Tensor,
    grad_clip: float = 0.0,
) -> tuple[torch.Tensor, torch.Tensor]:
    """One hard-WTA step: winners chosen without autograd, each trained on what it won.

    Every expert is evaluated once without a graph to find the winners; then each
    winner's forward and backward pass runs on its own examples only. An expert that won
    nothing is not touched: no gradient, no optimiser step (so no momentum or weight
    decay). Each winner's loss is its examples' losses summed over the batch size B, so
    the experts' gradients add up to the gradient of the batch-mean WTA loss.
    Returns ([K, B] losses, [B] winners).
    """
    losses = expert_losses(experts, x0, sigma, noise)
    winners = losses.argmin(dim=0)
    train_winners(experts, optimizers, x0, sigma, noise, winners, grad_clip)
    return losses, winners


def train_winners(
    experts: list[Denoiser],
    optimizers: list[torch.optim.Optimizer],
    x0: torch.Tensor,
    sigma: torch.Tensor,
    noise: torch.Tensor,
    winners: torch.Tensor,
    grad_clip: float = 0.0,
) -> None:
    """Train each expert on the rows it won (loss summed / batch size); skip the others."""
    for k, (expert, optimizer) in enumerate(zip(experts, optimizers)):
        won = (winners == k).nonzero().flatten()
        if len(won) == 0:
            continue
        loss = denoising_loss(expert, x0[won], sigma[won], noise[won]).sum() / len(x0)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        _step_expert(expert, optimizer, grad_clip)


def wta_step_naive(
    experts: list[Denoiser],
    optimizers: list[torch.optim.Optimizer],
    x0: torch.Tensor,
    sigma: torch.Tensor,
    noise: torch.Tensor,
    grad_clip: float = 0.0,
) -> tuple[torch.Tensor, torch.Tensor]:
    """The same step as `wta_step` by the reference study's route, for comparison.

    All K experts run forward and backward on the whole batch and the losers' terms are
    masked to zero; only the winners' optimisers then step. About K full training steps.
    """
    losses = torch.stack([denoising_loss(expert, x0, sigma, noise) for expert in experts])
    assignment = wta_weights(losses.detach())
    for optimizer in optimizers:
        optimizer.zero_grad(set_to_none=True)
    ((assignment.weights * losses).sum() / len(x0)).backward()
    for k, (expert, optimizer) in enumerate(zip(experts, optimizers)):
        if bool((assignment.winners == k).any()):
            _step_expert(expert, optimizer, grad_clip)
    return losses.detach(), assignment.winners


def soft_step(
    experts: list[Denoiser],
    optimizers: list[torch.optim.Optimizer],
    x0: torch.Tensor,
    sigma: torch.Tensor,
    noise: torch.Tensor,
    weights_fn,
    grad_clip: float = 0.0,
) -> tuple[torch.Tensor, torch.Tensor]:
    """One step where every expert learns with a weight per example (relaxed or annealed).

    `weights_fn([K, B] losses) -> Assignment`. The weights are constants (no gradient
    flows through the choice); every expert with a non-zero weight steps.
    """
    losses = torch.stack([denoising_loss(expert, x0, sigma, noise) for expert in experts])
    assignment = weights_fn(losses.detach())
    for optimizer in optimizers:
        optimizer.zero_grad(set_to_none=True)
    ((assignment.weights * losses).sum() / len(x0)).backward()
    for k, (expert, optimizer) in enumerate(zip(experts, optimizers)):
        if bool((assignment.weights[k] > 0).any()):
            _step_expert(expert, optimizer, grad_clip)
    return losses.detach(), assignment.winners
