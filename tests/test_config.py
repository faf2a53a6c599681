import pytest
import yaml

from conftest import REPO
from mclcore.config import Params, ParamsError, load_params, params_from_dict


def test_repository_params_yaml_loads_with_the_documented_defaults():
    params = load_params(REPO / "params.yaml")
    assert params.data.dataset == "mnist"
    assert params.model.sigma_min == 0.01 and params.model.sigma_max == 80.0
    assert params.model.channels == [32, 64, 128] and params.mcl.K == 5
    assert params.train_baseline.ema_decay == 0.999


def test_repository_params_yaml_sets_every_field():
    # A field missing from params.yaml would silently take its code default.
    raw = yaml.safe_load((REPO / "params.yaml").read_text())
    for section, values in Params().__dict__.items():
        assert set(raw[section]) == set(values.__dict__), section


@pytest.mark.parametrize(
    "raw, message",
    [
        ({"mcl": {"K": 0}}, r"mcl\.K must be >= 1"),
        ({"model": {"sigma_min": 80.0, "sigma_max": 1.0}}, r"model\.sigma_min must be smaller"),
        ({"train_baseline": {"epoch": 3}}, r"unknown key train_baseline\.epoch; known keys"),
        (
            {"sample": {"sampler": "rk4"}},
            r"sample\.sampler is 'rk4'; choose one of 'euler', 'heun'",
        ),
        ({"sample": {"steps": "18"}}, r"sample\.steps must be a whole number"),
        ({"train_baseline": {"lr": "fast"}}, r"train_baseline\.lr must be a number"),
        ({"model": {"channels": [32, 64]}}, r"model\.channels must list 3 widths"),
        ({"model": {"channels": [30, 64, 128]}}, r"model\.channels every width must be divisible"),
        ({"data": {"dataset": "idx_folder"}}, r"data\.idx_folder is empty"),
        ({"sampling": {}}, r"unknown section sampling"),
        ({"train_baseline": {"ema_decay": 1.0}}, r"train_baseline\.ema_decay must be in"),
    ],
)
def test_bad_parameters_stop_with_a_message_naming_the_key(raw, message):
    with pytest.raises(ParamsError, match=message):
        params_from_dict(raw)


def test_integers_are_accepted_for_floats_but_booleans_are_not_numbers():
    assert params_from_dict({"model": {"sigma_max": 50}}).model.sigma_max == 50.0
    with pytest.raises(ParamsError, match="sample.steps"):
        params_from_dict({"sample": {"steps": True}})


def test_missing_params_file_says_where_to_run(tmp_path):
    with pytest.raises(ParamsError, match="repository root"):
        load_params(tmp_path / "params.yaml")
