"""DVC stage `sample@ITEM`: images from the baseline or from the ensemble by one strategy.

    python stages/sample.py baseline | experts | heuristic | gated | mixture | pooled_ensemble

Every item starts from the same seeded initial noise and uses the same sampler and grid,
so the strategies differ only in which network denoises what. `experts` writes one row
per expert (expert_0 ... expert_{K-1}), with sample.class_images images each when that is
more than n_samples (for the class histogram of evaluate); every other item writes one row.
The first n_samples images of every row come from the same initial noises, and their
sampling time is the one reported.
"""

import logging
import sys
import time

import numpy as np
import torch

from mclcore import tracking
from mclcore.checkpoints import load_denoiser
from mclcore.config import ParamsError, as_flat_dict, load_params
from mclcore.datasets import to_uint8
from mclcore.ensemble import load_ensemble
from mclcore.figures import save_grid
from mclcore.files import atomic_path, write_json
from mclcore.gating import load_gate
from mclcore.generation import sample_batches
from mclcore.runtime import run_stage, select_device
from mclcore.samplers import initial_noise, make_sigmas
from mclcore import strategies

BASELINE = "models/baseline.pt"
EXPERTS = "models/experts.pt"
GATE = "models/gate.pt"


def draw(item: str, params, noise, sigmas, device) -> tuple[dict[str, torch.Tensor], int]:
    """({row name: float images}, number of networks) for one foreach item."""
    cfg, model_cfg = params.sample, params.model
    run = dict(sampler=cfg.sampler, batch_size=cfg.batch_size)
    if item == "baseline":
        denoiser, _ = load_denoiser(BASELINE, device)
        return {"baseline": strategies.sample_with_expert([denoiser], 0, noise, sigmas, **run)}, 1
    experts, checkpoint = load_ensemble(EXPERTS, device)
    rows = _route(item, params, experts, checkpoint, noise, sigmas, device)
    return rows, len(experts)


def _route(item, params, experts, checkpoint, noise, sigmas, device):
    cfg, model_cfg = params.sample, params.model
    run = dict(sampler=cfg.sampler, batch_size=cfg.batch_size)
    if item == "experts":
        return {
            f"expert_{k}": strategies.sample_with_expert(experts, k, noise, sigmas, **run)
            for k in range(len(experts))
        }
    if item == "pooled_ensemble":
        return {item: strategies.sample_pooled(experts, noise, sigmas, **run)}
    if item == "heuristic":
        router = strategies.heuristic_denoiser(
            experts, checkpoint, cfg.heuristic, model_cfg.sigma_min, model_cfg.sigma_max
        )
        return {item: sample_batches(router, noise, sigmas, **run)}
    gate = load_gate(GATE, device, k=len(experts))
    return {
        item: strategies.sample_with_gate(
            experts, gate, noise, sigmas, soft=item == "mixture", **run
        )
    }


def grid_images(images: dict[str, np.ndarray]) -> np.ndarray:
    """100 images of one row; with several rows (experts), 10 of each, one row of the grid
    per expert, so that a column is one initial noise through every expert."""
    if len(images) == 1:
        return next(iter(images.values()))[:100]
    return np.concatenate([pixels[:10] for pixels in images.values()])


def main() -> None:
    if len(sys.argv) != 2 or sys.argv[1] not in strategies.SAMPLE_ITEMS:
        items = ", ".join(strategies.SAMPLE_ITEMS)
        raise ParamsError(f"usage: python stages/sample.py ITEM, with ITEM one of {items}")
    item = sys.argv[1]
    params = load_params()
    cfg, model_cfg = params.sample, params.model
    device = select_device()
    sigmas = make_sigmas(cfg.grid, cfg.steps, model_cfg.sigma_min, model_cfg.sigma_max, cfg.rho)
    n = cfg.expert_images if item == "experts" else cfg.n_samples
    noise = initial_noise(n, float(sigmas[0]), cfg.seed).to(device)

    with tracking.stage_run(
        f"sample@{item}", {"sample.item": item, **as_flat_dict(cfg, "sample.")}
    ):
        start = time.perf_counter()
        rows, k = draw(item, params, noise[: cfg.n_samples], sigmas, device)
        seconds = time.perf_counter() - start
        if n > cfg.n_samples:  # the class histogram's extra images, not timed
            more, _ = draw(item, params, noise[cfg.n_samples :], sigmas, device)
            rows = {name: torch.cat([x, more[name]]) for name, x in rows.items()}
        images = {name: to_uint8(x[:, 0].numpy()) for name, x in rows.items()}
        out = f"samples/{item}.npz"
        with atomic_path(out) as tmp, open(tmp, "wb") as handle:
            np.savez_compressed(handle, sigmas=sigmas.numpy(), **images)
        grid = f"figures/samples_{item}.png"
        save_grid(grid_images(images), grid)
        metrics = {
            name: {
                "n_samples": cfg.n_samples,
                "nfe_per_image": strategies.expert_evaluations(item, k, cfg.sampler, sigmas),
                "sample_seconds": seconds / len(rows),
            }
            for name in images
        }
        write_json(f"metrics/sample_{item}.json", metrics)
        tracking.log_metrics(
            {f"{name}.{key}": v for name, m in metrics.items() for key, v in m.items()}
        )
        tracking.log_artifact(grid)
        tracking.log_artifact(out)
    logging.getLogger("sample").info(
        "%s: %d rows of %d images (%d timed, in %.0f s)", item, len(rows), n, cfg.n_samples,
        seconds,
    )


if __name__ == "__main__":
    run_stage(main)
