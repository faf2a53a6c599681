"""The real `dvc repro` of the whole pipeline in a temporary copy of the repository."""

import json
import os
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

from conftest import REPO, write_idx_folder
from mclcore.classifier import load_classifier, predict
from mclcore.datasets import as_tensor
from mclcore.metrics import class_shares
from mclcore.strategies import SAMPLE_ITEMS

SAMPLE_STAGES = [f"sample@{item}" for item in SAMPLE_ITEMS]
ROWS = ["baseline", "expert_0", "expert_1", "heuristic", "gated", "mixture", "pooled_ensemble"]

pytestmark = pytest.mark.e2e

TINY_PARAMS = {
    "data": {"dataset": "idx_folder", "holdout": 200},
    "classifier": {"epochs": 1, "batch_size": 64},
    "model": {"channels": [8, 16, 16], "emb_dim": 32, "groups": 4},
    "train_baseline": {"max_steps": 12, "batch_size": 32, "log_every": 1, "checkpoint_every": 5},
    "sample": {"n_samples": 200, "class_images": 300, "steps": 3, "batch_size": 100},
    "mcl": {"K": 2},
    "train_mcl": {"max_steps": 8, "batch_size": 32},
    "train_gating": {"images": 100, "val_images": 50, "draws": 1, "epochs": 1, "width": 8},
}


def run(cmd, cwd, env, check=True):
    result = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=900)
    if check and result.returncode != 0:
        raise AssertionError(f"{cmd} failed:\n{result.stdout}\n{result.stderr}")
    return result


@pytest.fixture(scope="module")
def pipeline_repo(tmp_path_factory):
    """A copy of the committed project, with tiny parameters, after one `dvc repro`."""
    root = tmp_path_factory.mktemp("e2e")
    repo = root / "repo"
    files = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard"],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    for name in files:
        source = REPO / name
        if (
            source.is_file()
            and not name.startswith(("metrics/", "figures/"))
            and name != "dvc.lock"
        ):
            (repo / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, repo / name)
    params = yaml.safe_load((repo / "params.yaml").read_text())
    for section, values in TINY_PARAMS.items():
        params[section].update(values)
    params["data"]["idx_folder"] = str(write_idx_folder(root / "idx", 1200, 500))
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))

    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "DVC_"))}
    env.update(
        PATH=f"{Path(sys.executable).parent}:{env['PATH']}",
        GIT_AUTHOR_NAME="t",
        GIT_AUTHOR_EMAIL="t@t",
        GIT_COMMITTER_NAME="t",
        GIT_COMMITTER_EMAIL="t@t",
    )
    env.pop("MCL_DATA_MIRROR", None)
    run(["git", "init", "-q"], repo, env)
    run(["git", "add", "-A"], repo, env)
    run(["git", "commit", "-qm", "copy"], repo, env)
    result = run([sys.executable, "-m", "dvc", "repro"], repo, env)
    # As a user would: commit dvc.lock and the small outputs that git tracks.
    run(["git", "add", "-A"], repo, env)
    run(["git", "commit", "-qm", "results"], repo, env)
    return repo, env, result


def test_every_stage_ran_and_dvc_is_up_to_date(pipeline_repo):
    repo, env, result = pipeline_repo
    stages = ("download", "train_classifier", "train_baseline", "train_mcl", "train_gating")
    for stage in (*stages, *SAMPLE_STAGES, "evaluate"):
        assert f"Running stage '{stage}'" in result.stdout
    status = run([sys.executable, "-m", "dvc", "status"], repo, env)
    assert "up to date" in status.stdout


def test_outputs_exist_with_the_right_shapes(pipeline_repo):
    repo, _, _ = pipeline_repo
    assert sorted(p.name for p in (repo / "data/raw").iterdir())[-1] == "train-labels-idx1-ubyte"
    rows = {}
    for item in SAMPLE_ITEMS:
        with np.load(repo / f"samples/{item}.npz") as archive:
            rows.update({name: archive[name] for name in archive.files if name != "sigmas"})
        assert (repo / f"figures/samples_{item}.png").read_bytes()[:4] == b"\x89PNG"
    assert list(rows) == ROWS
    assert all(
        images.shape == (300 if name.startswith("expert_") else 200, 28, 28)
        and images.dtype == np.uint8
        for name, images in rows.items()
    )
    # The pool is expert 0 on the first half of the shared noise and expert 1 on the rest.
    pooled = rows["pooled_ensemble"]
    assert np.abs(pooled[:100].astype(int) - rows["expert_0"][:100]).max() <= 1
    assert np.abs(pooled[100:].astype(int) - rows["expert_1"][100:200]).max() <= 1
    for model in (
        "models/classifier.pt",
        "models/baseline.pt",
        "models/experts.pt",
        "models/gate.pt",
    ):
        assert (repo / model).stat().st_size > 1000
    assert not (repo / "runs/resume/train_baseline.pt").exists()
    assert not (repo / "runs/resume/train_mcl.pt").exists()
    for figure in ("interclass_diversity", "trajectories", "temporal_specialisation"):
        assert (repo / f"figures/fig_{figure}.png").read_bytes()[:4] == b"\x89PNG"
    choices = (repo / "metrics/gate_choices.csv").read_text().splitlines()
    assert choices[0] == "level,sigma,expert,share" and len(choices) == 1 + 3 * 2  # 3 levels
    shares = json.loads((repo / "metrics/class_shares.json").read_text())
    assert sorted(shares) == sorted([*ROWS, "real_data_floor"])
    # Each expert's histogram classifies sample.class_images = 300 images, every other row
    # the 200 it is scored on ...
    classifier = load_classifier(repo / "models/classifier.pt", "cpu")
    for row, archive, size in (
        ("expert_0", "experts", 300),
        ("expert_1", "experts", 300),
        ("gated", "gated", 200),
    ):
        with np.load(repo / f"samples/{archive}.npz") as images:
            assert len(images[row]) == size
            labels = predict(classifier, as_tensor(images[row]), 100)
        expected = class_shares(labels, classifier.head.out_features)
        got = [shares[row][str(c)] for c in range(len(expected))]  # idx_folder's class names
        assert got == pytest.approx(expected.tolist(), abs=1e-4)
    assert all(sum(row.values()) == pytest.approx(1.0, abs=1e-3) for row in shares.values())


def test_metric_files_hold_the_measured_numbers(pipeline_repo):
    repo, env, _ = pipeline_repo
    classifier = json.loads((repo / "metrics/classifier.json").read_text())
    assert 0.1 < classifier["test_accuracy"] <= 1.0
    train = json.loads((repo / "metrics/train_baseline.json").read_text())
    assert train["steps"] == 12 and train["parameters"] > 0
    for item in SAMPLE_ITEMS:
        sample = json.loads((repo / f"metrics/sample_{item}.json").read_text())
        for row, values in sample.items():
            assert values["nfe_per_image"] == (10 if row == "mixture" else 5)  # 3 Heun levels
            assert values["n_samples"] == 200 and values["sample_seconds"] > 0
    mcl = json.loads((repo / "metrics/train_mcl.json").read_text())
    assert mcl["K"] == 2 and mcl["steps"] == 8
    assert mcl["win_rate_expert_0"] + mcl["win_rate_expert_1"] == pytest.approx(1.0)
    curve = (repo / "metrics/win_rate_curve.csv").read_text().splitlines()
    assert curve[0] == "step,expert,win_rate" and curve[-1].startswith("8,1,")
    bands = (repo / "metrics/win_rates_by_sigma.csv").read_text().splitlines()
    assert bands[0] == "band,sigma_low,sigma_high,expert,win_rate" and len(bands) == 1 + 8 * 2
    for stage, steps in (("baseline", 12), ("mcl", 8)):
        losses = (repo / f"metrics/loss_{stage}.csv").read_text().splitlines()
        assert losses[0] == "step,loss" and len(losses) == 1 + steps
    gating = json.loads((repo / "metrics/train_gating.json").read_text())
    assert gating["chance_accuracy"] == 0.5 and gating["val_examples"] == 50
    assert 0.0 <= gating["val_accuracy"] <= 1.0
    evaluation = json.loads((repo / "metrics/evaluate.json").read_text())
    scores = {"n", "fid", "precision", "recall", "density", "coverage"}
    for row in (*ROWS, "real_data_floor"):
        sampled = {"nfe_per_image", "sample_seconds"} if row != "real_data_floor" else set()
        assert set(evaluation[row]) == scores | sampled
        assert evaluation[row]["n"] == 200  # ... and the table's first 200 of them
    assert evaluation["class_images"] == 300
    # Real held-out images are closer to the test set than 12 steps of training can get.
    assert evaluation["real_data_floor"]["fid"] < evaluation["baseline"]["fid"]
    shown = run([sys.executable, "-m", "dvc", "metrics", "show", "--json"], repo, env).stdout
    assert "real_data_floor" in shown and "test_accuracy" in shown


def test_dvc_plots_draws_the_training_curves_of_every_expert(pipeline_repo):
    repo, env, _ = pipeline_repo
    shown = json.loads(
        run([sys.executable, "-m", "dvc", "plots", "show", "--json"], repo, env).stdout
    )
    assert not shown.get("errors")
    plots = shown["data"]
    assert set(plots) == {
        "training_loss",
        "metrics/win_rate_curve.csv",
        "metrics/win_rates_by_sigma.csv",
    }
    (loss,) = plots["training_loss"]
    files = {point["filename"] for point in loss["content"]["data"]["values"]}
    assert files == {"loss_baseline.csv", "loss_mcl.csv"}
    (curve,) = plots["metrics/win_rate_curve.csv"]
    assert curve["content"]["encoding"]["color"]["field"] == "expert"
    assert {point["expert"] for point in curve["content"]["data"]["values"]} == {"0", "1"}


def test_mlflow_runs_share_their_pipeline_tags_in_the_repo_sqlite_store(pipeline_repo):
    repo, _, _ = pipeline_repo
    with sqlite3.connect(repo / "mlflow.db") as db:
        runs = db.execute("SELECT run_uuid, status, artifact_uri FROM runs").fetchall()
        tags = db.execute("SELECT run_uuid, key, value FROM tags").fetchall()
        metric_keys = {k for (k,) in db.execute("SELECT DISTINCT key FROM metrics")}
    assert all(status == "FINISHED" for _, status, _ in runs)
    every_run = {}
    for run_id, key, value in tags:
        every_run.setdefault(run_id, {})[key] = value
    by_run = {run: t for run, t in every_run.items() if "mcl.stage" in t}
    children = {run: t for run, t in every_run.items() if "mcl.strategy" in t}
    assert len(by_run) == 12 and len(children) == 8 and len(runs) == 20
    # evaluate's children: one per row, under the evaluate run, to compare in the UI.
    (evaluate_run,) = [run for run, t in by_run.items() if t["mcl.stage"] == "evaluate"]
    assert sorted(t["mcl.strategy"] for t in children.values()) == sorted(
        [*ROWS, "real_data_floor"]
    )
    assert all(t["mlflow.parentRunId"] == evaluate_run for t in children.values())
    stages = sorted(t["mcl.stage"] for t in by_run.values())
    assert stages == sorted(
        ["download", "evaluate", *SAMPLE_STAGES]
        + ["train_baseline", "train_classifier", "train_gating", "train_mcl"]
    )
    assert len({t["mcl.pipeline"] for t in by_run.values()}) == 1
    assert len({t["mcl.git_commit"] for t in by_run.values()}) == 1
    assert {"train_loss", "epoch_loss", "test_accuracy", "baseline.fid"} <= metric_keys
    with sqlite3.connect(repo / "mlflow.db") as db:
        loss_steps = [
            step
            for (step,) in db.execute(
                "SELECT m.step FROM metrics m JOIN tags t ON m.run_uuid = t.run_uuid "
                "WHERE m.key = 'train_loss' AND t.key = 'mcl.stage' AND t.value = 'train_baseline'"
            )
        ]
        params = {k for (k,) in db.execute("SELECT DISTINCT key FROM params")}
    assert sorted(loss_steps) == list(range(1, 13))  # every training step
    assert {"data.dataset", "train.lr", "model.precond", "sample.sampler", "evaluate.k"} <= params
    artifacts = {}
    for run_id, _, artifact_uri in runs:
        assert artifact_uri.startswith((repo / "mlartifacts").as_uri())
        if run_id in children:
            continue
        folder = Path(artifact_uri.removeprefix("file://"))
        artifacts[by_run[run_id]["mcl.stage"]] = sorted(p.name for p in folder.iterdir())
    assert artifacts["download"] == ["manifest.json"]
    assert artifacts["train_classifier"] == ["classifier.pt"]
    assert artifacts["train_baseline"] == ["baseline.pt"]
    for item in SAMPLE_ITEMS:
        assert artifacts[f"sample@{item}"] == [f"{item}.npz", f"samples_{item}.png"]
    assert artifacts["evaluate"] == [
        "fig_interclass_diversity.png",
        "fig_temporal_specialisation.png",
        "fig_trajectories.png",
        "gate_choices.csv",
        "results.md",
    ]
    assert artifacts["train_mcl"] == [
        "experts.pt",
        "loss_mcl.csv",
        "win_rate_curve.csv",
        "win_rates_by_sigma.csv",
    ]
    assert artifacts["train_gating"] == ["gate.pt"]
    with sqlite3.connect(repo / "mlflow.db") as db:
        gated = db.execute(
            "SELECT m.key, m.value FROM metrics m JOIN tags t ON m.run_uuid = t.run_uuid "
            "WHERE t.key = 'mcl.strategy' AND t.value = 'gated'"
        ).fetchall()
    assert {"fid", "precision", "recall", "density", "coverage", "nfe_per_image"} <= {
        key for key, _ in gated
    }


def test_a_temporary_experiment_logs_to_the_parent_repository_store(pipeline_repo):
    repo, env, _ = pipeline_repo
    run([sys.executable, "-m", "dvc", "exp", "run", "--temp", "-S", "evaluate.k=2"], repo, env)
    with sqlite3.connect(repo / "mlflow.db") as db:
        rows = db.execute(
            "SELECT e.value, s.value FROM tags e JOIN tags s ON e.run_uuid = s.run_uuid "
            "WHERE e.key = 'mcl.dvc_experiment' AND s.key = 'mcl.stage'"
        ).fetchall()
    # Only evaluate depends on evaluate.k: one new run, tagged with the experiment's name.
    assert len(rows) == 13
    assert [stage for experiment, stage in rows if experiment != "workspace"] == ["evaluate"]


def test_a_bad_parameter_stops_the_pipeline_with_a_message_naming_it(pipeline_repo):
    repo, env, _ = pipeline_repo
    params = yaml.safe_load((repo / "params.yaml").read_text())
    params["mcl"]["K"] = 0
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    try:
        result = run(
            [sys.executable, "-m", "dvc", "repro", "-f", "download"], repo, env, check=False
        )
    finally:
        run(["git", "checkout", "params.yaml"], repo, env)
    assert result.returncode != 0
    assert "mcl.K must be >= 1" in result.stdout + result.stderr
    assert "Traceback" not in result.stdout + result.stderr
