"""DVC stage `evaluate`: FID, precision and recall of the samples and of real held-out images."""

import logging

import numpy as np

from mclcore import tracking
from mclcore.classifier import extract_features, load_classifier
from mclcore.config import as_flat_dict, load_params
from mclcore.datasets import DataError, as_tensor, load_splits
from mclcore.files import write_json
from mclcore.metrics import quality_metrics
from mclcore.runtime import run_stage

CLASSIFIER = "models/classifier.pt"
SAMPLES = {"baseline": "samples/baseline.npz"}
METRICS = "metrics/evaluate.json"


def main() -> None:
    params = load_params()
    cfg = params.evaluate
    splits = load_splits("data/raw", params.data.holdout, params.data.split_seed)
    classifier = load_classifier(CLASSIFIER)

    def features(images: np.ndarray) -> np.ndarray:
        return extract_features(classifier, as_tensor(images), cfg.batch_size).numpy()

    reference = features(splits.test_images)
    rows = {}
    for name, path in SAMPLES.items():
        with np.load(path) as archive:
            images = archive["images"]
        rows[name] = {"n": len(images), **quality_metrics(reference, features(images), cfg.k)}
    n = rows["baseline"]["n"]
    if len(splits.holdout_images) < n:
        raise DataError(
            f"data.holdout={len(splits.holdout_images)} held-out images cannot match the "
            f"{n} samples for the real-data floor; raise data.holdout to at least {n}"
        )
    floor = quality_metrics(reference, features(splits.holdout_images[:n]), cfg.k)
    rows["real_data_floor"] = {"n": n, **floor}
    results = {"k": cfg.k, "reference": "test set", "reference_n": len(reference), **rows}

    with tracking.stage_run("evaluate", as_flat_dict(cfg, "evaluate.")):
        write_json(METRICS, results)
        tracking.log_metrics(
            {f"{row}.{key}": value for row, values in rows.items() for key, value in values.items()}
        )
    log = logging.getLogger("evaluate")
    for row, values in rows.items():
        log.info("%-16s FID %8.3f  precision %.3f  recall %.3f", row, values["fid"],
                 values["precision"], values["recall"])


if __name__ == "__main__":
    run_stage(main)
