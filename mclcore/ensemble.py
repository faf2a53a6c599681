"""Saving and loading the K experts of an MCL ensemble as one checkpoint."""

from __future__ import annotations

from pathlib import Path

import torch

from mclcore.checkpoints import CheckpointError, load_checkpoint
from mclcore.diffusion import Denoiser, build_denoiser
from mclcore.files import torch_save

ENSEMBLE_KIND = "mcl-diffusion/ensemble"


def save_ensemble(experts: list[Denoiser], model_config: dict, path: str | Path, **meta) -> None:
    """Save K experts' weights in one file with the `model` parameters, atomically."""
    states = [{k: v.detach().cpu() for k, v in e.state_dict().items()} for e in experts]
    torch_save(
        {"kind": ENSEMBLE_KIND, "model": dict(model_config), "experts": states, **meta}, path
    )


def load_ensemble(path: str | Path, device: torch.device | str = "cpu") -> tuple[list, dict]:
    """Rebuild the K experts saved at `path` (eval mode); returns (experts, checkpoint)."""
    state = load_checkpoint(path, ENSEMBLE_KIND)
    cfg = state["model"]
    experts = []
    for k, weights in enumerate(state["experts"]):
        expert = build_denoiser(
            cfg["channels"], cfg["emb_dim"], cfg["groups"], cfg["precond"], cfg["sigma_data"]
        )
        try:
            expert.load_state_dict(weights)
        except RuntimeError as err:
            raise CheckpointError(f"{path}: expert {k} does not fit its network ({err})") from err
        experts.append(expert.to(device).eval().requires_grad_(False))
    return experts, state
