"""One tracked training run, end to end: validate -> check store -> data/model -> loop -> record.

`execute_run` is what the CLI, the MLflow project entry point, sweep trials and the nightly jobs
call. Inputs are validated and the tracking store is checked before any compute, and the MLflow
run always ends FINISHED, FAILED or KILLED (never RUNNING).
"""

from __future__ import annotations

import contextlib
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping

import torch

from sbbench import record_names as names
from sbbench import tracking
from sbbench.config import RunConfig
from sbbench.data import DataOptions, DatasetSplits, load_dataset
from sbbench.models import build_model
from sbbench.seeds import SCHEME as SEED_SCHEME, stream_seed
from sbbench.selection import SelectionMethod, SelectionSettings, build_method
from sbbench.run_failures import RunDiverged
from sbbench.train.artifacts import plot_error_vs_time, write_per_example_table
from sbbench.train.loop import TrainingLoop, TrainingOutcome
from sbbench.train.progress import ProgressBar


MethodFactory = Callable[[SelectionSettings], SelectionMethod]


@dataclass
class RunResult:
    run_id: str | None
    outcome: TrainingOutcome
    config: RunConfig


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        from sbbench.config import ConfigError
        raise ConfigError("device", name, "cpu or auto (no CUDA device is available)")
    return device


def device_description(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    import platform
    return f"cpu ({platform.processor() or platform.machine()}, {torch.get_num_threads()} threads)"


def data_options(config: RunConfig) -> DataOptions:
    return DataOptions(name=config.dataset, data_dir=config.data_dir, download=config.download,
                       train_size=config.train_size, val_size=config.val_size,
                       test_size=config.test_size, svhn_extra=config.svhn_extra,
                       augment=config.augment, label_noise=config.label_noise, seed=config.seed)


def selection_settings(config: RunConfig, num_train: int, device: torch.device) -> SelectionSettings:
    return SelectionSettings(
        batch_size=config.batch_size, num_train=num_train, seed=config.seed, device=str(device),
        forward_batch_size=config.forward_batch_size, beta=config.beta, p_min=config.p_min,
        history_size=config.history_size, prime_epochs=config.prime_epochs,
        partial_batch=config.partial_batch, staleness=config.staleness,
        kath_presample_ratio=config.kath_presample_ratio, kath_score=config.kath_score,
        kath_weighting=config.kath_weighting, kath_tau_momentum=config.kath_tau_momentum)


def build_training(config: RunConfig, tracker: Any, device: torch.device,
                   data: DatasetSplits | None = None, progress: bool = False,
                   method_factory: MethodFactory | None = None) -> TrainingLoop:
    """Data, model (seeded init), method and loop; no tracking decisions in here.

    `method_factory` replaces the registry's method for `config.method` (the bench's controls,
    which users cannot pick)."""
    if data is None:
        data = load_dataset(data_options(config), device)
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        # Model init draws from torch's global RNG; seed it locally and restore it afterwards.
        torch.manual_seed(stream_seed(config.seed, "model_init"))
        model = build_model(config.resolved_model, data.num_classes, data.input_shape,
                            dropout=config.dropout, width=config.model_width).to(device)
    settings = selection_settings(config, data.num_train, device)
    method = (method_factory(settings) if method_factory is not None
              else build_method(config.method, settings))
    bar = ProgressBar(config, data.num_train) if progress else None
    loop = TrainingLoop(config, data, model, method, device, tracker,
                        progress=bar.update if bar else None)
    loop.progress_bar = bar
    return loop


def train_untracked(config: RunConfig, data: DatasetSplits | None = None,
                    progress: bool = False,
                    method_factory: MethodFactory | None = None) -> TrainingOutcome:
    """Train without MLflow (benchmarks, tests): same loop, a null tracker."""
    device = resolve_device(config.device)
    with _threads(config), torch.random.fork_rng(devices=[]):
        torch.manual_seed(stream_seed(config.seed, "dropout"))  # dropout: the global RNG
        loop = build_training(config, tracking.NullTracker(), device, data, progress,
                              method_factory)
        try:
            return loop.run()
        finally:
            if loop.progress_bar:
                loop.progress_bar.close()


@contextlib.contextmanager
def _threads(config: RunConfig):
    if config.num_threads is None:
        yield
        return
    previous = torch.get_num_threads()
    torch.set_num_threads(config.num_threads)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def run_tags(config: RunConfig, device: torch.device) -> dict[str, str]:
    return {
        names.TAG_METHOD: config.method,
        names.TAG_DATASET: config.dataset,
        names.TAG_MODEL: config.resolved_model,
        names.TAG_SEED_STREAMS: SEED_SCHEME,
        **tracking.provenance_tags(device_description(device)),
    }


def default_run_name(config: RunConfig) -> str:
    parts = [config.method, config.dataset]
    if config.method in ("sb", "stale_sb", "random"):
        parts.append(f"b{config.beta:g}")
    if config.method == "stale_sb":
        parts.append(f"n{config.staleness}")
    if config.label_noise:
        parts.append(f"noise{config.label_noise:g}")
    parts.append(f"s{config.seed}")
    return "-".join(parts)


def check_before_compute(config: RunConfig, options: tracking.TrackingOptions) -> torch.device:
    """Everything that can be checked without compute: device and tracking store."""
    device = resolve_device(config.device)
    tracking.check_tracking_reachable(tracking.resolve_tracking_uri(options.tracking_uri))
    return device


def execute_run(config: RunConfig, options: tracking.TrackingOptions, *,
                parent_run_id: str | None = None, run_name: str | None = None,
                extra_tags: Mapping[str, str] | None = None, progress: bool = True,
                data: DatasetSplits | None = None,
                on_run_created: Callable[[str], None] | None = None,
                on_evaluation: Callable[[dict[str, float]], None] | None = None) -> RunResult:
    """Validate, then train one run recorded in MLflow. Raises on failure after ending the run
    FAILED/KILLED (diverged runs raise RunDiverged)."""
    device = check_before_compute(config, options)
    tags = {**run_tags(config, device), **(extra_tags or {})}
    if data is None:
        # Before the run exists: a missing dataset is a bad input, not a failed run.
        data = load_dataset(data_options(config), device)
    with _threads(config), torch.random.fork_rng(devices=[]):
        torch.manual_seed(stream_seed(config.seed, "dropout"))  # dropout: the global RNG
        with tracking.tracked_run(options, run_name=run_name or default_run_name(config),
                                  parent_run_id=parent_run_id, tags=tags,
                                  params=config.to_mlflow_params()) as tracker:
            if on_run_created is not None:
                on_run_created(tracker.run_id)
            tracker.log_text(config.to_json(), names.ARTIFACT_CONFIG)
            loop = build_training(config, tracker, device, data, progress)
            if on_evaluation is not None:
                loop.add_evaluation_hook(on_evaluation)
            tracker.log_dataset(loop.data.name, loop.data.digest, loop.data.source)
            try:
                outcome = loop.run()
            except RunDiverged:
                # A diverged run is a result (the noisy-label analysis needs exactly these
                # runs): its per-example table and curve so far are written before it ends FAILED.
                if loop.outcome is not None:
                    _log_run_artifacts(tracker, config, loop, loop.outcome)
                raise
            finally:
                if loop.progress_bar:
                    loop.progress_bar.close()
            tracker.log_metrics(outcome.final)
            tracker.set_tags({names.TAG_STOP_REASON: outcome.stop_reason})
            _log_run_artifacts(tracker, config, loop, outcome)
            return RunResult(tracker.run_id, outcome, config)


def _log_run_artifacts(tracker, config: RunConfig, loop: TrainingLoop,
                       outcome: TrainingOutcome) -> None:
    with tempfile.TemporaryDirectory(prefix="sbbench-artifacts-") as tmp:
        directory = Path(tmp)
        table = write_per_example_table(directory / names.ARTIFACT_PER_EXAMPLE, loop.data,
                                        outcome.per_example)
        tracker.log_artifact_file(table)
        if outcome.curve:
            plot = plot_error_vs_time(directory / names.ARTIFACT_ERROR_VS_TIME, outcome.curve,
                                      default_run_name(config))
            tracker.log_artifact_file(plot)
