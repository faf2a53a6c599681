import pytest
import torch

from conftest import TINY_MODEL, TINY_OPTIMISATION, synthetic_digits
from mclcore.checkpoints import CheckpointError, load_denoiser, save_denoiser
from mclcore.datasets import as_tensor
from mclcore.diffusion import build_denoiser
from mclcore.training import EMA, TrainConfig, denoising_error_by_sigma, train_denoiser

TINY = TINY_MODEL


def tiny_config(**changes) -> TrainConfig:
    settings = dict(
        epochs=4,
        batch_size=32,
        lr=2e-3,
        **TINY_OPTIMISATION,
        log_every=5,
        checkpoint_every=5,
    )
    return TrainConfig(**{**settings, **changes})


def tiny_data(n=256, seed=0):
    images, _ = synthetic_digits(n, seed)
    return as_tensor(images)


def test_training_lowers_the_held_out_denoising_error():
    torch.manual_seed(0)
    denoiser = build_denoiser(**TINY)
    held_out = tiny_data(128, seed=1)
    sigmas = (0.1, 0.5, 2.0)
    before = denoising_error_by_sigma(denoiser, held_out, sigmas)
    ema = train_denoiser(
        denoiser, tiny_data(), tiny_config(), torch.device("cpu"), show_progress=False
    )
    after = denoising_error_by_sigma(ema.module, held_out, sigmas)
    # At sigma = 0.1 the untrained skip path already denoises well; it must not get worse.
    assert after[0.1] < before[0.1]
    assert after[0.5] < 0.5 * before[0.5] and after[2.0] < 0.5 * before[2.0]


def test_losses_are_logged_per_step_and_per_epoch():
    records = []
    torch.manual_seed(0)
    train_denoiser(
        build_denoiser(**TINY),
        tiny_data(),
        tiny_config(epochs=2),
        torch.device("cpu"),
        log_metrics=lambda metrics, step: records.append((step, metrics)),
        show_progress=False,
    )
    steps_logged = [step for step, m in records if "train_loss" in m]
    epochs_logged = [(step, m["epoch"]) for step, m in records if "epoch_loss" in m]
    assert steps_logged == [5, 10, 15]
    assert epochs_logged == [(8, 1), (16, 2)]


class Interrupt(Exception):
    pass


def test_an_interrupted_run_resumes_to_the_same_weights_bit_for_bit(tmp_path):
    cfg, data = tiny_config(epochs=2), tiny_data()
    torch.manual_seed(0)
    straight = train_denoiser(
        build_denoiser(**TINY), data, cfg, torch.device("cpu"), show_progress=False
    )

    def stop_at_step_15(metrics, step):
        if step == 15:
            raise Interrupt

    resume = tmp_path / "resume.pt"
    torch.manual_seed(0)
    with pytest.raises(Interrupt):
        train_denoiser(
            build_denoiser(**TINY),
            data,
            cfg,
            torch.device("cpu"),
            stop_at_step_15,
            resume,
            show_progress=False,
        )
    assert resume.exists()  # the state of step 10, saved after its log call
    torch.manual_seed(123)  # a fresh process: the initial weights do not matter any more
    resumed = train_denoiser(
        build_denoiser(**TINY), data, cfg, torch.device("cpu"), None, resume, show_progress=False
    )
    assert not resume.exists()
    assert resumed.updates == straight.updates == 16
    assert resumed.loss_curve == straight.loss_curve  # the whole history, not from step 10
    assert [step for step, _ in straight.loss_curve] == [5, 10, 15]  # every log_every steps
    for a, b in zip(straight.module.state_dict().values(), resumed.module.state_dict().values()):
        assert torch.equal(a, b)


def test_a_resume_file_from_other_parameters_is_ignored(tmp_path):
    resume = tmp_path / "resume.pt"
    torch.manual_seed(0)
    with pytest.raises(Interrupt):
        train_denoiser(
            build_denoiser(**TINY),
            tiny_data(),
            tiny_config(),
            torch.device("cpu"),
            lambda m, step: (_ for _ in ()).throw(Interrupt) if step == 10 else None,
            resume,
            show_progress=False,
        )
    ema = train_denoiser(
        build_denoiser(**TINY),
        tiny_data(),
        tiny_config(lr=1e-3, max_steps=3),
        torch.device("cpu"),
        None,
        resume,
        show_progress=False,
    )
    assert ema.updates == 3


def test_ema_follows_its_warm_up_then_the_set_decay():
    model = torch.nn.Linear(1, 1, bias=False)
    with torch.no_grad():
        model.weight.fill_(0.0)
    ema = EMA(model, decay=0.9)
    with torch.no_grad():
        model.weight.fill_(1.0)
    ema.update(model)  # decay min(0.9, 1/10) = 0.1
    assert ema.module.weight.item() == pytest.approx(0.9)
    for _ in range(99):
        ema.update(model)  # after 80 updates the warm-up (1 + n) / (10 + n) exceeds 0.9
    with torch.no_grad():
        model.weight.fill_(2.0)
    before = ema.module.weight.item()
    ema.update(model)
    assert ema.module.weight.item() == pytest.approx(0.9 * before + 0.1 * 2.0)
    assert not ema.module.weight.requires_grad


def test_checkpoint_round_trip_and_wrong_kind(tmp_path):
    denoiser = build_denoiser(**TINY)
    save_denoiser(denoiser, {**TINY, "channels": list(TINY["channels"])}, tmp_path / "m.pt")
    loaded, _ = load_denoiser(tmp_path / "m.pt")
    x = torch.randn(2, 1, 28, 28)
    assert torch.equal(loaded(x, 1.0), denoiser.eval()(x, 1.0))
    torch.save({"kind": "something else"}, tmp_path / "other.pt")
    with pytest.raises(CheckpointError, match="not a mcl-diffusion/score-model checkpoint"):
        load_denoiser(tmp_path / "other.pt")
    with pytest.raises(CheckpointError, match="dvc repro"):
        load_denoiser(tmp_path / "missing.pt")


def test_too_few_images_for_one_batch_is_a_clear_error():
    with pytest.raises(ValueError, match="fewer than one batch"):
        train_denoiser(build_denoiser(**TINY), tiny_data(16), tiny_config(), torch.device("cpu"))
