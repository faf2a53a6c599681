"""DVC stage `train_mcl`: K expert score networks trained by Multiple Choice Learning."""

import dataclasses
import logging
import time

import torch

from mclcore import tracking
from mclcore.config import as_flat_dict, load_params
from mclcore.datasets import as_tensor, load_splits
from mclcore.diffusion import build_denoiser
from mclcore.ensemble import save_ensemble
from mclcore.files import write_csv, write_json
from mclcore.mcl_training import MCLConfig, train_mcl
from mclcore.runtime import run_stage, select_device

OUT = "models/experts.pt"
METRICS = "metrics/train_mcl.json"
BANDS = "metrics/win_rates_by_sigma.csv"
RESUME = "runs/resume/train_mcl.pt"
CURVE = "metrics/win_rate_curve.csv"  # long format (step, expert, win_rate): any K plots
LOSS_CURVE = "metrics/loss_mcl.csv"


def mcl_config(params) -> MCLConfig:
    """The loop's settings from the `train_mcl` and `model` sections."""
    fields = {f.name for f in dataclasses.fields(MCLConfig)}
    settings = {k: v for k, v in dataclasses.asdict(params.train_mcl).items() if k in fields}
    return MCLConfig(sigma_min=params.model.sigma_min, sigma_max=params.model.sigma_max, **settings)


def main() -> None:
    params = load_params()
    model_cfg, K = params.model, params.mcl.K
    splits = load_splits("data/raw", params.data.holdout, params.data.split_seed)
    images = as_tensor(splits.train_images)
    device = select_device()
    torch.manual_seed(params.train_mcl.seed)
    experts = [
        build_denoiser(
            model_cfg.channels,
            model_cfg.emb_dim,
            model_cfg.groups,
            model_cfg.precond,
            model_cfg.sigma_data,
        )
        for _ in range(K)
    ]
    cfg = mcl_config(params)
    logged = {
        "mcl.K": K,
        **as_flat_dict(model_cfg, "model."),
        **as_flat_dict(params.train_mcl, "train_mcl."),
    }

    with tracking.stage_run("train_mcl", logged):
        start = time.perf_counter()
        run = train_mcl(
            experts,
            images,
            cfg,
            device,
            tracking.log_metrics,
            resume_path=RESUME,
            resume_extra={"model": dataclasses.asdict(model_cfg), "data": str(params.data)},
        )
        seconds = time.perf_counter() - start
        emas, wins = run.emas, run.final_wins
        rates = wins.rates()
        save_ensemble(
            [ema.module for ema in emas],
            dataclasses.asdict(model_cfg),
            OUT,
            win_rates=rates.tolist(),
            band_edges=wins.edges.tolist(),
            band_win_rates=wins.band_rates().tolist(),
        )
        bands = wins.band_rates()
        write_csv(
            BANDS,
            ["band", "sigma_low", "sigma_high", "expert", "win_rate"],
            [
                (b, float(wins.edges[b]), float(wins.edges[b + 1]), k, float(rate))
                for b in range(len(bands))
                for k, rate in enumerate(bands[b])
            ],
        )
        write_csv(
            CURVE,
            ["step", "expert", "win_rate"],
            [
                (int(row[0]), k, rate)
                for row in run.win_rate_curve
                for k, rate in enumerate(row[1:])
            ],
        )
        write_csv(LOSS_CURVE, ["step", "loss"], [(int(s), loss) for s, loss in run.loss_curve])
        metrics = {
            "K": K,
            "steps": emas[0].updates,
            "resumed_at_step": emas[0].resumed_at,
            "train_seconds": seconds,
            "min_win_rate": float(rates.min()),
            **{f"win_rate_expert_{k}": float(r) for k, r in enumerate(rates)},
        }
        write_json(METRICS, metrics)
        tracking.log_metrics(metrics)
        tracking.log_artifact(OUT)
        tracking.log_artifact(BANDS)
        tracking.log_artifact(CURVE)
        tracking.log_artifact(LOSS_CURVE)
    logging.getLogger("train_mcl").info("final win rates %s", rates.round(3).tolist())


if __name__ == "__main__":
    run_stage(main)
