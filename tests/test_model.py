import math

import pytest
import torch

from mclcore.diffusion import (
    Denoiser,
    build_denoiser,
    denoising_loss,
    sample_training_sigmas,
    ve_sigma,
)
from mclcore.unet import FourierEmbedding, ScoreUNet, count_parameters


def test_default_network_has_the_reference_size_and_keeps_the_image_shape():
    net = ScoreUNet((32, 64, 128), 128, 8)
    assert 1.2e6 <= count_parameters(net) <= 1.6e6
    out = net(torch.randn(3, 1, 28, 28), torch.zeros(3))
    assert out.shape == (3, 1, 28, 28)


def test_noise_embedding_tells_low_and_high_noise_apart():
    embed = FourierEmbedding(128)
    codes = embed(torch.log(torch.tensor([0.01, 0.0102, 1.0, 80.0])) / 4)
    cosine = torch.nn.functional.cosine_similarity
    assert cosine(codes[0], codes[1], dim=0) > 0.95  # noise levels 2% apart: alike
    assert cosine(codes[0], codes[3], dim=0).abs() < 0.3  # the two ends: unlike
    assert cosine(codes[2], codes[3], dim=0).abs() < 0.3


def test_edm_coefficients_match_table_1_at_sigma_data():
    denoiser = build_denoiser((8, 8, 8), 16, 4, "edm", 0.5)
    c_skip, c_out, c_in, c_noise = denoiser.coefficients(torch.tensor([0.5]))
    assert c_skip.item() == pytest.approx(0.5)
    assert c_out.item() == pytest.approx(0.5 / math.sqrt(2))
    assert c_in.item() == pytest.approx(1 / (0.5 * math.sqrt(2)))
    assert c_noise.item() == pytest.approx(math.log(0.5) / 4)


@pytest.mark.parametrize("precond", ["edm", "ve"])
def test_network_input_has_unit_variance_at_every_noise_level(precond):
    denoiser = build_denoiser((8, 8, 8), 16, 4, precond, 0.5)
    x0 = torch.rand(2000, 1) * 2 - 1  # std about 0.58, near sigma_data
    for sigma in (0.01, 1.0, 80.0):
        _, _, c_in, _ = denoiser.coefficients(torch.tensor([sigma]))
        x = x0 + sigma * torch.randn_like(x0)
        assert (c_in * x).std().item() == pytest.approx(1.0, rel=0.2)


def test_untrained_denoiser_is_the_skip_path():
    for precond, expected_scale in (("edm", 0.25 / (0.25 + 4)), ("ve", 1.0)):
        denoiser = build_denoiser((8, 8, 8), 16, 4, precond, 0.5)
        x = torch.randn(2, 1, 28, 28)
        assert torch.allclose(denoiser(x, 2.0), expected_scale * x)


def test_loss_weight_makes_the_trivial_denoiser_cost_about_one_at_every_sigma():
    # With D(x) = c_skip x and data of std sigma_data, the EDM loss is exactly 1 in expectation.
    denoiser = build_denoiser((8, 8, 8), 16, 4, "edm", 0.5)
    x0 = 0.5 * torch.randn(4000, 1, 28, 28)
    for sigma in (0.02, 1.0, 50.0):
        s = torch.full((len(x0),), sigma)
        loss = denoising_loss(denoiser, x0, s, torch.randn_like(x0)).mean().item()
        assert loss == pytest.approx(1.0, rel=0.02)


def test_ve_sigma_runs_from_sigma_min_to_sigma_max():
    assert ve_sigma(0.0, 0.01, 80.0) == pytest.approx(0.01)
    assert ve_sigma(1.0, 0.01, 80.0) == pytest.approx(80.0)
    assert ve_sigma(0.5, 0.01, 80.0) == pytest.approx(math.sqrt(0.01 * 80.0))


@pytest.mark.parametrize("kind", ["lognormal", "loguniform"])
def test_training_sigmas_stay_in_range(kind):
    sigmas = sample_training_sigmas(
        10_000, kind, 0.01, 80.0, generator=torch.Generator().manual_seed(0)
    )
    assert sigmas.min() >= 0.01 and sigmas.max() <= 80.0


def test_loguniform_training_sigmas_are_uniform_in_log_sigma():
    sigmas = sample_training_sigmas(50_000, "loguniform", 0.01, 80.0)
    t = (sigmas.log() - math.log(0.01)) / (math.log(80.0) - math.log(0.01))
    assert t.mean().item() == pytest.approx(0.5, abs=0.01)
    assert t.var().item() == pytest.approx(1 / 12, abs=0.005)


def test_unknown_preconditioning_is_rejected():
    with pytest.raises(ValueError, match="preconditioning"):
        Denoiser(ScoreUNet((8, 8, 8), 16, 4), "vp")
