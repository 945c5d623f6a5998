"""The one validated config of a training run.

Every run (CLI, MLflow project, sweep trial, benchmark) is described by one frozen `RunConfig`.
It is validated as a whole before any data is generated, any model is built or any MLflow run
is created, and flattened verbatim into MLflow params (and saved as `config.json`).

Each field carries its help text and its validation rule, so the CLI flags, the YAML study
files and the error messages are all generated from this one place.
"""

from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass, field, fields
from typing import Any, Callable, Mapping

from sbbench.data import DATASETS
from sbbench.models import DEFAULT_MODEL_FOR_DATASET, MODELS
from sbbench.selection import METHODS


class ConfigError(ValueError):
    """A bad input: names the field, the value and what is allowed (one line)."""

    def __init__(self, field_name: str, value: Any, allowed: str, source: str = "config"):
        self.field_name = field_name
        self.value = value
        self.allowed = allowed
        super().__init__(f"{source}: invalid {field_name}={value!r}; allowed: {allowed}")


# --- field rules -------------------------------------------------------------------------------

Rule = Callable[[Any], "str | None"]  # returns None when valid, else the "allowed" text


def _one_of(choices: Callable[[], list[str]] | list[str]) -> Rule:
    def rule(value: Any) -> str | None:
        allowed = choices() if callable(choices) else choices
        return None if value in allowed else "one of " + ", ".join(allowed)

    return rule


def _number(low: float | None = None, high: float | None = None, *, low_open: bool = False,
            high_open: bool = False, optional: bool = False) -> Rule:
    def rule(value: Any) -> str | None:
        parts = []
        if low is not None:
            parts.append(f"{'>' if low_open else '>='} {low:g}")
        if high is not None:
            parts.append(f"{'<' if high_open else '<='} {high:g}")
        allowed = "a number " + " and ".join(parts) if parts else "a number"
        if optional:
            allowed += " (or null)"
        if value is None:
            return None if optional else allowed
        if not math.isfinite(value):
            return allowed
        if low is not None and (value <= low if low_open else value < low):
            return allowed
        if high is not None and (value >= high if high_open else value > high):
            return allowed
        return None

    return rule


def _device_rule(value: str) -> str | None:
    allowed = "auto, cpu, cuda or cuda:N"
    if value in ("auto", "cpu", "cuda"):
        return None
    if value.startswith("cuda:") and value[5:].isdigit():
        return None
    return allowed


def _milestones_rule(value: tuple) -> str | None:
    allowed = "a strictly increasing list of epochs > 0"
    if any(m <= 0 for m in value) or list(value) != sorted(set(value)):
        return allowed
    return None


def _cfg(default: Any, help: str, rule: Rule | None = None, *, group: str = "run") -> Any:
    return field(default=default, metadata={"help": help, "rule": rule, "group": group})


# --- the config ----------------------------------------------------------------------------------

@dataclass(frozen=True)
class RunConfig:
    # method (scientific hyperparameters of the selection)
    method: str = _cfg("sb", "selection method", _one_of(lambda: sorted(METHODS)), group="method")
    beta: float = _cfg(3.0, "SB selectivity: P = percentile**beta (keep rate ~ 1/(beta+1))",
                       _number(0), group="method")
    staleness: int = _cfg(3, "StaleSB: reuse selection losses for n epochs (n=1 is plain SB)",
                          _number(1), group="method")
    p_min: float = _cfg(0.0, "SB floor on the backprop probability", _number(0, 1), group="method")
    history_size: int = _cfg(1024, "SB loss history window R (examples)", _number(1), group="method")
    score_mode: str = _cfg("eval", "mode of the selection forward: eval keeps BatchNorm running "
                           "statistics untouched; train updates them and uses batch statistics",
                           _one_of(["eval", "train"]), group="method")
    prime_epochs: int = _cfg(1, "epochs of ordinary training before selection starts",
                             _number(0), group="method")
    partial_batch: str = _cfg("flush", "what happens to a partial backprop queue at the end of an "
                              "epoch: flush as a smaller step, or carry over",
                              _one_of(["flush", "carry"]), group="method")
    forward_batch_size: int | None = _cfg(None, "candidates per selection forward (default: "
                                          "batch_size)", _number(1, optional=True), group="method")
    kath_presample_ratio: int = _cfg(3, "Katharopoulos18: presample B = k * batch_size",
                                     _number(1), group="method")
    kath_score: str = _cfg("gnorm", "Katharopoulos18 score: gnorm (logit-gradient norm) or loss",
                           _one_of(["gnorm", "loss"]), group="method")
    kath_weighting: str = _cfg("reweighted", "Katharopoulos18: reweighted (unbiased) or biased",
                               _one_of(["reweighted", "biased"]), group="method")
    kath_tau_momentum: float = _cfg(0.9, "Katharopoulos18: EMA momentum of the tau estimate",
                                    _number(0, 1, high_open=True), group="method")

    # workload
    dataset: str = _cfg("mnist1d", "dataset", _one_of(lambda: sorted(DATASETS)), group="workload")
    model: str | None = _cfg(None, "model (default: the dataset's default model)",
                             _one_of(lambda: sorted(MODELS) + [None]), group="workload")
    model_width: int | None = _cfg(None, "model width override (channels / widen factor)",
                                   _number(1, optional=True), group="workload")
    dropout: float | None = _cfg(None, "dropout override (WideResNet defaults 0.3 / 0.4)",
                                 _number(0, 1, high_open=True, optional=True), group="workload")
    train_size: int | None = _cfg(None, "training examples (mnist1d default 50000)",
                                  _number(1, optional=True), group="workload")
    val_size: int | None = _cfg(None, "validation examples: decide the target crossing "
                                "(mnist1d 10000; cifar/svhn 5000 held out from train)",
                                _number(1, optional=True), group="workload")
    test_size: int | None = _cfg(None, "test examples: grade the final result (mnist1d 10000)",
                                 _number(1, optional=True), group="workload")
    svhn_extra: bool = _cfg(False, "svhn: train on train + extra", group="workload")
    augment: bool = _cfg(True, "paper augmentations for cifar/svhn", group="workload")
    label_noise: float = _cfg(0.0, "fraction of training labels permuted among themselves",
                              _number(0, 1, high_open=True), group="workload")
    epochs: float = _cfg(10.0, "budget in epochs (examples seen / train size)",
                         _number(0, low_open=True), group="workload")
    time_budget_s: float | None = _cfg(None, "budget in training-clock seconds (stops at "
                                       "whichever budget comes first)",
                                       _number(0, low_open=True, optional=True), group="workload")
    eval_every_examples: int = _cfg(10000, "evaluate every this many examples seen (same for "
                                    "every method)", _number(1), group="workload")
    test_every_evaluation: bool = _cfg(False, "also measure test error at every evaluation "
                                       "(default: once, on the final model; time to target "
                                       "reads validation error)", group="workload")
    recompute_bn_before_eval: bool = _cfg(
        False, "re-estimate BatchNorm running statistics on uniformly drawn training batches "
        "before each evaluation (untimed; the evaluated model only: training, including "
        "eval-mode selection scoring, keeps its own statistics). Off: the paper's protocol",
        group="workload")
    target_val_error: float | None = _cfg(None, "stop once validation error <= this",
                                          _number(0, 1, optional=True), group="workload")

    # optimisation (nuisance hyperparameters: tune per method before timing)
    batch_size: int = _cfg(128, "examples per backward batch (exact for SB)", _number(1),
                           group="optim")
    lr: float = _cfg(0.05, "SGD learning rate", _number(0, low_open=True), group="optim")
    momentum: float = _cfg(0.9, "SGD momentum", _number(0, 1, high_open=True), group="optim")
    nesterov: bool = _cfg(True, "Nesterov momentum", group="optim")
    weight_decay: float = _cfg(5e-4, "SGD weight decay", _number(0), group="optim")
    lr_milestones: tuple[float, ...] = _cfg((), "epochs at which the learning rate is "
                                            "multiplied by lr_gamma", _milestones_rule,
                                            group="optim")
    lr_gamma: float = _cfg(0.1, "step schedule factor", _number(0, 1, low_open=True),
                           group="optim")
    lr_schedule_unit: str = _cfg("examples_seen", "what the schedule's epochs count",
                                 _one_of(["examples_seen", "examples_backpropped"]),
                                 group="optim")

    # execution
    seed: int = _cfg(0, "run seed: independent streams for init, data order, augmentation, "
                     "label noise, selection and dropout are derived from it (sbbench.seeds)",
                     _number(0),
                     group="run")
    device: str = _cfg("auto", "auto (cuda when present), cpu, cuda, cuda:N", _device_rule,
                       group="run")
    amp: bool = _cfg(False, "bf16 autocast on CUDA (ignored on the CPU)", group="run")
    num_threads: int | None = _cfg(None, "torch CPU threads (default: torch's choice)",
                                   _number(1, optional=True), group="run")
    data_dir: str = _cfg("data", "where datasets live (and the mnist1d cache)", group="run")
    download: bool = _cfg(False, "allow torchvision to download CIFAR/SVHN", group="run")

    def __post_init__(self) -> None:
        self.validate()

    # -- validation -----------------------------------------------------------------------------

    def validate(self, source: str = "config") -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            rule = f.metadata.get("rule")
            if rule is not None:
                allowed = rule(value)
                if allowed is not None:
                    raise ConfigError(f.name, value, allowed, source)
        model = self.resolved_model
        spec = MODELS[model]
        if self.dataset not in spec.datasets:
            raise ConfigError("model", model, "a model for " + self.dataset + ": "
                              + ", ".join(m for m, s in sorted(MODELS.items())
                                          if self.dataset in s.datasets), source)
        # A model option the model lacks would be refused by build_model after the run exists.
        for field_name, option in (("dropout", "dropout"), ("model_width", "width")):
            if getattr(self, field_name) is not None and option not in spec.options:
                takers = ", ".join(m for m, s in sorted(MODELS.items()) if option in s.options)
                raise ConfigError(field_name, getattr(self, field_name),
                                  f"null for model {model} (it has no {option} option; models "
                                  f"that do: {takers})", source)

    @property
    def resolved_model(self) -> str:
        return self.model or DEFAULT_MODEL_FOR_DATASET[self.dataset]

    @property
    def resolved_forward_batch_size(self) -> int:
        return self.forward_batch_size or self.batch_size

    # -- construction -----------------------------------------------------------------------------

    @classmethod
    def from_dict(cls, values: Mapping[str, Any], source: str = "config") -> "RunConfig":
        """Build from untyped input (YAML, CLI strings, MLflow params), type-checking each field."""
        known = {f.name: f for f in fields(cls)}
        kwargs = {}
        for key, value in values.items():
            if key not in known:
                raise ConfigError(key, value, "a config field: " + ", ".join(sorted(known)),
                                  source)
            kwargs[key] = coerce_field(known[key], value, source)
        try:
            return cls(**kwargs)
        except ConfigError as err:
            raise ConfigError(err.field_name, err.value, err.allowed, source) from None

    def replace(self, **changes: Any) -> "RunConfig":
        return RunConfig.from_dict({**self.to_dict(), **changes})

    # -- serialisation ----------------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True)

    def to_mlflow_params(self) -> dict[str, str]:
        """Flatten to MLflow params (strings). The resolved model is logged, not None."""
        params = {}
        for key, value in self.to_dict().items():
            if key == "model":
                value = self.resolved_model
            if isinstance(value, (list, tuple)):
                value = ",".join(f"{v:g}" for v in value)
            params[key] = str(value)
        return params


def _type_name(annotation: str) -> str:
    return annotation.replace(" | None", "").strip()


def coerce_field(f: dataclasses.Field, value: Any, source: str = "config") -> Any:
    """Convert one raw value (possibly a string) to the field's type or raise ConfigError."""
    annotation = str(f.type)
    optional = "None" in annotation
    base = _type_name(annotation)
    if value is None or (isinstance(value, str) and value.strip().lower() in ("none", "null")
                         and optional):
        if optional:
            return None
        raise ConfigError(f.name, value, f"a value of type {base}", source)
    try:
        if base == "bool":
            if isinstance(value, bool):
                return value
            if isinstance(value, str) and value.strip().lower() in ("true", "1", "yes", "on"):
                return True
            if isinstance(value, str) and value.strip().lower() in ("false", "0", "no", "off"):
                return False
            if isinstance(value, int) and value in (0, 1):
                return bool(value)
            raise ValueError
        if base == "int":
            if isinstance(value, bool):
                raise ValueError
            if isinstance(value, float):
                if not value.is_integer():
                    raise ValueError
                return int(value)
            text = str(value).strip()
            try:
                return int(text)
            except ValueError:
                as_float = float(text)  # "3.0" from MLflow's float-typed project params
                if not as_float.is_integer():
                    raise
                return int(as_float)
        if base == "float":
            if isinstance(value, bool):
                raise ValueError
            return float(value)
        if base == "str":
            if not isinstance(value, str):
                raise ValueError
            return value
        if base.startswith("tuple"):
            if isinstance(value, str):
                items = [v for v in value.replace(" ", "").split(",") if v]
            elif isinstance(value, (list, tuple)):
                items = list(value)
            else:
                raise ValueError
            return tuple(float(v) for v in items)
    except (TypeError, ValueError):
        raise ConfigError(f.name, value, f"a value of type {base}", source) from None
    raise ConfigError(f.name, value, f"a value of type {base}", source)


def config_fields() -> list[dataclasses.Field]:
    return list(fields(RunConfig))
