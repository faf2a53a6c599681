"""Saving and loading trained networks with the settings needed to rebuild them."""

from __future__ import annotations

from pathlib import Path

import torch

from mclcore.diffusion import Denoiser, build_denoiser
from mclcore.files import torch_save

SCORE_KIND = "mcl-diffusion/score-model"


class CheckpointError(RuntimeError):
    """A checkpoint that is missing, of another kind, or does not fit its network."""


def save_denoiser(denoiser: Denoiser, model_config: dict, path: str | Path, **meta) -> None:
    """Save a denoiser's weights with the `model` parameters that built it, atomically."""
    state = {k: v.detach().cpu() for k, v in denoiser.state_dict().items()}
    torch_save({"kind": SCORE_KIND, "model": dict(model_config), "state_dict": state, **meta}, path)


def load_checkpoint(path: str | Path, kind: str) -> dict:
    """The dict saved at `path`, checked to be of `kind`."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path} not found: run the stage that produces it (dvc repro)")
    try:
        state = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as err:  # torch raises several types for a damaged file
        raise CheckpointError(f"{path} could not be read ({err}); delete it and rerun") from err
    if not isinstance(state, dict) or state.get("kind") != kind:
        raise CheckpointError(f"{path} is not a {kind} checkpoint")
    return state


def load_denoiser(path: str | Path, device: torch.device | str = "cpu") -> tuple[Denoiser, dict]:
    """Rebuild a denoiser from its checkpoint; returns (denoiser in eval mode, checkpoint)."""
    state = load_checkpoint(path, SCORE_KIND)
    cfg = state["model"]
    denoiser = build_denoiser(
        cfg["channels"], cfg["emb_dim"], cfg["groups"], cfg["precond"], cfg["sigma_data"]
    )
    try:
        denoiser.load_state_dict(state["state_dict"])
    except RuntimeError as err:
        raise CheckpointError(
            f"{path} does not fit the network its own settings describe ({err}); retrain it"
        ) from err
    return denoiser.to(device).eval().requires_grad_(False), state
