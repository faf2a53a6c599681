"""MLflow tracking: where runs are stored and the tags that group one pipeline's runs.

The default store is `mlflow.db` (SQLite) at the repository root, with artifacts in
`mlartifacts/` beside it. Inside `dvc exp run --temp` or a queued experiment, DVC runs
the stages in a copy under `.dvc/tmp/exps/`; the store is still the one at the root of
the repository that copy was made from. `MLFLOW_TRACKING_URI` overrides all of this.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import subprocess
import time
from pathlib import Path

EXPERIMENT_ENV = "MLFLOW_EXPERIMENT_NAME"
DEFAULT_EXPERIMENT = "mcl-diffusion"


def repo_root(start: str | Path | None = None) -> Path:
    """The repository root for `start` (default: the working directory).

    Without `start`, DVC's own `DVC_ROOT` wins where DVC sets it (every stage it runs;
    in an experiment it names the parent repository). A path inside
    `<root>/.dvc/tmp/exps/...` (a DVC temporary experiment) maps to `<root>`.
    Otherwise the nearest folder above holding `.dvc/`, else `start` itself.
    """
    if start is None and os.environ.get("DVC_ROOT", "").strip():
        return Path(os.environ["DVC_ROOT"]).resolve()
    start = Path(start or os.getcwd()).resolve()
    parts = start.parts
    for i in range(1, len(parts) - 2):
        if parts[i : i + 3] == (".dvc", "tmp", "exps"):
            return Path(*parts[:i])
    for folder in (start, *start.parents):
        if (folder / ".dvc").is_dir():
            return folder
    return start


def tracking_uri(start: str | Path | None = None) -> str:
    """`MLFLOW_TRACKING_URI` if set, else the SQLite file at the repository root."""
    explicit = os.environ.get("MLFLOW_TRACKING_URI", "").strip()
    if explicit:
        return explicit
    return f"sqlite:///{repo_root(start) / 'mlflow.db'}"


def git_commit(start: str | Path | None = None) -> str:
    """The commit the run was made from (DVC's baseline commit inside an experiment)."""
    baseline = os.environ.get("DVC_EXP_BASELINE_REV", "").strip()
    if baseline:
        return baseline
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            cwd=start or os.getcwd(),
            capture_output=True,
            text=True,
            timeout=10,
        )
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"
    return out.stdout.strip() if out.returncode == 0 else "unknown"


def params_digest(params_path: str | Path = "params.yaml") -> str:
    """A short digest of params.yaml: runs of one configuration share it."""
    path = Path(params_path)
    return hashlib.sha256(path.read_bytes()).hexdigest()[:12] if path.is_file() else "none"


def run_tags(stage: str, params_path: str | Path = "params.yaml") -> dict[str, str]:
    """Tags shared by every run of one `dvc repro` or `dvc exp run`, plus the stage's name."""
    commit = git_commit()
    digest = params_digest(params_path)
    experiment = os.environ.get("DVC_EXP_NAME", "").strip() or "workspace"
    return {
        "mcl.stage": stage,
        "mcl.dvc_experiment": experiment,
        "mcl.git_commit": commit,
        "mcl.params_digest": digest,
        "mcl.pipeline": f"{experiment}-{commit[:8]}-{digest}",
    }


def _quiet_mlflow() -> None:
    # No usage telemetry leaves the machine, and no network is needed to log locally.
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    os.environ.setdefault("DO_NOT_TRACK", "true")


@contextlib.contextmanager
def stage_run(stage: str, params: dict | None = None, run_name: str | None = None):
    """Start an MLflow run for one DVC stage, tagged and with its parameters logged."""
    _quiet_mlflow()
    import mlflow

    mlflow.set_tracking_uri(tracking_uri())
    name = os.environ.get(EXPERIMENT_ENV, "").strip() or DEFAULT_EXPERIMENT
    if mlflow.get_experiment_by_name(name) is None and tracking_uri().startswith("sqlite:"):
        mlflow.create_experiment(name, artifact_location=(repo_root() / "mlartifacts").as_uri())
    mlflow.set_experiment(name)
    with mlflow.start_run(run_name=run_name or stage, tags=run_tags(stage)) as run:
        if params:
            mlflow.log_params({k: str(v)[:500] for k, v in params.items()})
        try:
            yield run
        finally:
            flush_metrics()


def child_run(name: str, params: dict, metrics: dict, artifacts=(), tags: dict | None = None):
    """A nested run under the active one, with its params, metrics and artifacts: the
    MLflow UI lists it under its parent, and selecting several shows Compare."""
    import mlflow

    parent = mlflow.MlflowClient().get_run(mlflow.active_run().info.run_id)
    inherited = {k: v for k, v in parent.data.tags.items() if k.startswith("mcl.")}
    inherited.pop("mcl.stage", None)
    with mlflow.start_run(run_name=name, nested=True, tags={**inherited, **(tags or {})}):
        mlflow.log_params({k: str(v)[:500] for k, v in params.items()})
        mlflow.log_metrics({k: float(v) for k, v in metrics.items()})
        for path in artifacts:
            mlflow.log_artifact(str(path))


# Metrics wait here and go to the store in batches: one SQLite transaction per training
# step would cost more than the step on a small model.
_pending_metrics: list = []
_FLUSH_EVERY = 200


def log_metrics(metrics: dict, step: int | None = None) -> None:
    """Queue numeric metrics for the active MLflow run; sent in batches and at run end."""
    from mlflow.entities import Metric

    timestamp = int(time.time() * 1000)
    _pending_metrics.extend(
        Metric(key, float(value), timestamp, step or 0) for key, value in metrics.items()
    )
    if len(_pending_metrics) >= _FLUSH_EVERY:
        flush_metrics()


def flush_metrics() -> None:
    """Send the queued metrics to the active MLflow run."""
    import mlflow

    run = mlflow.active_run()
    if run is None or not _pending_metrics:
        return
    mlflow.MlflowClient().log_batch(run.info.run_id, metrics=list(_pending_metrics))
    _pending_metrics.clear()


def log_artifact(path: str | Path) -> None:
    """Copy a file into the active MLflow run's artifacts."""
    import mlflow

    mlflow.log_artifact(str(path))
