from pathlib import Path

from mclcore import tracking


def test_repo_root_of_a_dvc_temporary_experiment_is_the_parent_repository(tmp_path, monkeypatch):
    monkeypatch.delenv("DVC_ROOT", raising=False)
    work = tmp_path / "project" / ".dvc" / "tmp" / "exps" / "tmpab12cd" / "stages"
    work.mkdir(parents=True)
    assert tracking.repo_root(work) == tmp_path / "project"


def test_repo_root_is_the_nearest_folder_with_dvc(tmp_path, monkeypatch):
    monkeypatch.delenv("DVC_ROOT", raising=False)
    (tmp_path / ".dvc").mkdir()
    (tmp_path / "stages").mkdir()
    assert tracking.repo_root(tmp_path / "stages") == tmp_path


def test_dvc_root_set_by_dvc_wins(tmp_path, monkeypatch):
    monkeypatch.setenv("DVC_ROOT", str(tmp_path))
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    assert tracking.tracking_uri() == f"sqlite:///{tmp_path / 'mlflow.db'}"


def test_environment_overrides_the_tracking_store(monkeypatch):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://127.0.0.1:5000")
    assert tracking.tracking_uri() == "http://127.0.0.1:5000"


def test_a_stage_run_is_logged_with_tags_params_and_metrics(tmp_path, monkeypatch):
    import mlflow

    (tmp_path / ".dvc").mkdir()
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.delenv("DVC_ROOT", raising=False)
    monkeypatch.setenv("DVC_EXP_NAME", "my-exp")
    monkeypatch.setenv("DVC_EXP_BASELINE_REV", "abc1234def")
    Path("params.yaml").write_text("mcl: {K: 3}\n")
    with tracking.stage_run("sample", {"sample.steps": 18}) as active:
        tracking.log_metrics({"fid": 1.5}, step=0)
    run = mlflow.get_run(active.info.run_id)
    assert run.data.tags["mcl.stage"] == "sample"
    assert run.data.tags["mcl.dvc_experiment"] == "my-exp"
    assert run.data.tags["mcl.git_commit"] == "abc1234def"
    assert run.data.params == {"sample.steps": "18"}
    assert run.data.metrics == {"fid": 1.5}
    assert (tmp_path / "mlflow.db").is_file()
    assert run.info.artifact_uri.startswith((tmp_path / "mlartifacts").as_uri())
