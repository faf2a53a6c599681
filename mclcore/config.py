"""Typed, validated parameters: `params.yaml` is read once into these dataclasses.

Every section of `params.yaml` is one dataclass. Loading checks that no key is unknown,
that every value has the declared type, and that values are possible (K >= 1,
sigma_min < sigma_max, ...). A failure raises `ParamsError` naming the key and the fix.
"""

from __future__ import annotations

import dataclasses
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal


class ParamsError(ValueError):
    """A parameter in params.yaml is unknown, of the wrong type or impossible."""


@dataclass(frozen=True)
class DataParams:
    """Which dataset to use and which training images are held out from all training."""

    dataset: Literal["mnist", "fashion_mnist", "idx_folder"] = "mnist"
    idx_folder: str = ""
    holdout: int = 2000
    split_seed: int = 0

    def validate(self) -> None:
        if self.dataset == "idx_folder" and not self.idx_folder:
            raise ParamsError(
                "data.idx_folder is empty but data.dataset is 'idx_folder': set data.idx_folder "
                "to the folder holding train-images-idx3-ubyte[.gz] and the other three files"
            )
        _check(self.holdout >= 0, "data.holdout", "must be >= 0")


@dataclass(frozen=True)
class ClassifierParams:
    """The LeNet-5-style classifier whose features define FID, precision and recall."""

    epochs: int = 4
    batch_size: int = 128
    lr: float = 1e-3
    seed: int = 0

    def validate(self) -> None:
        _check(self.epochs >= 1, "classifier.epochs", "must be >= 1")
        _check(self.batch_size >= 1, "classifier.batch_size", "must be >= 1")
        _check(self.lr > 0, "classifier.lr", "must be > 0")


@dataclass(frozen=True)
class ModelParams:
    """The score network and its noise process, shared by the baseline and every expert."""

    channels: list[int] = field(default_factory=lambda: [32, 64, 128])
    emb_dim: int = 128
    groups: int = 8
    precond: Literal["edm", "ve"] = "edm"
    sigma_data: float = 0.5
    sigma_min: float = 0.01
    sigma_max: float = 80.0

    def validate(self) -> None:
        _check(len(self.channels) == 3, "model.channels", "must list 3 widths (28, 14, 7 px)")
        for width in self.channels:
            _check(width >= 1, "model.channels", "widths must be >= 1")
            _check(
                width % self.groups == 0,
                "model.channels",
                f"every width must be divisible by model.groups={self.groups}",
            )
        _check(self.emb_dim >= 2 and self.emb_dim % 2 == 0, "model.emb_dim", "must be even, >= 2")
        _check(self.sigma_data > 0, "model.sigma_data", "must be > 0")
        _check(self.sigma_min > 0, "model.sigma_min", "must be > 0")
        _check(
            self.sigma_min < self.sigma_max,
            "model.sigma_min",
            f"must be smaller than model.sigma_max ({self.sigma_min} >= {self.sigma_max})",
        )


@dataclass(frozen=True)
class OptimisationParams:
    """Settings shared by every section that trains score networks."""

    epochs: int = 1
    max_steps: int = 0
    batch_size: int = 64
    lr: float = 5e-4
    ema_decay: float = 0.999
    grad_clip: float = 1.0
    sigma_sampling: Literal["lognormal", "loguniform"] = "lognormal"
    p_mean: float = -1.2
    p_std: float = 1.2
    seed: int = 0
    log_every: int = 1

    def _validate_optimisation(self, section: str) -> None:
        _check(self.epochs >= 1, f"{section}.epochs", "must be >= 1")
        _check(self.max_steps >= 0, f"{section}.max_steps", "must be >= 0 (0: no limit)")
        _check(self.batch_size >= 1, f"{section}.batch_size", "must be >= 1")
        _check(self.lr > 0, f"{section}.lr", "must be > 0")
        _check(0 <= self.ema_decay < 1, f"{section}.ema_decay", "must be in [0, 1)")
        _check(self.grad_clip >= 0, f"{section}.grad_clip", "must be >= 0 (0: no clip)")
        _check(self.p_std > 0, f"{section}.p_std", "must be > 0")
        _check(self.log_every >= 1, f"{section}.log_every", "must be >= 1")


@dataclass(frozen=True)
class TrainParams(OptimisationParams):
    """Optimisation of the baseline score network."""

    checkpoint_every: int = 200

    def validate(self) -> None:
        self._validate_optimisation("train_baseline")
        _check(self.checkpoint_every >= 1, "train_baseline.checkpoint_every", "must be >= 1")


@dataclass(frozen=True)
class MCLParams:
    """The ensemble of experts (used from the MCL stage on)."""

    K: int = 5

    def validate(self) -> None:
        _check(self.K >= 1, "mcl.K", "must be >= 1 (the number of experts)")


@dataclass(frozen=True)
class TrainMCLParams(OptimisationParams):
    """Multiple Choice Learning of the K experts (Lee et al. 2016; remedies in mclcore.mcl)."""

    rule: Literal["wta", "relaxed", "balanced", "annealed"] = "balanced"
    epsilon: float = 0.05
    capacity: float = 1.0
    temperature: float = 0.3
    final_temperature: float = 0.003
    anneal_fraction: float = 0.5
    assignment: Literal["noise_draw", "image"] = "noise_draw"
    draws_per_image: int = 4
    sigma_bands: int = 8
    wins_every: int = 25
    checkpoint_every: int = 100

    def validate(self) -> None:
        self._validate_optimisation("train_mcl")
        _check(self.wins_every >= 1, "train_mcl.wins_every", "must be >= 1")
        _check(self.checkpoint_every >= 1, "train_mcl.checkpoint_every", "must be >= 1")
        _check(0 <= self.epsilon < 1, "train_mcl.epsilon", "must be in [0, 1)")
        _check(self.capacity >= 1, "train_mcl.capacity", "must be >= 1 (room for every example)")
        _check(self.temperature >= 0, "train_mcl.temperature", "must be >= 0")
        _check(
            0 < self.final_temperature <= self.temperature or self.temperature == 0,
            "train_mcl.final_temperature",
            "must be in (0, train_mcl.temperature]",
        )
        _check(0 < self.anneal_fraction <= 1, "train_mcl.anneal_fraction", "must be in (0, 1]")
        _check(self.draws_per_image >= 1, "train_mcl.draws_per_image", "must be >= 1")
        _check(self.sigma_bands >= 1, "train_mcl.sigma_bands", "must be >= 1")


@dataclass(frozen=True)
class TrainGatingParams:
    """The gate: a small CNN predicting the winning expert from (x_t, sigma)."""

    images: int = 3000
    val_images: int = 1000
    draws: int = 2
    epochs: int = 5
    batch_size: int = 128
    lr: float = 2e-3
    width: int = 32
    emb_dim: int = 64
    seed: int = 0

    def validate(self) -> None:
        _check(self.images >= 1, "train_gating.images", "must be >= 1")
        _check(self.val_images >= 1, "train_gating.val_images", "must be >= 1")
        _check(self.draws >= 1, "train_gating.draws", "must be >= 1")
        _check(self.epochs >= 1, "train_gating.epochs", "must be >= 1")
        _check(self.batch_size >= 1, "train_gating.batch_size", "must be >= 1")
        _check(self.lr > 0, "train_gating.lr", "must be > 0")
        _check(
            self.width >= 4 and self.width % 4 == 0, "train_gating.width", "must be a multiple of 4"
        )
        _check(self.emb_dim >= 2 and self.emb_dim % 2 == 0, "train_gating.emb_dim", "must be even")


@dataclass(frozen=True)
class SampleParams:
    """Deterministic probability-flow ODE sampling."""

    sampler: Literal["euler", "heun"] = "heun"
    steps: int = 18
    grid: Literal["edm", "geometric"] = "edm"
    rho: float = 7.0
    n_samples: int = 500
    class_images: int = 1000
    batch_size: int = 500
    seed: int = 0
    heuristic: Literal["time_bands", "win_table"] = "time_bands"

    @property
    def expert_images(self) -> int:
        """Images drawn per expert by sample@experts: the table scores the first n_samples,
        the class histogram the first class_images."""
        return max(self.n_samples, self.class_images)

    def validate(self) -> None:
        _check(self.steps >= 1, "sample.steps", "must be >= 1")
        _check(self.rho > 0, "sample.rho", "must be > 0")
        _check(self.n_samples >= 1, "sample.n_samples", "must be >= 1")
        _check(self.class_images >= 1, "sample.class_images", "must be >= 1")
        _check(self.batch_size >= 1, "sample.batch_size", "must be >= 1")


@dataclass(frozen=True)
class EvaluateParams:
    """FID, precision, recall, density and coverage in the classifier's feature space."""

    k: int = 3
    dc_k: int = 5
    batch_size: int = 1000
    seed: int = 0
    trajectory_noise: int = 0
    snapshots: int = 8
    gate_trajectories: int = 256
    inception_weights: str = ""

    def validate(self) -> None:
        _check(self.k >= 1, "evaluate.k", "must be >= 1")
        _check(self.dc_k >= 1, "evaluate.dc_k", "must be >= 1")
        _check(self.batch_size >= 1, "evaluate.batch_size", "must be >= 1")
        _check(self.trajectory_noise >= 0, "evaluate.trajectory_noise", "must be >= 0")
        _check(self.snapshots >= 2, "evaluate.snapshots", "must be >= 2 (noise and image)")
        _check(self.gate_trajectories >= 1, "evaluate.gate_trajectories", "must be >= 1")


@dataclass(frozen=True)
class Params:
    """All of params.yaml."""

    data: DataParams = field(default_factory=DataParams)
    classifier: ClassifierParams = field(default_factory=ClassifierParams)
    model: ModelParams = field(default_factory=ModelParams)
    train_baseline: TrainParams = field(default_factory=TrainParams)
    mcl: MCLParams = field(default_factory=MCLParams)
    train_mcl: TrainMCLParams = field(default_factory=TrainMCLParams)
    train_gating: TrainGatingParams = field(default_factory=TrainGatingParams)
    sample: SampleParams = field(default_factory=SampleParams)
    evaluate: EvaluateParams = field(default_factory=EvaluateParams)


def _check(ok: bool, key: str, message: str) -> None:
    if not ok:
        raise ParamsError(f"params.yaml: {key} {message}")


def _coerce(value: Any, annotation: Any, key: str) -> Any:
    """Check `value` against a dataclass field annotation; ints are accepted for floats."""
    origin = typing.get_origin(annotation)
    if origin is Literal:
        choices = typing.get_args(annotation)
        if value not in choices:
            raise ParamsError(
                f"params.yaml: {key} is {value!r}; choose one of {', '.join(map(repr, choices))}"
            )
        return value
    if origin is list:
        (item_type,) = typing.get_args(annotation)
        if not isinstance(value, list):
            raise ParamsError(f"params.yaml: {key} must be a list, got {value!r}")
        return [_coerce(item, item_type, f"{key}[{i}]") for i, item in enumerate(value)]
    if annotation is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ParamsError(f"params.yaml: {key} must be a number, got {value!r}")
        return float(value)
    if annotation is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ParamsError(f"params.yaml: {key} must be a whole number, got {value!r}")
        return value
    if annotation is str:
        if not isinstance(value, str):
            raise ParamsError(f"params.yaml: {key} must be a string, got {value!r}")
        return value
    if annotation is bool:
        if not isinstance(value, bool):
            raise ParamsError(f"params.yaml: {key} must be true or false, got {value!r}")
        return value
    raise TypeError(f"unsupported parameter annotation {annotation!r} for {key}")


def _build_section(cls: type, raw: Any, section: str) -> Any:
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise ParamsError(f"params.yaml: section {section} must be a mapping of key: value")
    hints = typing.get_type_hints(cls)
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(raw) - known)
    if unknown:
        raise ParamsError(
            f"params.yaml: unknown key {section}.{unknown[0]}; "
            f"known keys of {section}: {', '.join(sorted(known))}"
        )
    values = {name: _coerce(raw[name], hints[name], f"{section}.{name}") for name in raw}
    section_params = cls(**values)
    section_params.validate()
    return section_params


def params_from_dict(raw: dict) -> Params:
    """Build and validate `Params` from the parsed YAML mapping."""
    if not isinstance(raw, dict):
        raise ParamsError("params.yaml must be a mapping of sections (data:, model:, ...)")
    hints = typing.get_type_hints(Params)
    unknown = sorted(set(raw) - set(hints))
    if unknown:
        raise ParamsError(
            f"params.yaml: unknown section {unknown[0]}; known sections: {', '.join(hints)}"
        )
    sections = {name: _build_section(hints[name], raw.get(name), name) for name in hints}
    return Params(**sections)


def load_params(path: str | Path = "params.yaml") -> Params:
    """Read and validate params.yaml."""
    import yaml

    path = Path(path)
    if not path.is_file():
        raise ParamsError(f"{path} not found: run the stage from the repository root")
    with path.open() as handle:
        try:
            raw = yaml.safe_load(handle) or {}
        except yaml.YAMLError as err:
            raise ParamsError(f"{path} is not valid YAML: {err}") from err
    return params_from_dict(raw)


def as_flat_dict(section: Any, prefix: str = "") -> dict[str, Any]:
    """A section as {"prefix.key": value}, for logging to MLflow."""
    return {f"{prefix}{k}": v for k, v in dataclasses.asdict(section).items()}
