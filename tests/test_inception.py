"""The Inception FID path, run here without the real weights: the architecture with
random weights in a file of the right shape stands in for them."""

import logging

import numpy as np
import pytest
import torch
import torchvision

from mclcore import inception
from mclcore.metrics import fid


@pytest.fixture
def empty_hub(tmp_path, monkeypatch):
    monkeypatch.delenv(inception.ENV_VAR, raising=False)
    previous = torch.hub.get_dir()
    torch.hub.set_dir(tmp_path / "hub")
    yield tmp_path / "hub"
    torch.hub.set_dir(previous)


@pytest.fixture(scope="module")
def stand_in_weights(tmp_path_factory):
    """Random weights with the FID Inception's keys and shapes (its blocks subclass
    torchvision's, so torchvision's Inception-v3 with 1008 classes has the same state)."""
    torch.manual_seed(0)
    net = torchvision.models.inception_v3(
        weights=None, aux_logits=False, num_classes=1008, init_weights=False
    )
    path = tmp_path_factory.mktemp("weights") / "random_inception.pth"
    torch.save(net.state_dict(), path)
    return path


def test_without_weights_anywhere_there_is_nothing_to_use(empty_hub):
    assert inception.find_weights("") is None


def test_weights_are_found_by_parameter_then_variable_then_hub_cache(
    empty_hub, tmp_path, monkeypatch
):
    cached = empty_hub / "checkpoints" / inception.WEIGHTS_FILE
    cached.parent.mkdir(parents=True)
    cached.write_bytes(b"x")
    assert inception.find_weights("") == cached
    by_env, by_param = tmp_path / "env.pth", tmp_path / "param.pth"
    by_env.write_bytes(b"x")
    by_param.write_bytes(b"x")
    monkeypatch.setenv(inception.ENV_VAR, str(by_env))
    assert inception.find_weights("") == by_env
    assert inception.find_weights(str(by_param)) == by_param


def test_a_named_file_that_is_missing_is_an_error_with_the_fix(empty_hub, tmp_path, monkeypatch):
    with pytest.raises(inception.InceptionWeightsError, match="evaluate.inception_weights names"):
        inception.find_weights(str(tmp_path / "nowhere.pth"))
    monkeypatch.setenv(inception.ENV_VAR, str(tmp_path / "nowhere.pth"))
    with pytest.raises(inception.InceptionWeightsError, match="MCL_INCEPTION_WEIGHTS names"):
        inception.find_weights("")


def test_a_file_of_another_network_is_refused(tmp_path):
    path = tmp_path / "other.pth"
    torch.save(torch.nn.Linear(2, 2).state_dict(), path)
    with pytest.raises(inception.InceptionWeightsError, match="not the FID Inception"):
        inception.load_inception(path)


def test_features_come_from_the_given_file_without_a_download(stand_in_weights, empty_hub):
    model = inception.load_inception(stand_in_weights)
    state = torch.load(stand_in_weights)
    assert torch.equal(model.blocks[0][0].conv.weight, state["Conv2d_1a_3x3.conv.weight"])
    assert not (empty_hub / "checkpoints").exists()  # nothing was fetched or cached
    rng = np.random.default_rng(0)
    a = rng.integers(0, 256, (6, 28, 28), dtype=np.uint8)
    b = rng.integers(0, 256, (6, 28, 28), dtype=np.uint8)
    features = inception.inception_features(model, a, batch_size=4)
    assert features.shape == (6, 2048) and np.isfinite(features).all()
    assert np.allclose(features, inception.inception_features(model, a, batch_size=6), atol=1e-5)
    assert fid(features, features) == pytest.approx(0.0, abs=1e-6)
    assert fid(features, inception.inception_features(model, b)) > 0


def test_evaluate_says_once_that_inception_fid_is_skipped(empty_hub, caplog):
    import importlib.util
    from pathlib import Path

    spec = importlib.util.spec_from_file_location(
        "evaluate_stage", Path(__file__).parents[1] / "stages" / "evaluate.py"
    )
    stage = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(stage)
    images = np.zeros((4, 28, 28), np.uint8)
    with caplog.at_level(logging.WARNING):
        assert stage.inception_fids("", images, {"a": images, "b": images}, "cpu") == {}
    skipped = [r for r in caplog.records if "Inception FID skipped" in r.getMessage()]
    assert len(skipped) == 1
