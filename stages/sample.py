"""DVC stage `sample`: images from the baseline by the probability-flow ODE."""

import logging
import time

import numpy as np

from mclcore import tracking
from mclcore.checkpoints import load_denoiser
from mclcore.config import as_flat_dict, load_params
from mclcore.figures import save_grid
from mclcore.files import atomic_path, write_json
from mclcore.generation import generate
from mclcore.runtime import run_stage, select_device
from mclcore.samplers import evaluations_per_sample, make_sigmas

MODEL = "models/baseline.pt"
OUT = "samples/baseline.npz"
GRID = "figures/samples_baseline.png"
METRICS = "metrics/sample_baseline.json"


def main() -> None:
    params = load_params()
    cfg, model_cfg = params.sample, params.model
    device = select_device()
    denoiser, _ = load_denoiser(MODEL, device)
    sigmas = make_sigmas(cfg.grid, cfg.steps, model_cfg.sigma_min, model_cfg.sigma_max, cfg.rho)

    with tracking.stage_run("sample", as_flat_dict(cfg, "sample.")):
        start = time.perf_counter()
        images = generate(
            denoiser, cfg.n_samples, sigmas, cfg.sampler, cfg.seed, cfg.batch_size, device
        )
        seconds = time.perf_counter() - start
        with atomic_path(OUT) as tmp:
            with open(tmp, "wb") as handle:
                np.savez_compressed(handle, images=images, sigmas=sigmas.numpy())
        save_grid(images[:100], GRID)
        nfe = evaluations_per_sample(cfg.sampler, sigmas)
        metrics = {
            "n_samples": len(images),
            "nfe_per_image": nfe,
            "sample_seconds": seconds,
            "images_per_second": len(images) / seconds,
        }
        write_json(METRICS, metrics)
        tracking.log_metrics(metrics)
        tracking.log_artifact(GRID)
        tracking.log_artifact(OUT)
    logging.getLogger("sample").info("%d images, %d NFE each, %.0f s", len(images), nfe, seconds)


if __name__ == "__main__":
    run_stage(main)
