"""DVC stage `train_classifier`: the LeNet-5-style classifier used for features and labels."""

import logging
import time

import torch

from mclcore import tracking
from mclcore.classifier import accuracy, save_classifier, train_classifier
from mclcore.config import as_flat_dict, load_params
from mclcore.datasets import as_tensor, load_splits
from mclcore.files import write_json
from mclcore.runtime import run_stage, select_device

OUT = "models/classifier.pt"
METRICS = "metrics/classifier.json"


def main() -> None:
    params = load_params()
    cfg = params.classifier
    splits = load_splits("data/raw", params.data.holdout, params.data.split_seed)
    images, labels = as_tensor(splits.train_images), torch.from_numpy(splits.train_labels)
    test_images, test_labels = as_tensor(splits.test_images), torch.from_numpy(splits.test_labels)

    with tracking.stage_run("train_classifier", as_flat_dict(cfg, "classifier.")):
        start = time.perf_counter()
        model = train_classifier(
            images,
            labels,
            cfg.epochs,
            cfg.batch_size,
            cfg.lr,
            cfg.seed,
            tracking.log_metrics,
            device=select_device(),
        )
        metrics = {
            "test_accuracy": accuracy(model, test_images, test_labels),
            "train_seconds": time.perf_counter() - start,
            "train_images": len(images),
        }
        save_classifier(model, OUT)
        write_json(METRICS, metrics)
        tracking.log_metrics(metrics)
        tracking.log_artifact(OUT)
    logging.getLogger("train_classifier").info("test accuracy %.4f", metrics["test_accuracy"])


if __name__ == "__main__":
    run_stage(main)
