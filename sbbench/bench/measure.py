"""Measurements behind `sbbench bench`: r, keep rate, per-epoch times, bookkeeping, tracking.

Every number is a median over interleaved repeats, so a background hiccup hits every method
alike. Formulas live in `bound.py` (tested on synthetic timings); this module only measures.
"""

from __future__ import annotations

import statistics
import tempfile
import time
from dataclasses import dataclass
from typing import Callable

import torch
import torch.nn.functional as F

from sbbench.config import RunConfig
from sbbench.data import DatasetSplits, load_dataset
from sbbench.models import build_model
from sbbench.selection import SelectionSettings, build_method
from sbbench.selection.types import Scores
from sbbench.train.run import data_options, resolve_device, train_untracked

NEVER_EVALUATE = 10**12  # examples: only the final, untimed evaluation


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def median_time_s(fn: Callable[[], None], device: torch.device, repeats: int,
                  warmup: int = 3) -> float:
    for _ in range(warmup):
        fn()
    _sync(device)
    samples = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        _sync(device)
        samples.append(time.perf_counter() - start)
    return statistics.median(samples)


@dataclass
class StepCosts:
    forward_nograd_s: float   # one no-grad eval-mode forward of a batch
    training_step_s: float    # forward + backward + optimizer step of a batch

    @property
    def r(self) -> float:
        return self.forward_nograd_s / self.training_step_s


def measure_step_costs(config: RunConfig, data: DatasetSplits, repeats: int) -> StepCosts:
    device = resolve_device(config.device)
    torch.manual_seed(config.seed)
    model = build_model(config.resolved_model, data.num_classes, data.input_shape).to(device)
    optimizer = torch.optim.SGD(model.parameters(), lr=1e-3, momentum=config.momentum)
    ids = torch.arange(config.batch_size, device=device)
    x, y = data.train_x[ids], data.train_y[ids]
    if data.prepare is not None:
        x = data.prepare(x)
    autocast = (torch.autocast("cuda", dtype=torch.bfloat16) if config.amp and
                device.type == "cuda" else None)

    def forward_nograd() -> None:
        model.eval()
        with torch.no_grad(), (autocast or _null()):
            F.cross_entropy(model(x).float(), y, reduction="none")
        model.train()

    def training_step() -> None:
        with autocast or _null():
            logits = model(x)
        loss = F.cross_entropy(logits.float(), y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    # Interleave the two so drifting clocks hit both alike.
    nograd, step = [], []
    for _ in range(5):
        nograd.append(median_time_s(forward_nograd, device, repeats))
        step.append(median_time_s(training_step, device, repeats))
    return StepCosts(statistics.median(nograd), statistics.median(step))


class _null:
    def __enter__(self):
        return None

    def __exit__(self, *exc):
        return False


def measure_bookkeeping_s(config: RunConfig, window: int, repeats: int) -> float:
    """Seconds per forward batch of SB's selection bookkeeping (history update, percentile,
    probability, Bernoulli draw, queue), with the scores given: everything but the forward."""
    device = resolve_device(config.device)
    b = config.batch_size
    settings = SelectionSettings(batch_size=b, num_train=b * 64, device=str(device),
                                 history_size=window, prime_epochs=0, beta=config.beta)
    method = build_method("sb", settings)
    method.start_epoch(0)
    generator = torch.Generator(device=device).manual_seed(0)
    losses = torch.rand(b, generator=generator, device=device)
    x = torch.zeros(b, 1, device=device)
    y = torch.zeros(b, dtype=torch.int64, device=device)
    ids = torch.arange(b, device=device)
    scores = Scores(torch.zeros(b, 2, device=device), losses)
    for _ in range(window // b + 2):  # fill the window first
        method.select(ids, x, y, lambda *_: scores)

    def one_batch() -> None:
        method.select(ids, x, y, lambda *_: scores)

    return median_time_s(one_batch, device, repeats * 20)


@dataclass
class EpochTimes:
    traditional_s: list[float]
    sb_s: list[float]
    stale_sb_s: list[float]
    keep_rate: float
    sb_phases: dict[str, float]


def measure_epoch_times(config: RunConfig, data: DatasetSplits, epochs: int,
                        repeats: int, progress: Callable[[str], None] = print) -> EpochTimes:
    """Training-clock seconds per epoch, selection on in every epoch (no priming)."""
    base = config.replace(prime_epochs=0, epochs=float(epochs),
                          eval_every_examples=NEVER_EVALUATE)
    times = {"traditional": [], "sb": [], "stale_sb": []}
    keep_rates, phases = [], []
    for repeat in range(repeats):
        for method in times:
            outcome = train_untracked(base.replace(method=method, seed=config.seed + repeat),
                                      data=data)
            times[method].append(outcome.final["total_train_time_s"] / epochs)
            if method == "sb":
                keep_rates.append(outcome.final["overall_keep_rate"])
                last = outcome.curve[-1]
                phases.append({k: last[k] / epochs for k in (
                    "time_forward_select_s", "time_forward_train_s", "time_backward_s",
                    "time_other_s")})
            progress(f"  repeat {repeat + 1}/{repeats} {method:<12} "
                     f"{times[method][-1]:.3f} s/epoch")
    sb_phases = {k: statistics.median(p[k] for p in phases) for k in phases[0]}
    return EpochTimes(times["traditional"], times["sb"], times["stale_sb"],
                      statistics.median(keep_rates), sb_phases)


def measure_tracking_overhead(config: RunConfig, data: DatasetSplits) -> dict[str, float]:
    """Time spent inside MLflow calls of a real tracked run against its training clock.

    The training clock itself pauses while logging, so the overhead a user pays is wall time:
    per-evaluation logging plus the run's setup and artifacts. Both are reported.
    """
    from sbbench import tracking
    from sbbench.train.run import execute_run

    timed = {"evaluation_logging_s": 0.0}
    original = tracking.MlflowTracker.log_evaluation

    def timed_log(self, metrics, step):
        start = time.perf_counter()
        original(self, metrics, step)
        timed["evaluation_logging_s"] += time.perf_counter() - start

    with tempfile.TemporaryDirectory(prefix="sbbench-bench-") as tmp:
        options = tracking.TrackingOptions(f"sqlite:///{tmp}/mlflow.db", "bench")
        tracking.MlflowTracker.log_evaluation = timed_log
        try:
            start = time.perf_counter()
            result = execute_run(config, options, progress=False, data=data)
            tracked_wall_s = time.perf_counter() - start
        finally:
            tracking.MlflowTracker.log_evaluation = original
        start = time.perf_counter()
        untracked = train_untracked(config, data=data)
        untracked_wall_s = time.perf_counter() - start
    train_s = result.outcome.final["total_train_time_s"]
    return {
        "train_time_s": train_s,
        "evaluations": len(result.outcome.curve),
        "evaluation_logging_s": timed["evaluation_logging_s"],
        "tracking_overhead": timed["evaluation_logging_s"] / train_s,
        "tracked_wall_s": tracked_wall_s,
        "untracked_wall_s": untracked_wall_s,
        "untracked_train_time_s": untracked.final["total_train_time_s"],
    }


def load_bench_data(config: RunConfig) -> DatasetSplits:
    return load_dataset(data_options(config), resolve_device(config.device))
