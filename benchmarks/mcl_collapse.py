"""Measure expert collapse: final win rates of one MCL configuration on the pipeline's data.

Trains K experts with the `train_mcl` settings of params.yaml, overridden by KEY=VALUE
arguments (keys of the `train_mcl` section, K, or SECTION.KEY of any section), and writes the final win rates overall
and per noise band. Run from the repository root after `dvc repro download`:

    python benchmarks/mcl_collapse.py assignment=image batch_size=16 --out result.json
    python benchmarks/mcl_collapse.py rule=relaxed "model.channels=[16,32,64]"
"""

import argparse
import dataclasses
import time

import torch
import yaml

from mclcore.files import emit_json
from mclcore.config import params_from_dict
from mclcore.datasets import as_tensor, load_splits
from mclcore.diffusion import build_denoiser
from mclcore.mcl_training import MCLConfig, train_mcl


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("overrides", nargs="*", help="train_mcl KEY=VALUE (or K=5)")
    parser.add_argument("--out", default="-")
    args = parser.parse_args()

    raw = yaml.safe_load(open("params.yaml"))
    for item in args.overrides:
        key, value = item.split("=", 1)
        section, _, key = key.rpartition(".")
        section = section or ("mcl" if key == "K" else "train_mcl")
        raw[section][key] = yaml.safe_load(value)
    params = params_from_dict(raw)
    model, mcl = params.model, params.train_mcl
    splits = load_splits("data/raw", params.data.holdout, params.data.split_seed)
    fields = {f.name for f in dataclasses.fields(MCLConfig)}
    cfg = MCLConfig(
        sigma_min=model.sigma_min,
        sigma_max=model.sigma_max,
        **{k: v for k, v in dataclasses.asdict(mcl).items() if k in fields},
    )
    torch.manual_seed(mcl.seed)
    experts = [
        build_denoiser(model.channels, model.emb_dim, model.groups, model.precond, model.sigma_data)
        for _ in range(params.mcl.K)
    ]
    start = time.perf_counter()
    run = train_mcl(experts, as_tensor(splits.train_images), cfg, torch.device("cpu"))
    wins = run.final_wins
    result = {
        "overrides": args.overrides,
        "model": dataclasses.asdict(model),
        "train_mcl": dataclasses.asdict(mcl),
        "K": params.mcl.K,
        "seconds": time.perf_counter() - start,
        "final_win_rates": wins.rates().round(4).tolist(),
        "band_edges": wins.edges.round(4).tolist(),
        "final_band_win_rates": wins.band_rates().round(4).tolist(),
        "win_rate_curve": run.win_rate_curve.round(4).tolist(),
    }
    emit_json(result, args.out)


if __name__ == "__main__":
    main()
