"""DVC stage `evaluate`: FID, precision, recall, density and coverage of every strategy's
samples, the baseline's, and real held-out images (the floor), with the same n and the
same reference. In MLflow: one parent run, and one child run per row to compare."""

import json
import logging
from pathlib import Path

import numpy as np

from mclcore import tracking
from mclcore.classifier import extract_features, load_classifier, predict
from mclcore.config import as_flat_dict, load_params
from mclcore.datasets import DataError, as_tensor, load_splits
from mclcore.plots import class_names, save_class_histograms
from mclcore.files import write_json, write_text
from mclcore.metrics import class_shares, sample_quality
from mclcore.report import results_markdown
from mclcore.runtime import run_stage, select_device
from mclcore.strategies import SAMPLE_ITEMS

CLASSIFIER = "models/classifier.pt"
SAMPLES = [f"samples/{item}.npz" for item in SAMPLE_ITEMS]
METRICS = "metrics/evaluate.json"
TABLE = "metrics/results.md"
CLASSES = "metrics/class_shares.json"
CLASS_FIGURE = "figures/fig_interclass_diversity.png"


def main() -> None:
    params = load_params()
    cfg = params.evaluate
    splits = load_splits("data/raw", params.data.holdout, params.data.split_seed)
    classifier = load_classifier(CLASSIFIER, select_device())

    def features(images: np.ndarray) -> np.ndarray:
        return extract_features(classifier, as_tensor(images), cfg.batch_size).numpy()

    reference = features(splits.test_images)
    sample_sets = {}
    for path in SAMPLES:
        with np.load(path) as archive:
            sample_sets.update({row: archive[row] for row in archive.files if row != "sigmas"})
    sizes = {len(images) for images in sample_sets.values()}
    if len(sizes) != 1:
        raise DataError(
            f"the sample sets differ in size ({sorted(sizes)}): some are stale; "
            "run `dvc repro` so that every strategy is sampled with the same sample.n_samples"
        )
    n = sizes.pop()
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
    results = {
        "k": cfg.k,
        "dc_k": cfg.dc_k,
        "reference": "test set",
        "reference_n": len(reference),
        **rows,
    }

    n_classes = classifier.head.out_features
    shares = {
        name: class_shares(predict(classifier, as_tensor(images), cfg.batch_size), n_classes)
        for name, images in sample_sets.items()
        if name.startswith("expert_")
    }

    with tracking.stage_run("evaluate", as_flat_dict(cfg, "evaluate.")):
        write_json(METRICS, results)
        names = class_names(params.data.dataset, n_classes)
        write_json(
            CLASSES, {row: dict(zip(names, s.round(4).tolist())) for row, s in shares.items()}
        )
        save_class_histograms(shares, names, CLASS_FIGURE)
        tracking.log_artifact(CLASS_FIGURE)
        table = results_markdown(rows, params.data.dataset, len(reference), cfg.k, cfg.dc_k)
        write_text(TABLE, table)
        tracking.log_artifact(TABLE)
        tracking.log_metrics(
            {f"{row}.{key}": value for row, values in rows.items() for key, value in values.items()}
        )
        sample_cfg = params.sample
        for name, values in rows.items():
            item = "experts" if name.startswith("expert_") else name
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
    logging.getLogger("evaluate").info("results written to %s", TABLE)


if __name__ == "__main__":
    run_stage(main)
