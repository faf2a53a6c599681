"""Multiple Choice Learning of K expert denoisers: who wins each example, and who learns.

Stochastic MCL (Lee et al. 2016, "Stochastic Multiple Choice Learning"): each training
example is scored by every expert with the same x0, noise level and noise draw, and only
the expert with the lowest denoising loss learns from it (winner-takes-all, WTA). Two
remedies for experts that never win are offered:

- relaxed WTA (Rupprecht et al. 2017, "Learning in an Uncertain World", Eq. 4): the
  winner gets weight 1 - epsilon and every other expert epsilon / (K - 1);
- balanced assignment (as in the BASE layers of Lewis et al. 2021, here by a greedy
  pass): hard WTA under a capacity, each expert taking at most about B/K examples of a
  batch, the examples it is relatively best at; the winners counted are still the
  lowest-loss experts, so the win rates show whether the experts did specialise.
- annealed MCL (Perera et al. 2024, "Annealed Winner-Takes-All"): a softmin over the
  experts' losses at a temperature that decays to 0, where it becomes hard WTA. Here the
  temperature is relative: in units of each example's mean loss over the experts, so one
  setting means the same at every noise level and at every stage of training.
"""

from __future__ import annotations

import math
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
    """Softmin of the losses at a relative `temperature`; hard WTA at temperature 0.

    weight_k = softmax_k(-loss_k / (temperature * mean_j loss_j)) per example: at
    temperature 0.01, an expert whose loss is 1% of the mean higher gets e times less weight.
    """
    if temperature <= 0:
        return wta_weights(losses)
    scale = temperature * losses.mean(dim=0, keepdim=True).clamp_min(1e-12)
    weights = torch.softmax(-losses / scale, dim=0)
    return Assignment(weights, losses.argmin(dim=0))


def balanced_weights(losses: torch.Tensor, capacity: float = 1.0) -> Assignment:
    """Hard assignment in which no expert takes more than ceil(capacity * B / K) examples.

    The (expert, example) pairs are visited from the lowest loss relative to the example's
    mean over the experts (so that noise levels with large losses do not go first) and an
    example goes to the first expert with room left. `winners` stays the plain argmin.
    """
    k, b = losses.shape
    room = [math.ceil(capacity * b / k)] * k
    relative = losses / losses.mean(dim=0, keepdim=True).clamp_min(1e-12)
    owner = [-1] * b
    for pair in relative.flatten().argsort().tolist():
        expert, example = divmod(pair, b)
        if owner[example] < 0 and room[expert] > 0:
            owner[example] = expert
            room[expert] -= 1
    weights = torch.zeros_like(losses)
    weights[torch.tensor(owner, device=losses.device), torch.arange(b, device=losses.device)] = 1.0
    return Assignment(weights, losses.argmin(dim=0))


@torch.no_grad()
def expert_losses(
    experts: list[Denoiser], x0: torch.Tensor, sigma: torch.Tensor, noise: torch.Tensor
) -> torch.Tensor:
    """[K, B] denoising losses of every expert on the same examples, without a graph."""
    return torch.stack([denoising_loss(expert, x0, sigma, noise) for expert in experts])


# A weight below this is treated as 0: the example is skipped for that expert. Softmin
# weights at a low temperature underflow towards subnormal floats, whose arithmetic is
# orders of magnitude slower on a CPU, and Adam would scale such vanishing gradients up
# only to the level of its epsilon anyway.
MIN_WEIGHT = 1e-6


def weight_density(weights: torch.Tensor) -> float:
    """Share of (expert, example) pairs that train: 1/K under hard WTA, 1 under relaxed."""
    return float((weights >= MIN_WEIGHT).float().mean())


def _step_expert(expert: nn.Module, optimizer, grad_clip: float) -> None:
    # Clipping is per expert: a loser's gradient never enters another expert's norm.
    if grad_clip > 0:
        nn.utils.clip_grad_norm_(expert.parameters(), grad_clip)
    optimizer.step()


def train_weighted(
    experts: list[Denoiser],
    optimizers: list[torch.optim.Optimizer],
    x0: torch.Tensor,
    sigma: torch.Tensor,
    noise: torch.Tensor,
    weights: torch.Tensor,
    grad_clip: float = 0.0,
) -> None:
    """Train each expert on the rows it has weight for: sum_i w_ki loss_ki / B.

    Only rows with weight >= MIN_WEIGHT are run forward and backward, so under hard WTA
    each expert sees just the examples it won, and an expert with no such row is not
    touched: no gradient, no optimiser step (so no momentum or weight decay).
    """
    for k, (expert, optimizer) in enumerate(zip(experts, optimizers)):
        rows = (weights[k] >= MIN_WEIGHT).nonzero().flatten()
        if len(rows) == 0:
            continue
        loss = denoising_loss(expert, x0[rows], sigma[rows], noise[rows])
        optimizer.zero_grad(set_to_none=True)
        ((weights[k, rows] * loss).sum() / len(x0)).backward()
        _step_expert(expert, optimizer, grad_clip)


def mcl_update(
    experts: list[Denoiser],
    optimizers: list[torch.optim.Optimizer],
    x0: torch.Tensor,
    sigma: torch.Tensor,
    noise: torch.Tensor,
    weights_fn=wta_weights,
    grad_clip: float = 0.0,
) -> tuple[torch.Tensor, torch.Tensor]:
    """One MCL step, efficiently: choose without autograd, then train on the choice.

    Every expert is evaluated once without a graph; `weights_fn([K, B] losses) ->
    Assignment` turns the losses into weights (hard WTA by default, or relaxed, or
    annealed), and each expert then runs forward and backward only on the rows it has
    weight for. Returns ([K, B] losses, [B] winners).
    """
    losses = expert_losses(experts, x0, sigma, noise)
    assignment = weights_fn(losses)
    train_weighted(experts, optimizers, x0, sigma, noise, assignment.weights, grad_clip)
    return losses, assignment.winners


def wta_step(experts, optimizers, x0, sigma, noise, grad_clip: float = 0.0):
    """One hard-WTA step by `mcl_update`: each winner trains on what it won, losers rest."""
    return mcl_update(experts, optimizers, x0, sigma, noise, wta_weights, grad_clip)


def naive_step(
    experts: list[Denoiser],
    optimizers: list[torch.optim.Optimizer],
    x0: torch.Tensor,
    sigma: torch.Tensor,
    noise: torch.Tensor,
    weights_fn=wta_weights,
    grad_clip: float = 0.0,
) -> tuple[torch.Tensor, torch.Tensor]:
    """The same step by the reference study's route, for comparison and as a check.

    All K experts run forward and backward on the whole batch and the loss is weighted
    (the losers' terms masked to zero under WTA); only experts with some weight step.
    About K full training steps.
    """
    losses = torch.stack([denoising_loss(expert, x0, sigma, noise) for expert in experts])
    assignment = weights_fn(losses.detach())
    for optimizer in optimizers:
        optimizer.zero_grad(set_to_none=True)
    ((assignment.weights * losses).sum() / len(x0)).backward()
    for k, (expert, optimizer) in enumerate(zip(experts, optimizers)):
        if bool((assignment.weights[k] >= MIN_WEIGHT).any()):
            _step_expert(expert, optimizer, grad_clip)
    return losses.detach(), assignment.winners
