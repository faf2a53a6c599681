"""DVC stage `evaluate`: FID, precision, recall, density and coverage of every strategy's
samples, the baseline's, and real held-out images (the floor), with the same n and the
same reference; Inception FID too when its weights are here. Then the study's three
analyses as figures: trajectories, the gate's choices along time, and the classes each
expert draws. In MLflow: one parent run, and one child run per row to compare."""

import json
import logging
from pathlib import Path

import numpy as np

from mclcore import tracking
from mclcore.analyses import (
    as_seen_by_the_network,
    gate_choice_shares,
    snapshot_levels,
    trajectory,
)
from mclcore.checkpoints import load_denoiser
from mclcore.classifier import extract_features, load_classifier, predict
from mclcore.config import ParamsError, as_flat_dict, load_params
from mclcore.datasets import DataError, as_tensor, load_splits, to_uint8
from mclcore.ensemble import load_ensemble
from mclcore.files import write_csv, write_json, write_text
from mclcore.gating import load_gate
from mclcore.inception import find_weights, inception_features, load_inception
from mclcore.metrics import class_shares, fid, sample_quality
from mclcore.plots import (
    class_names,
    save_class_histograms,
    save_temporal_specialisation,
    save_trajectories,
)
from mclcore.report import results_markdown, with_results
from mclcore.routing import gated_router
from mclcore.runtime import run_stage, select_device
from mclcore.samplers import initial_noise, make_sigmas
from mclcore.strategies import SAMPLE_ITEMS, heuristic_denoiser

CLASSIFIER = "models/classifier.pt"
BASELINE = "models/baseline.pt"
EXPERTS = "models/experts.pt"
GATE = "models/gate.pt"
SAMPLES = [f"samples/{item}.npz" for item in SAMPLE_ITEMS]
METRICS = "metrics/evaluate.json"
TABLE = "metrics/results.md"
README = Path("README.md")  # its results section is TABLE, copied between two markers
CLASSES = "metrics/class_shares.json"
GATE_CHOICES = "metrics/gate_choices.csv"
CLASS_FIGURE = "figures/fig_interclass_diversity.png"
TRAJECTORY_FIGURE = "figures/fig_trajectories.png"
TEMPORAL_FIGURE = "figures/fig_temporal_specialisation.png"
log = logging.getLogger("evaluate")


def is_expert_row(row: str) -> bool:
    """Whether a results row is one expert alone (sample@experts writes expert_0 ...)."""
    return row.startswith("expert_")


def read_samples(sample_cfg) -> dict[str, np.ndarray]:
    """{row: uint8 images} of every sample@ITEM archive, checked against the parameters:
    sample.n_samples images per row, sample.expert_images per expert row."""
    rows = {}
    for path in SAMPLES:
        with np.load(path) as archive:
            rows.update({row: archive[row] for row in archive.files if row != "sigmas"})
    for row, images in rows.items():
        expected = sample_cfg.expert_images if is_expert_row(row) else sample_cfg.n_samples
        if len(images) != expected:
            raise DataError(
                f"{row} holds {len(images)} samples where sample.n_samples and "
                f"sample.class_images ask for {expected}: its archive is stale; run "
                "`dvc repro` so that every strategy is sampled with the current parameters"
            )
    return rows


def inception_fids(weights_param: str, reference: np.ndarray, sample_sets: dict, device):
    """{row: Inception FID} against the same reference images, or {} without weights."""
    weights = find_weights(weights_param)
    if weights is None:
        log.warning(
            "Inception FID skipped: no weights in evaluate.inception_weights, "
            "$MCL_INCEPTION_WEIGHTS or torch's hub cache (see the README); "
            "reporting the classifier-feature metrics only"
        )
        return {}
    log.info("Inception FID with the weights in %s", weights)
    model = load_inception(weights, device)
    real = inception_features(model, reference)
    return {name: fid(real, inception_features(model, x)) for name, x in sample_sets.items()}


def analyses(params, device) -> None:
    """fig_trajectories and fig_temporal_specialisation, from the shared initial noise."""
    cfg, sample_cfg, model_cfg = params.evaluate, params.sample, params.model
    experts, checkpoint = load_ensemble(EXPERTS, device)
    gate = load_gate(GATE, device, k=len(experts))
    baseline, _ = load_denoiser(BASELINE, device)
    sigmas = make_sigmas(
        sample_cfg.grid, sample_cfg.steps, model_cfg.sigma_min, model_cfg.sigma_max, sample_cfg.rho
    )
    noise = initial_noise(sample_cfg.n_samples, float(sigmas[0]), sample_cfg.seed).to(device)

    keep = snapshot_levels(len(sigmas) - 1, cfg.snapshots)
    shown = [float(sigmas[i]) for i in keep]
    heuristic = heuristic_denoiser(
        experts, checkpoint, sample_cfg.heuristic, model_cfg.sigma_min, model_cfg.sigma_max
    )
    routers = {
        "baseline": baseline,
        **{f"expert_{k}": expert for k, expert in enumerate(experts)},
        f"heuristic\n({sample_cfg.heuristic})": heuristic,
        "gated": gated_router(experts, gate),
    }
    start = noise[cfg.trajectory_noise : cfg.trajectory_noise + 1]
    rows = {}
    for label, router in routers.items():
        states = trajectory(router, start, sigmas, sample_cfg.sampler, keep)[:, 0, 0]
        seen = [as_seen_by_the_network(x, s, model_cfg.sigma_data) for x, s in zip(states, shown)]
        rows[label] = to_uint8(np.stack([x.numpy() for x in seen]))
    save_trajectories(rows, shown, TRAJECTORY_FIGURE)

    batch = noise[: cfg.gate_trajectories]
    shares = gate_choice_shares(
        experts, gate, batch, sigmas, sample_cfg.sampler, sample_cfg.batch_size
    )
    levels = sigmas[: len(shares)].tolist()
    write_csv(
        GATE_CHOICES,
        ["level", "sigma", "expert", "share"],
        [(i, s, k, float(p)) for i, s in enumerate(levels) for k, p in enumerate(shares[i])],
    )
    save_temporal_specialisation(
        levels,
        shares,
        checkpoint["band_edges"],
        checkpoint["band_win_rates"],
        TEMPORAL_FIGURE,
        len(batch),
    )
    log.info("gate's choices per level (high noise first): %s", shares.round(2).tolist())


def main() -> None:
    params = load_params()
    cfg = params.evaluate
    if cfg.trajectory_noise >= params.sample.n_samples:
        raise ParamsError(
            f"evaluate.trajectory_noise={cfg.trajectory_noise} is not one of the "
            f"sample.n_samples={params.sample.n_samples} initial noises; use 0 to "
            f"{params.sample.n_samples - 1}"
        )
    device = select_device()
    splits = load_splits("data/raw", params.data.holdout, params.data.split_seed)
    classifier = load_classifier(CLASSIFIER, device)

    def features(images: np.ndarray) -> np.ndarray:
        return extract_features(classifier, as_tensor(images), cfg.batch_size).numpy()

    reference = features(splits.test_images)
    drawn = read_samples(params.sample)
    n = params.sample.n_samples
    sample_sets = {row: images[:n] for row, images in drawn.items()}
    if len(splits.holdout_images) < n:
        raise DataError(
            f"data.holdout={len(splits.holdout_images)} held-out images cannot match the "
            f"{n} samples for the real-data floor; raise data.holdout to at least {n}"
        )
    sample_sets["real_data_floor"] = splits.holdout_images[:n]
    sampling = {}
    for item in SAMPLE_ITEMS:
        sampling.update(json.loads(Path(f"metrics/sample_{item}.json").read_text()))
    rows = {}
    for name, images in sample_sets.items():
        quality = sample_quality(reference, features(images), cfg.k, cfg.seed, cfg.dc_k)
        rows[name] = {"n": len(images), **quality, **sampling.get(name, {})}
        rows[name].pop("n_samples", None)
    for name, value in inception_fids(
        cfg.inception_weights, splits.test_images, sample_sets, device
    ).items():
        rows[name]["inception_fid"] = value
    results = {
        "k": cfg.k,
        "dc_k": cfg.dc_k,
        "reference": "test set",
        "reference_n": len(reference),
        "class_images": params.sample.class_images,
        **rows,
    }

    # Each expert's classes from sample.class_images images (the figure); every other row's
    # from the images it is scored on, the real-data floor's as the classifier's own bias.
    n_classes = classifier.head.out_features
    class_images = params.sample.class_images
    labelled = {
        name: drawn[name][:class_images] if is_expert_row(name) else x
        for name, x in sample_sets.items()
    }
    shares = {
        name: class_shares(predict(classifier, as_tensor(x), cfg.batch_size), n_classes)
        for name, x in labelled.items()
    }

    with tracking.stage_run("evaluate", as_flat_dict(cfg, "evaluate.")):
        write_json(METRICS, results)
        names = class_names(params.data.dataset, n_classes)
        write_json(
            CLASSES, {row: dict(zip(names, s.round(4).tolist())) for row, s in shares.items()}
        )
        experts_alone = {name: s for name, s in shares.items() if is_expert_row(name)}
        save_class_histograms(experts_alone, names, CLASS_FIGURE, class_images)
        analyses(params, device)
        for figure in (CLASS_FIGURE, TRAJECTORY_FIGURE, TEMPORAL_FIGURE, GATE_CHOICES):
            tracking.log_artifact(figure)
        table = results_markdown(rows, params.data.dataset, len(reference), cfg.k, cfg.dc_k)
        write_text(TABLE, table)
        if README.is_file():
            write_text(README, with_results(README.read_text(), table))
        tracking.log_artifact(TABLE)
        tracking.log_metrics(
            {f"{row}.{key}": value for row, values in rows.items() for key, value in values.items()}
        )
        sample_cfg = params.sample
        for name, values in rows.items():
            item = "experts" if is_expert_row(name) else name
            grid = Path(f"figures/samples_{item}.png")
            tracking.child_run(
                name,
                {
                    "strategy": name,
                    "sampler": sample_cfg.sampler,
                    "steps": sample_cfg.steps,
                    "K": params.mcl.K,
                    "n": values["n"],
                },
                values,
                [grid] if grid.is_file() else [],
                {"mcl.strategy": name},
            )
    print(table)
    log.info("results written to %s", TABLE)


if __name__ == "__main__":
    run_stage(main)
