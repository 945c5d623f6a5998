"""Measurements behind `sbbench bench`: r, keep rate, per-epoch times, bookkeeping, tracking.

Every number is a median over interleaved repeats, so a background hiccup hits every method
alike. Formulas live in `bound.py` (tested on synthetic timings); this module only measures.
"""

from __future__ import annotations

import statistics
import tempfile
import time
from dataclasses import dataclass, field
from typing import Callable

import torch
import torch.nn.functional as F

from sbbench.bench.free_selection import FreeSelection
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


BOOKKEEPING_BATCHES = 64  # distinct loss batches the isolated bookkeeping benchmark cycles through


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
    # Distinct batches in turn: the same batch every time let the branch predictor learn the
    # sort and the searches, and read up to 30% fast here.
    logits = torch.zeros(b, 2, device=device)
    scores = [Scores(logits, torch.rand(b, generator=generator, device=device))
              for _ in range(BOOKKEEPING_BATCHES)]
    x = torch.zeros(b, 1, device=device)
    y = torch.zeros(b, dtype=torch.int64, device=device)
    ids = torch.arange(b, device=device)
    calls = [0]

    def one_batch() -> None:
        batch_scores = scores[calls[0] % BOOKKEEPING_BATCHES]
        calls[0] += 1
        method.select(ids, x, y, lambda *_: batch_scores)

    for _ in range(window // b + 2):  # fill the window first
        one_batch()

    return median_time_s(one_batch, device, repeats * 20)


PHASE_KEYS = ("time_forward_select_s", "time_forward_train_s", "time_backward_s",
              "time_other_s")
EPOCH_METHODS = ("traditional", "sb", "stale_sb")


def measure_bookkeeping_in_loop_s(config: RunConfig, data: DatasetSplits,
                                  epochs: int = 1) -> float:
    """Seconds per forward batch of SB's bookkeeping inside a real training loop: from the end
    of the selection forward to the end of `select` (window, decision, gathers, queue).

    The isolated micro-benchmark runs the same code in a tight loop, with warm caches; right
    after a forward pass each library call costs several times more, and this is what an epoch
    pays.
    """
    from sbbench import tracking
    from sbbench.train.run import build_training

    device = resolve_device(config.device)
    loop = build_training(config.replace(method="sb", prime_epochs=0, epochs=float(epochs),
                                         eval_every_examples=NEVER_EVALUATE),
                          tracking.NullTracker(), device, data)
    method, select = loop.method, loop.method.select
    spent = {"s": 0.0, "batches": 0}

    def timed_select(ids, x, y, score_forward):
        forward_done = [0.0]

        def timed_forward(*args):
            scores = score_forward(*args)
            _sync(device)
            forward_done[0] = time.perf_counter()
            return scores

        batches = select(ids, x, y, timed_forward)
        _sync(device)
        spent["s"] += time.perf_counter() - forward_done[0]
        spent["batches"] += 1
        return batches

    method.select = timed_select
    loop.run()
    return spent["s"] / max(1, spent["batches"])


@dataclass
class EpochTimes:
    """Per-epoch training-clock seconds of each repeat (repeats interleaved in time)."""
    traditional_s: list[float]
    sb_s: list[float]
    stale_sb_s: list[float]
    sb_selection_forward_s: list[float]   # SB's forward (selecting) phase per epoch
    keep_rates: list[float]               # SB's measured keep rate per repeat
    phases: dict[str, dict[str, float]]   # method -> phase -> median seconds per epoch
    # SB's loop with the selection free (`free_selection`), at each repeat's SB keep rate.
    free_selection_s: list[float] = field(default_factory=list)
    orders: list[tuple[str, ...]] = field(default_factory=list)  # each repeat's run order
    repeat_wall_s: list[float] = field(default_factory=list)     # each repeat's wall time
    stop_reason: str | None = None        # why the repeats stopped (`stop`), None: fixed count

    @property
    def keep_rate(self) -> float:
        return statistics.median(self.keep_rates)

    @property
    def sb_phases(self) -> dict[str, float]:
        return self.phases["sb"]

    @property
    def repeats(self) -> int:
        return len(self.sb_s)


FREE_SELECTION = "free_selection"
WARMUP_KEEP_RATE = 0.25  # the free-selection control's keep rate before SB has measured s


def rotated_order(methods: tuple[str, ...], repeat: int) -> tuple[str, ...]:
    """Repeat k runs the methods rotated by k: over len(methods) repeats each method runs once
    in each position, so an order effect (the run after a long one, a warming machine) hits
    every method alike instead of always the same one."""
    k = repeat % len(methods)
    return methods[k:] + methods[:k]


def measure_epoch_times(config: RunConfig, data: DatasetSplits, epochs: int,
                        repeats: int, progress: Callable[[str], None] = print,
                        warmup: bool = True,
                        stop: Callable[[EpochTimes, float], str | None] | None = None,
                        max_repeats: int | None = None,
                        stale_epochs: int | None = None) -> EpochTimes:
    """Training-clock seconds per epoch, selection on in every epoch (no priming).

    Each repeat runs Traditional, SB, StaleSB and SB's loop with the selection free at the
    keep rate SB measured last (`free_selection`: the ceiling of the loop on this machine),
    in an order rotated by one method each repeat (`rotated_order`). One untimed epoch of each
    first: the first run in a process pays one-off costs (kernel selection, allocator growth)
    that were up to 30% of an epoch here.

    Without `stop`, exactly `repeats` repeats. With it, `stop(times so far, seconds the timed
    repeats took)` is asked after every repeat (its own rule holds the minimum), and the
    repeats end when it returns a reason, kept in `stop_reason`, or at
    max(`repeats`, `max_repeats`). StaleSB runs `stale_epochs` epochs (default `epochs`; a multiple of the
    staleness, so its refresh epochs weigh what they do in training), the others `epochs`.
    """
    stale_epochs = stale_epochs or epochs
    base = config.replace(prime_epochs=0, epochs=float(epochs),
                          eval_every_examples=NEVER_EVALUATE)
    limit = max(repeats, max_repeats or repeats) if stop is not None else repeats

    def run(method: str, run_config: RunConfig, keep_rate: float):
        if method != FREE_SELECTION:
            return train_untracked(run_config.replace(method=method), data=data)
        return train_untracked(run_config.replace(method="sb"), data=data,
                               method_factory=lambda settings: FreeSelection(settings,
                                                                             keep_rate))

    methods = (*EPOCH_METHODS, FREE_SELECTION)
    latest_keep_rate = WARMUP_KEEP_RATE
    if warmup:
        for method in methods:
            outcome = run(method, base.replace(epochs=1.0), latest_keep_rate)
            if method == "sb":  # the control's first timed run then needs no guess
                latest_keep_rate = outcome.final["overall_keep_rate"]
    times: dict[str, list[float]] = {method: [] for method in methods}
    phase_samples: dict[str, list[dict[str, float]]] = {method: [] for method in methods}
    keep_rates, orders, walls = [], [], []

    def collected(reason: str | None = None) -> EpochTimes:
        phases = {method: {k: statistics.median(p[k] for p in samples) for k in PHASE_KEYS}
                  for method, samples in phase_samples.items()}
        return EpochTimes(list(times["traditional"]), list(times["sb"]),
                          list(times["stale_sb"]),
                          [p["time_forward_select_s"] for p in phase_samples["sb"]],
                          list(keep_rates), phases, list(times[FREE_SELECTION]),
                          list(orders), list(walls), reason)

    started = time.perf_counter()
    reason = None
    for repeat in range(limit):
        repeat_start = time.perf_counter()
        order = rotated_order(methods, repeat)
        for method in order:
            run_epochs = stale_epochs if method == "stale_sb" else epochs
            outcome = run(method, base.replace(seed=config.seed + repeat,
                                               epochs=float(run_epochs)), latest_keep_rate)
            times[method].append(outcome.final["total_train_time_s"] / run_epochs)
            last = outcome.curve[-1]
            phase_samples[method].append({k: last[k] / run_epochs for k in PHASE_KEYS})
            if method == "sb":
                keep_rates.append(outcome.final["overall_keep_rate"])
                latest_keep_rate = keep_rates[-1]
            of = f"/{repeats}" if stop is None else f" (at most {limit})"
            progress(f"  repeat {repeat + 1}{of} {method:<14} {times[method][-1]:.3f} s/epoch")
        orders.append(order)
        walls.append(time.perf_counter() - repeat_start)
        if stop is not None:
            reason = stop(collected(), time.perf_counter() - started)
            if reason is not None:
                break
    return collected(reason)


def measure_tracking_overhead(config: RunConfig, data: DatasetSplits,
                              pairs: int = 3) -> dict[str, float]:
    """The same run with MLflow (sqlite) and with the null tracker, in back-to-back pairs
    whose order alternates (a fixed order measured an order effect of several percent here).

    `tracking_overhead` is what tracking adds while a run trains, per second of training clock:
    the time inside the per-evaluation logging calls (the clock is paused there, the user still
    waits) plus the training clock's inflation with MLflow against the null tracker (median over
    pairs: interference of anything MLflow does in the background). The loop's wall time is
    reported too, but its evaluations vary by several percent from run to run here, which swamps
    a difference this small. Also reported: the fixed cost of a tracked run (create, params,
    dataset, artifacts, final flush), which does not grow with training.
    """
    from sbbench import tracking
    from sbbench.train.run import execute_run

    logging_s = [0.0]
    original = tracking.MlflowTracker.log_evaluation

    def timed_log(self, metrics, step):
        start = time.perf_counter()
        original(self, metrics, step)
        logging_s[0] += time.perf_counter() - start

    samples: dict[str, list[dict[str, float]]] = {"tracked": [], "untracked": []}
    with tempfile.TemporaryDirectory(prefix="sbbench-bench-") as tmp:
        options = tracking.TrackingOptions(f"sqlite:///{tmp}/mlflow.db", "bench")
        # Create the store's schema first: a one-off cost of a new store, not of a run.
        tracking.ensure_experiment(tracking.get_client(options.tracking_uri), "bench")
        tracking.MlflowTracker.log_evaluation = timed_log
        try:
            for pair in range(pairs):
                order = ("tracked", "untracked") if pair % 2 == 0 else ("untracked", "tracked")
                for kind in order:
                    start = time.perf_counter()
                    if kind == "tracked":
                        outcome = execute_run(config, options, progress=False, data=data).outcome
                    else:
                        outcome = train_untracked(config, data=data)
                    samples[kind].append({**outcome.final,
                                          "run_wall_s": time.perf_counter() - start,
                                          "evaluations": len(outcome.curve)})
        finally:
            tracking.MlflowTracker.log_evaluation = original

    def median(kind: str, key: str) -> float:
        return statistics.median(sample[key] for sample in samples[kind])

    def fixed(sample: dict[str, float]) -> float:
        return sample["run_wall_s"] - sample["total_wall_time_s"]

    train_s = median("untracked", "total_train_time_s")
    clock_inflation = [t["total_train_time_s"] / u["total_train_time_s"] - 1
                       for t, u in zip(samples["tracked"], samples["untracked"])]
    logging_fraction = logging_s[0] / pairs / train_s
    return {
        "pairs": pairs,
        "train_time_s": train_s,
        "evaluations": samples["tracked"][0]["evaluations"],
        "evaluation_logging_s": logging_s[0] / pairs,
        "logging_fraction": logging_fraction,
        "clock_inflation": statistics.median(clock_inflation),
        "clock_inflation_per_pair": clock_inflation,
        "tracking_overhead": logging_fraction + statistics.median(clock_inflation),
        "loop_wall_tracked_s": median("tracked", "total_wall_time_s"),
        "loop_wall_untracked_s": median("untracked", "total_wall_time_s"),
        "train_clock_tracked_s": median("tracked", "total_train_time_s"),
        "train_clock_untracked_s": train_s,
        "fixed_run_cost_s": statistics.median(fixed(t) - fixed(u) for t, u in
                                              zip(samples["tracked"], samples["untracked"])),
        "tracked_wall_s": median("tracked", "run_wall_s"),
        "untracked_wall_s": median("untracked", "run_wall_s"),
    }


def load_bench_data(config: RunConfig) -> DatasetSplits:
    return load_dataset(data_options(config), resolve_device(config.device))
