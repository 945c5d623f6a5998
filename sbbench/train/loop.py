"""One training run: the timed loop, the untimed evaluation schedule, the stopping rules.

The loop knows nothing about MLflow: it reports through a tracker object (`log_evaluation`)
and returns a `TrainingOutcome`. Selection decisions come from a `SelectionMethod`, which never
sees the model; the loop gives it a timed, counted `score_forward`.
"""

from __future__ import annotations

import contextlib
import functools
import math
import time
from dataclasses import dataclass, field
from typing import Any, Callable

import torch
import torch.nn.functional as F

from sbbench.config import RunConfig
from sbbench.data import DatasetSplits, TrainBatcher
from sbbench.seeds import stream_seed
from sbbench.selection import BackwardBatch, Scores, SelectionMethod
from sbbench.train.clock import PhaseClock
from sbbench.train.counters import Counters, PerExampleStats
from sbbench.train.errors import RunDiverged
from sbbench.train.evaluate import error_and_loss
from sbbench.train.schedules import EvaluationSchedule, StepLearningRate


@dataclass
class TrainingOutcome:
    curve: list[dict[str, float]] = field(default_factory=list)  # one entry per evaluation
    final: dict[str, float] = field(default_factory=dict)
    per_example: PerExampleStats | None = None
    stop_reason: str = "budget"


_NO_AUTOCAST = contextlib.nullcontext()  # reusable: one object instead of one per forward

# `recompute_bn_before_eval`: training batches (of batch_size) the statistics are re-estimated on.
BN_RECOMPUTE_BATCHES = 32

# Divergence: besides a non-finite training loss, parameters or validation loss, a run has
# diverged when it collapses to chance level after it had clearly learned:
#   validation error >= 1 - CHANCE_COLLAPSE_ACCURACY_FACTOR / C   (accuracy at most 1.5 x chance)
#   after its best validation error so far was <= LEARNED_FRACTION_OF_CHANCE x (1 - 1 / C)
# With C = 10 classes: error >= 85% after having been <= 45%. A run that never learned is slow,
# not diverged, and keeps training.
CHANCE_COLLAPSE_ACCURACY_FACTOR = 1.5
LEARNED_FRACTION_OF_CHANCE = 0.5


def collapsed_to_chance(val_error: float, best_val_error: float, num_classes: int) -> bool:
    """The chance-collapse rule above (C = `num_classes`)."""
    chance_error = 1.0 - 1.0 / num_classes
    return (best_val_error <= LEARNED_FRACTION_OF_CHANCE * chance_error
            and val_error >= 1.0 - CHANCE_COLLAPSE_ACCURACY_FACTOR / num_classes)


class TrainingLoop:
    def __init__(self, config: RunConfig, data: DatasetSplits, model: torch.nn.Module,
                 method: SelectionMethod, device: torch.device, tracker: Any,
                 progress: Callable[[dict[str, float]], None] | None = None):
        self.config = config
        self.data = data
        self.model = model
        self._modules = list(model.modules())
        self.method = method
        self.device = device
        self.tracker = tracker
        self.progress = progress
        self.optimizer = torch.optim.SGD(model.parameters(), lr=config.lr,
                                         momentum=config.momentum, nesterov=config.nesterov
                                         and config.momentum > 0,
                                         weight_decay=config.weight_decay)
        self.lr_schedule = StepLearningRate(config.lr, config.lr_milestones, config.lr_gamma,
                                            data.num_train)
        self.eval_schedule = EvaluationSchedule(config.eval_every_examples)
        self.clock = PhaseClock(device)
        self.counters = Counters()
        self.per_example = PerExampleStats.zeros(data.num_train, device)
        self.budget_examples = math.ceil(config.epochs * data.num_train)
        self.use_amp = config.amp and device.type == "cuda"
        self._score_in_eval_mode = config.score_mode != "train"
        # Running sums stay on the device between evaluations: no per-step host sync.
        self._loss_sum = torch.zeros((), device=device)
        self._loss_count = 0
        self._last_eval_counts = (0, 0)  # (seen, backpropped) at the previous evaluation
        self._current_lr = None
        self._best_val_error = math.inf
        self.outcome: TrainingOutcome | None = None  # the run's outcome so far (also on failure)
        self._evaluation_hooks: list[Callable[[dict[str, float]], None]] = []
        self._batchnorms = [m for m in self._modules
                            if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)
                            and m.track_running_stats]
        self._bn_generator = torch.Generator(device=device)
        self._bn_generator.manual_seed(stream_seed(config.seed, "batchnorm_recompute"))
        # Data order and augmentation get their own streams of the run seed (sbbench.seeds),
        # distinct from model init, label noise and the method's selection stream.
        order_generator = torch.Generator(device=device)
        order_generator.manual_seed(stream_seed(config.seed, "data_order"))
        augment_generator = torch.Generator(device=device)
        augment_generator.manual_seed(stream_seed(config.seed, "augmentation"))
        self.batcher = TrainBatcher(data, method.candidates_per_forward, order_generator,
                                    augment_generator=augment_generator)
        # Compiled selection kernels are compiled (or loaded from cache) here, not on the clock.
        method.warm_up(*self.batcher.sample_batch())

    def add_evaluation_hook(self, hook: Callable[[dict[str, float]], None]) -> None:
        """Called after each evaluation is logged (sweeps report to pruners through it)."""
        self._evaluation_hooks.append(hook)

    # -- pieces ---------------------------------------------------------------------------------

    def _autocast(self):
        if self.use_amp:
            return torch.autocast(device_type="cuda", dtype=torch.bfloat16)
        return _NO_AUTOCAST

    def _set_training(self, training: bool) -> None:
        """model.train(flag) without nn.Module's recursive, __setattr__-heavy walk: it cost
        ~70 ms per MNIST-1D epoch when toggled twice per selection forward."""
        for module in self._modules:
            module.__dict__["training"] = training

    def score_forward(self, ids: torch.Tensor, x: torch.Tensor, y: torch.Tensor) -> Scores:
        """The no-grad selection forward, in the configured score mode, timed and counted."""
        with self.clock.phase("forward_select"):
            # eval mode: BatchNorm uses (and leaves untouched) its running statistics.
            if self._score_in_eval_mode:
                self._set_training(False)
            with torch.no_grad(), self._autocast():
                logits = self.model(x)
            losses = F.cross_entropy(logits.float(), y, reduction="none")
            if self._score_in_eval_mode:
                self._set_training(True)
        self.counters.selection_forwards += int(ids.shape[0])
        self.per_example.record_scored(ids, losses)
        return Scores(logits, losses)

    def _set_lr(self) -> None:
        unit = self.config.lr_schedule_unit
        count = (self.counters.examples_seen if unit == "examples_seen"
                 else self.counters.examples_backpropped)
        lr = self.lr_schedule.lr_at(count)
        if lr != self._current_lr:
            for group in self.optimizer.param_groups:
                group["lr"] = lr
            self._current_lr = lr

    def train_step(self, batch: BackwardBatch) -> None:
        self._set_lr()
        with self.clock.phase("forward_train"):
            with self._autocast():
                logits = self.model(batch.x)
            losses = F.cross_entropy(logits.float(), batch.y, reduction="none")
            if batch.weights is None:
                loss = losses.mean()
            else:
                loss = (losses * batch.weights).mean()
        with self.clock.phase("backward"):
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
        self.optimizer.step()
        n = len(batch)
        detached = losses.detach()
        self._loss_sum += detached.sum()
        self._loss_count += n
        self.counters.training_forwards += n
        self.counters.examples_backpropped += n
        self.counters.optimizer_steps += 1
        self.per_example.record_backpropped(batch.ids, detached)
        self.method.after_backward(batch, detached, logits.detach())

    # -- BatchNorm statistics for evaluation ----------------------------------------------------

    def _evaluation_statistics(self):
        """Context for measuring: with `recompute_bn_before_eval`, BatchNorm running statistics
        re-estimated on uniformly drawn training batches, restored afterwards; else nothing."""
        if not self.config.recompute_bn_before_eval or not self._batchnorms:
            return contextlib.nullcontext()
        return self._recomputed_batchnorm()

    @contextlib.contextmanager
    def _recomputed_batchnorm(self):
        saved = [(m, m.running_mean.clone(), m.running_var.clone(),
                  m.num_batches_tracked.clone(), m.momentum) for m in self._batchnorms]
        try:
            self._estimate_batchnorm_statistics()
            yield
        finally:
            for module, mean, var, tracked, momentum in saved:
                module.running_mean.copy_(mean)
                module.running_var.copy_(var)
                module.num_batches_tracked.copy_(tracked)
                module.momentum = momentum

    @torch.no_grad()
    def _estimate_batchnorm_statistics(self) -> None:
        """Cumulative (momentum None) running statistics of BN_RECOMPUTE_BATCHES training
        batches of `batch_size`, drawn uniformly without replacement from the training set (own
        seed stream), prepared and augmented as in training, forwarded in train mode. The global
        RNG (dropout) is forked, so training draws stay as they were."""
        data, b = self.data, self.config.batch_size
        # Whole batches only: a last batch of one example cannot be normalised in train mode.
        count = min(data.num_train, max(1, min(BN_RECOMPUTE_BATCHES, data.num_train // b)) * b)
        ids = torch.randperm(data.num_train, generator=self._bn_generator,
                             device=self._bn_generator.device)[:count].to(data.train_x.device)
        for module in self._batchnorms:
            module.reset_running_stats()
            module.momentum = None  # cumulative average over the batches below
        was_training = self.model.training
        self._set_training(True)
        devices = [self.device] if self.device.type == "cuda" else []
        with torch.random.fork_rng(devices=devices), self._autocast():
            for chunk in ids.split(b):
                x = self.batcher._ready(data.train_x.index_select(0, chunk), self._bn_generator)
                self.model(x)
        self._set_training(was_training)

    def evaluate(self) -> dict[str, float]:
        """Untimed: the clock is paused while evaluating and logging. Raises RunDiverged (after
        applying the per-example records) when the run has diverged: a non-finite training loss
        since the last evaluation, non-finite parameters, a non-finite validation loss, or a
        collapse to chance level after having learned (`collapsed_to_chance`)."""
        with self.clock.paused():
            self.per_example.flush()
            seen = self.counters.examples_seen
            # No optimizer step since the last evaluation: no training loss (missing, not 0).
            train_loss = (float(self._loss_sum) / self._loss_count if self._loss_count
                          else None)
            if train_loss is not None and not math.isfinite(train_loss):
                raise RunDiverged(f"non-finite training loss ({train_loss}) before "
                                  f"{seen} examples seen")
            if not self._parameters_finite():
                raise RunDiverged(f"non-finite parameters at {seen} examples seen")
            with self._evaluation_statistics():
                val_error, val_loss = self._error_and_loss(self.data.val_x, self.data.val_y)
                test_error = (self._error_on(self.data.test_x, self.data.test_y)
                              if self.config.test_every_evaluation else None)
            if not math.isfinite(val_loss):
                raise RunDiverged(f"non-finite validation loss ({val_loss}) at {seen} examples "
                                  "seen")
            if collapsed_to_chance(val_error, self._best_val_error, self.data.num_classes):
                raise RunDiverged(
                    f"collapsed to chance level: validation error {val_error:.4f} at {seen} "
                    f"examples seen after a best of {self._best_val_error:.4f} "
                    f"({self.data.num_classes} classes)")
            self._best_val_error = min(self._best_val_error, val_error)
            backpropped = self.counters.examples_backpropped
            last_seen, last_backpropped = self._last_eval_counts
            metrics = {
                "val_error": val_error,
                "val_loss": val_loss,
                **({"train_loss": train_loss} if train_loss is not None else {}),
                "train_time_s": self.clock.elapsed_s(),
                **self.counters.as_metrics(),
                "keep_rate": (backpropped - last_backpropped) / max(1, seen - last_seen),
                "epoch": seen / self.data.num_train,
                "lr": self._current_lr if self._current_lr is not None else self.config.lr,
                **self.clock.breakdown(),
                **self.method.extra_metrics(),
            }
            if test_error is not None:
                metrics["test_error"] = test_error
            self.counters.selection_forwards_skipped = self.method.selection_forwards_skipped
            metrics["selection_forwards_skipped"] = self.counters.selection_forwards_skipped
            self._loss_sum.zero_()
            self._loss_count = 0
            self._last_eval_counts = (seen, backpropped)
            self.tracker.log_evaluation(metrics, step=seen)
            if self.progress is not None:
                self.progress(metrics)
            for hook in self._evaluation_hooks:
                hook(metrics)
        return metrics

    def _parameters_finite(self) -> bool:
        params = [p.detach() for p in self.model.parameters()]
        if not params:
            return True
        return bool(torch.stack([torch.isfinite(p).all() for p in params]).all())

    def _error_and_loss(self, x: torch.Tensor, y: torch.Tensor) -> tuple[float, float]:
        return error_and_loss(self.model, x, y, self.data.prepare,
                              self._autocast if self.use_amp else None)

    def _error_on(self, x: torch.Tensor, y: torch.Tensor) -> float:
        return self._error_and_loss(x, y)[0]

    def final_test_error(self, outcome: TrainingOutcome) -> float:
        """Test error of the model as the run ends (untimed), logged at the last step.

        Time to target is read off validation error; the test set only grades the final model,
        so it is evaluated once, not at every evaluation (unless `test_every_evaluation`)."""
        last = outcome.curve[-1]
        if "test_error" in last:
            return last["test_error"]
        with self.clock.paused(), self._evaluation_statistics():
            test_error = self._error_on(self.data.test_x, self.data.test_y)
        with self.clock.paused():
            self.tracker.log_evaluation({"test_error": test_error},
                                        step=int(last["examples_seen"]))
        last["test_error"] = test_error
        return test_error

    def _epoch_schedule(self, order: torch.Tensor):
        """An epoch as (per forward batch: its candidates and a callable that processes it,
        returning the backward batches to train after it; then a callable giving the epoch's
        last batches). Nothing of a forward batch is selected or trained before its callable.

        Batch by batch, a method selects among each loaded forward batch. When it can decide the
        whole epoch from the order alone (`plan_epoch`: StaleSB's stale epochs), only the kept
        examples are loaded, in backward batches, each trained at the same point of the epoch.
        """
        plan = self.method.plan_epoch(order)
        if plan is None:
            selected = ((int(ids.shape[0]),
                         functools.partial(self.method.select, ids, x, y, self.score_forward))
                        for ids, x, y in self.batcher.batches(order))
            return selected, self.method.end_epoch
        kept = self.batcher.batches(plan.kept_ids, plan.batch_size)

        def planned_batches(candidates: int, full: int) -> list[BackwardBatch]:
            if plan.on_candidates is not None:
                plan.on_candidates(candidates)
            return [BackwardBatch(*next(kept)) for _ in range(full)]

        planned = ((candidates, functools.partial(planned_batches, candidates, full))
                   for candidates, full in zip(plan.candidates, plan.full_batches_after))
        return planned, lambda: [BackwardBatch(*rest) for rest in kept]  # the partial last

    # -- the run --------------------------------------------------------------------------------

    def _budget_left(self) -> bool:
        if self.counters.examples_seen >= self.budget_examples:
            return False
        budget_s = self.config.time_budget_s
        return budget_s is None or self.clock.elapsed_s() < budget_s

    def _after_evaluation(self, outcome: TrainingOutcome, metrics: dict[str, float]) -> bool:
        """Record the evaluation; True when the run should stop at the target."""
        outcome.curve.append(metrics)
        target = self.config.target_val_error
        if target is not None and metrics["val_error"] <= target:
            outcome.stop_reason = "target"
            return True
        return False

    def _evaluate_inside(self, outcome: TrainingOutcome, candidates: int) -> bool:
        """Evaluation points (and the example budget's end) that fall strictly inside the next
        forward batch, handled before it is processed: its candidates up to the point count as
        seen, like examples waiting in SB's queue, and the point is evaluated exactly. So every
        method evaluates at the same examples-seen counts whatever its forward batch
        (Katharopoulos18's presample is 3 x the batch; SB may use a larger one), and no batch is
        cut: the training itself never depends on the evaluation schedule (a cut batch would
        make a small, noisy optimizer step right before each evaluation). True: stop the run
        (target reached, time or example budget spent)."""
        seen = self.counters.examples_seen
        end = seen + candidates
        schedule = self.eval_schedule
        while schedule.next_at < end and schedule.next_at <= self.budget_examples:
            self.counters.examples_seen = schedule.next_at
            schedule.advance(self.counters.examples_seen)
            if self._after_evaluation(outcome, self.evaluate()) or not self._budget_left():
                return True
        if self.budget_examples < end:
            self.counters.examples_seen = self.budget_examples  # the rest is never drawn
            return True
        self.counters.examples_seen = seen
        return False

    def run(self) -> TrainingOutcome:
        outcome = self.outcome = TrainingOutcome(per_example=self.per_example)
        self.model.train()
        # Wall time of the whole loop: training clock + evaluations + logging (what a user
        # waits for; the tracking-overhead benchmark compares it with and without MLflow).
        wall_start = time.perf_counter()
        self.clock.start()
        stop = False
        epoch = 0
        while not stop and self._budget_left():
            self.method.start_epoch(epoch)
            last_batch = len(self.batcher) - 1
            forward_batches, end_of_epoch = self._epoch_schedule(self.batcher.epoch_order())
            for index, (candidates, process) in enumerate(forward_batches):
                stop = self._evaluate_inside(outcome, candidates)
                if stop:
                    break
                for batch in process():
                    self.train_step(batch)
                self.counters.examples_seen += candidates
                if index == last_batch:
                    # Flush before evaluating, so an evaluation on the epoch boundary sees it.
                    for batch in end_of_epoch():
                        self.train_step(batch)
                    self.counters.epochs_completed += 1
                if self.eval_schedule.due(self.counters.examples_seen):
                    self.eval_schedule.advance(self.counters.examples_seen)
                    stop = self._after_evaluation(outcome, self.evaluate())
                if stop or not self._budget_left():
                    break
            epoch += 1
        if outcome.stop_reason != "target" and self.config.time_budget_s is not None \
                and self.counters.examples_seen < self.budget_examples:
            outcome.stop_reason = "time_budget"
        if not outcome.curve or outcome.curve[-1]["examples_seen"] != self.counters.examples_seen:
            self._after_evaluation(outcome, self.evaluate())
        final_test_error = self.final_test_error(outcome)
        self.clock.pause()
        wall_s = time.perf_counter() - wall_start
        last = outcome.curve[-1]
        outcome.final = {
            "final_val_error": last["val_error"],
            "final_test_error": final_test_error,
            "total_train_time_s": last["train_time_s"],
            "total_wall_time_s": wall_s,
            "total_examples_seen": self.counters.examples_seen,
            "total_examples_backpropped": self.counters.examples_backpropped,
            "total_selection_forwards": self.counters.selection_forwards,
            "total_selection_forwards_skipped": self.counters.selection_forwards_skipped,
            "total_optimizer_steps": self.counters.optimizer_steps,
            "total_epochs": self.counters.examples_seen / self.data.num_train,
            "overall_keep_rate": self.counters.examples_backpropped
            / max(1, self.counters.examples_seen),
        }
        return outcome
