import numpy as np
import pytest
import torch

from conftest import TINY_MODEL, TINY_OPTIMISATION, synthetic_digits
from mclcore.datasets import as_tensor
from mclcore.diffusion import build_denoiser
from mclcore.mcl_training import MCLConfig, WinCounts, mcl_step, temperature_at, train_mcl

TINY = TINY_MODEL


def config(**changes) -> MCLConfig:
    settings = dict(
        epochs=1,
        batch_size=16,
        lr=1e-3,
        **TINY_OPTIMISATION,
        rule="wta",
        log_every=1,
    )
    return MCLConfig(**{**settings, **changes})


def experts(k=3, seed=0):
    torch.manual_seed(seed)
    return [build_denoiser(**TINY) for _ in range(k)]


def test_temperature_decays_geometrically_then_is_zero():
    cfg = config(rule="annealed", temperature=1.0, final_temperature=0.01, anneal_fraction=0.5)
    assert temperature_at(cfg, 0, 100) == 1.0
    assert temperature_at(cfg, 25, 100) == pytest.approx(0.1)  # half the horizon: one decade
    assert temperature_at(cfg, 49, 100) == pytest.approx(0.01 ** (49 / 50))
    assert temperature_at(cfg, 50, 100) == 0.0 and temperature_at(cfg, 99, 100) == 0.0


def test_win_counts_put_each_sigma_in_its_log_band():
    counts = WinCounts(2, np.geomspace(0.01, 100.0, 5))  # bands split at 0.1, 1, 10
    counts.add(torch.tensor([0.02, 0.5, 0.5, 5.0, 50.0, 100.0]), torch.tensor([0, 1, 1, 0, 1, 1]))
    assert counts.by_band.tolist() == [[1, 0], [0, 2], [1, 0], [0, 2]]
    assert counts.rates().tolist() == pytest.approx([2 / 6, 4 / 6])
    assert counts.band_rates()[1].tolist() == [0.0, 1.0]


def test_assignment_by_image_gives_all_draws_of_an_image_one_winner():
    cfg = config(assignment="image", draws_per_image=4)
    group = experts()
    opts = [torch.optim.Adam(e.parameters(), lr=1e-3) for e in group]
    x0 = as_tensor(synthetic_digits(8, 0)[0])
    losses, winners, sigma, _ = mcl_step(
        group, opts, x0, cfg, torch.Generator().manual_seed(0), 0, 10
    )
    assert losses.shape == (3, 32) and winners.shape == (32,)
    per_image = winners.reshape(8, 4)
    assert (per_image == per_image[:, :1]).all()
    summed = losses.reshape(3, 8, 4).sum(dim=2)
    assert torch.equal(per_image[:, 0], summed.argmin(dim=0))
    assert len(set(sigma.tolist())) == 32  # each draw has its own noise level


def test_assignment_by_noise_draw_picks_the_lowest_loss_per_row():
    group = experts()
    opts = [torch.optim.Adam(e.parameters(), lr=1e-3) for e in group]
    x0 = as_tensor(synthetic_digits(16, 0)[0])
    losses, winners, _, density = mcl_step(
        group, opts, x0, config(), torch.Generator().manual_seed(0), 0, 10
    )
    assert torch.equal(winners, losses.argmin(dim=0))
    assert density == pytest.approx(1 / 3)  # hard WTA: one expert of three per example


@pytest.mark.parametrize("rule", ["wta", "relaxed", "balanced", "annealed"])
def test_a_short_mcl_run_trains_every_rule_and_counts_final_wins(rule):
    records = []
    images = as_tensor(synthetic_digits(160, 0)[0])
    run = train_mcl(
        experts(),
        images,
        config(rule=rule, epochs=1, wins_every=4),
        torch.device("cpu"),
        lambda metrics, step: records.append((step, metrics)),
        show_progress=False,
    )
    emas, wins = run.emas, run.final_wins
    assert len(emas) == 3 and all(ema.updates == 10 for ema in emas)
    assert run.win_rate_curve[:, 0].tolist() == [4, 8, 10]
    assert run.win_rate_curve[:, 1:].sum(axis=1) == pytest.approx([1.0, 1.0, 1.0])
    assert wins.by_band.sum() == 3 * 16  # the last quarter of 10 steps: steps 7, 8, 9
    assert wins.rates().sum() == pytest.approx(1.0)
    final = records[-1][1]
    assert {"epoch", "win_rate_expert_0", "band0_win_rate_expert_2"} <= set(final)
    assert [step for step, m in records if "train_loss" in m] == list(range(1, 11))


def test_unknown_rule_is_rejected():
    with pytest.raises(ValueError, match="unknown MCL rule"):
        mcl_step(
            experts(2),
            [None, None],
            torch.zeros(2, 1, 28, 28),
            config(rule="soft"),
            torch.Generator(),
            0,
            1,
        )


class Interrupt(Exception):
    pass


@pytest.mark.parametrize("rule", ["wta", "annealed"])
def test_an_interrupted_mcl_run_resumes_to_the_same_experts_and_wins(tmp_path, rule):
    images = as_tensor(synthetic_digits(160, 0)[0])
    cfg = config(rule=rule, temperature=0.5, epochs=2, checkpoint_every=6, wins_every=5)
    straight = train_mcl(experts(), images, cfg, torch.device("cpu"), show_progress=False)

    def stop_at_step_14(metrics, step):
        if step == 14:
            raise Interrupt

    resume = tmp_path / "mcl.pt"
    with pytest.raises(Interrupt):
        train_mcl(experts(), images, cfg, torch.device("cpu"), stop_at_step_14, False, resume)
    assert resume.exists()  # the state of step 12
    resumed = train_mcl(experts(seed=9), images, cfg, torch.device("cpu"), None, False, resume)
    assert not resume.exists()
    assert all(ema.resumed_at == 12 and ema.updates == 20 for ema in resumed.emas)
    assert np.array_equal(straight.final_wins.by_band, resumed.final_wins.by_band)
    assert np.array_equal(straight.win_rate_curve, resumed.win_rate_curve)
    assert np.array_equal(straight.loss_curve, resumed.loss_curve)
    assert straight.loss_curve[:, 0].tolist() == list(range(1, 21))
    for a, b in zip(straight.emas, resumed.emas):
        for x, y in zip(a.module.state_dict().values(), b.module.state_dict().values()):
            assert torch.equal(x, y)


def test_a_resume_state_of_another_k_is_ignored(tmp_path):
    images = as_tensor(synthetic_digits(64, 0)[0])
    cfg = config(epochs=2, checkpoint_every=2)
    resume = tmp_path / "mcl.pt"
    with pytest.raises(Interrupt):
        train_mcl(experts(3), images, cfg, torch.device("cpu"), _stop_at(3), False, resume)
    run = train_mcl(experts(2), images, cfg, torch.device("cpu"), None, False, resume)
    assert all(ema.resumed_at == 0 and ema.updates == 8 for ema in run.emas)


def _stop_at(stop_step):
    def log(metrics, step):
        if step == stop_step:
            raise Interrupt

    return log
