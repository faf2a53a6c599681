"""DVC stage `train_gating`: the gate that predicts, from (x_t, sigma), the winning expert."""

import dataclasses
import logging
import time

import torch

from mclcore import tracking
from mclcore.config import as_flat_dict, load_params
from mclcore.datasets import DataError, as_tensor, load_splits
from mclcore.ensemble import load_ensemble
from mclcore.files import write_json
from mclcore.gating import (
    GateNet,
    gate_accuracy,
    label_winners,
    per_sigma_majority_accuracy,
    save_gate,
    train_gate,
)
from mclcore.runtime import run_stage, select_device

EXPERTS = "models/experts.pt"
OUT = "models/gate.pt"
METRICS = "metrics/train_gating.json"


def main() -> None:
    params = load_params()
    cfg, model_cfg, mcl = params.train_gating, params.model, params.train_mcl
    splits = load_splits("data/raw", params.data.holdout, params.data.split_seed)
    if len(splits.holdout_images) < cfg.val_images:
        raise DataError(
            f"train_gating.val_images={cfg.val_images} exceeds the {len(splits.holdout_images)} "
            "held-out images; lower it or raise data.holdout"
        )
    device = select_device()
    experts, checkpoint = load_ensemble(EXPERTS, device)
    K = len(experts)

    def labelled(images, seed):
        return label_winners(
            experts,
            as_tensor(images),
            cfg.draws,
            mcl.sigma_sampling,
            model_cfg.sigma_min,
            model_cfg.sigma_max,
            seed,
        )

    with tracking.stage_run("train_gating", {"mcl.K": K, **as_flat_dict(cfg, "train_gating.")}):
        start = time.perf_counter()
        train = labelled(splits.train_images[: cfg.images], cfg.seed)
        val = labelled(splits.holdout_images[: cfg.val_images], cfg.seed + 1)
        torch.manual_seed(cfg.seed)
        gate = GateNet(K, cfg.width, cfg.emb_dim, model_cfg.sigma_data)
        gate = train_gate(
            gate,
            train,
            cfg.epochs,
            cfg.batch_size,
            cfg.lr,
            cfg.seed,
            device,
            tracking.log_metrics,
        )
        edges = torch.tensor(checkpoint["band_edges"]).numpy()
        metrics = {
            "K": K,
            "val_accuracy": gate_accuracy(gate, val),
            "chance_accuracy": 1.0 / K,
            "per_sigma_majority_accuracy": per_sigma_majority_accuracy(train, val, edges, K),
            "train_examples": len(train.x),
            "val_examples": len(val.x),
            "train_seconds": time.perf_counter() - start,
        }
        save_gate(gate, dataclasses.asdict(cfg), OUT)
        write_json(METRICS, metrics)
        tracking.log_metrics(metrics)
        tracking.log_artifact(OUT)
    logging.getLogger("train_gating").info(
        "gate accuracy %.3f (chance %.3f, per-sigma majority %.3f)",
        metrics["val_accuracy"],
        metrics["chance_accuracy"],
        metrics["per_sigma_majority_accuracy"],
    )


if __name__ == "__main__":
    run_stage(main)
