"""DVC stage `train_baseline`: one score network, its EMA weights saved for sampling."""

import dataclasses
import json
import logging
import time
from pathlib import Path

import torch

from mclcore import tracking
from mclcore.checkpoints import save_denoiser
from mclcore.config import as_flat_dict, load_params
from mclcore.datasets import as_tensor, load_splits
from mclcore.diffusion import build_denoiser
from mclcore.files import write_csv, write_json
from mclcore.runtime import run_stage, select_device
from mclcore.training import denoising_error_by_sigma, train_config, train_denoiser
from mclcore.unet import count_parameters

OUT = "models/baseline.pt"
METRICS = "metrics/train_baseline.json"
RESUME = "runs/resume/train_baseline.pt"
LOSS_CURVE = "metrics/loss_baseline.csv"
PROBE_SIGMAS = (0.02, 0.1, 0.5, 1.0, 2.0, 5.0, 20.0, 80.0)
PROBE_IMAGES = 500


def main() -> None:
    params = load_params()
    model_cfg, train = params.model, params.train_baseline
    splits = load_splits("data/raw", params.data.holdout, params.data.split_seed)
    images = as_tensor(splits.train_images)
    device = select_device()
    torch.manual_seed(train.seed)
    denoiser = build_denoiser(
        model_cfg.channels,
        model_cfg.emb_dim,
        model_cfg.groups,
        model_cfg.precond,
        model_cfg.sigma_data,
    )
    cfg = train_config(train, model_cfg)
    logged = {**as_flat_dict(model_cfg, "model."), **as_flat_dict(train, "train.")}

    with tracking.stage_run("train_baseline", logged):
        start = time.perf_counter()
        ema = train_denoiser(
            denoiser,
            images,
            cfg,
            device,
            tracking.log_metrics,
            RESUME,
            resume_extra={
                "model": dataclasses.asdict(model_cfg),
                "data": dataclasses.asdict(params.data),
                "files": json.loads(Path("data/raw/manifest.json").read_text())["files"],
            },
        )
        seconds = time.perf_counter() - start
        save_denoiser(ema.module, dataclasses.asdict(model_cfg), OUT, steps=ema.updates)

        probe = as_tensor(splits.holdout_images[:PROBE_IMAGES])
        errors = denoising_error_by_sigma(ema.module, probe, PROBE_SIGMAS) if len(probe) else {}
        metrics = {
            "steps": ema.updates,
            "train_seconds": seconds,
            "resumed_at_step": ema.resumed_at,
            "images_per_second": (ema.updates - ema.resumed_at) * cfg.batch_size / seconds,
            "parameters": count_parameters(denoiser),
            **{f"heldout_mse_sigma_{s:g}": e for s, e in errors.items()},
        }
        write_json(METRICS, metrics)
        write_csv(LOSS_CURVE, ["step", "loss"], ema.loss_curve)
        tracking.log_metrics(metrics)
        tracking.log_artifact(OUT)
    logging.getLogger("train_baseline").info("trained %d steps in %.0f s", ema.updates, seconds)


if __name__ == "__main__":
    run_stage(main)
