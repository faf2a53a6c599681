"""Compare the two preconditionings of the score network on an equal training budget.

For each of `edm` and `ve`, trains the network of params.yaml's `model` section for the
same number of steps, then reports the held-out denoising error at fixed noise levels and
the FID / precision / recall of Heun samples in the classifier's feature space. This is
the measurement behind the default `model.precond`. Run from the repository root after
`dvc repro train_classifier`:

    python benchmarks/compare_preconditioning.py --steps 450 --samples 500 --out result.json
"""

import argparse
import dataclasses
import logging
import time

import torch

from mclcore.files import emit_json
from mclcore.classifier import extract_features, load_classifier
from mclcore.config import load_params
from mclcore.datasets import as_tensor, load_splits
from mclcore.diffusion import build_denoiser
from mclcore.generation import generate
from mclcore.metrics import quality_metrics
from mclcore.samplers import make_sigmas
from mclcore.training import denoising_error_by_sigma, train_config, train_denoiser

PROBE_SIGMAS = (0.02, 0.1, 0.5, 1.0, 2.0, 5.0, 20.0, 80.0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=450)
    parser.add_argument("--samples", type=int, default=500)
    parser.add_argument("--data", default="data/raw")
    parser.add_argument("--classifier", default="models/classifier.pt")
    parser.add_argument("--out", default="-")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO)

    params = load_params()
    splits = load_splits(args.data, params.data.holdout, params.data.split_seed)
    images = as_tensor(splits.train_images)
    classifier = load_classifier(args.classifier)
    reference = extract_features(classifier, as_tensor(splits.test_images)).numpy()
    probe = as_tensor(splits.holdout_images[:500])
    train = dataclasses.replace(params.train_baseline, max_steps=args.steps)
    sample = params.sample

    results = {}
    for precond in ("edm", "ve"):
        model = dataclasses.replace(params.model, precond=precond)
        torch.manual_seed(train.seed)
        denoiser = build_denoiser(
            model.channels, model.emb_dim, model.groups, precond, model.sigma_data
        )
        start = time.perf_counter()
        ema = train_denoiser(denoiser, images, train_config(train, model), torch.device("cpu"))
        seconds = time.perf_counter() - start
        sigmas = make_sigmas(
            sample.grid, sample.steps, model.sigma_min, model.sigma_max, sample.rho
        )
        fake = generate(ema.module, args.samples, sigmas, sample.sampler, sample.seed, 500)
        features = extract_features(classifier, as_tensor(fake)).numpy()
        results[precond] = {
            "train_seconds": seconds,
            "steps": args.steps,
            "heldout_mse": denoising_error_by_sigma(ema.module, probe, PROBE_SIGMAS),
            **quality_metrics(reference, features, 3),
        }
        logging.info("%s: %s", precond, results[precond])
    emit_json(results, args.out)


if __name__ == "__main__":
    main()
