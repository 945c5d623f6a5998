"""Drive selection methods the way the training loop does, without a model.

Losses come from per-example tables: `FakeScorer` is the no-grad selection forward (it records
every call), `Driver` runs epochs (start_epoch, select per forward batch, end_epoch) and calls
`after_backward` with the "training forward" losses of each backward batch, as the loop does.
Nothing here touches the global torch / NumPy RNGs: every random draw has its own generator.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import torch

from sbbench.selection import BackwardBatch, Scores, SelectionSettings, build_method

NUM_CLASSES = 4


def exponential_losses(n: int, seed: int) -> torch.Tensor:
    """iid Exp(1) losses (a stationary stream), strictly positive."""
    losses = torch.empty(n, dtype=torch.float64).exponential_(
        generator=torch.Generator().manual_seed(seed))
    return losses.clamp_min(1e-6).float()


def logits_matching(losses: torch.Tensor, y: torch.Tensor,
                    num_classes: int = NUM_CLASSES) -> torch.Tensor:
    """Logits whose cross-entropy against `y` is `losses`: zeros, and t on the true class.

    CE = log(e^t + C - 1) - t = L  <=>  t = log(C - 1) - L - log(1 - e^-L)   (L > 0).
    """
    losses = losses.double().clamp_min(1e-6)
    t = math.log(num_classes - 1) - losses - torch.log(-torch.expm1(-losses))
    logits = torch.zeros(losses.shape[0], num_classes, dtype=torch.float64)
    logits[torch.arange(losses.shape[0]), y] = t
    return logits.float()


class FakeScorer:
    """`score_forward(ids, x, y) -> Scores` that looks each example's loss up in a table."""

    def __init__(self, losses: torch.Tensor, num_classes: int = NUM_CLASSES):
        self.losses = losses
        self.num_classes = num_classes
        self.calls: list[torch.Tensor] = []  # the ids of every call, in order

    @property
    def examples(self) -> int:
        return sum(int(ids.shape[0]) for ids in self.calls)

    def __call__(self, ids: torch.Tensor, x: torch.Tensor, y: torch.Tensor) -> Scores:
        assert torch.equal(x[:, 0], ids.float()) and torch.equal(y, ids % self.num_classes)
        self.calls.append(ids.clone())
        losses = self.losses[ids].clone()
        return Scores(logits_matching(losses, y, self.num_classes), losses)


def make(method: str, num_train: int = 1000, **overrides):
    settings = SelectionSettings(**{"batch_size": 16, "num_train": num_train, "seed": 0,
                                    "prime_epochs": 0, **overrides})
    return build_method(method, settings)


def inputs(ids: torch.Tensor, num_classes: int = NUM_CLASSES):
    """x carries the id (so tests can check x and y travel with their example)."""
    return ids.float().unsqueeze(1), ids % num_classes


@dataclass
class Epoch:
    order: torch.Tensor
    select_batches: list[BackwardBatch] = field(default_factory=list)
    end_batches: list[BackwardBatch] = field(default_factory=list)
    scorer_calls: int = 0
    scored_examples: int = 0
    planned: bool = False  # decided whole by `plan_epoch`

    @property
    def batches(self) -> list[BackwardBatch]:
        return self.select_batches + self.end_batches

    @property
    def trained_ids(self) -> torch.Tensor:
        batches = self.batches
        return torch.cat([b.ids for b in batches]) if batches else torch.empty(0, dtype=torch.long)


class Driver:
    """The training loop's calling sequence, with table losses instead of a model.

    `train_losses` are what the training forward "computes" for a backward batch (default: the
    scorer's table), handed to `after_backward` with logits that match them.
    """

    def __init__(self, method, scorer: FakeScorer, train_losses: torch.Tensor | None = None,
                 order_seed: int | None = 1234, forward_batch: int | None = None,
                 use_plans: bool = True):
        self.method = method
        # False: never ask for an epoch plan, so every epoch goes batch by batch (the reference
        # that planned epochs must match).
        self.use_plans = use_plans
        self.scorer = scorer
        self.train_losses = scorer.losses if train_losses is None else train_losses
        self.num_train = method.settings.num_train
        self.order_generator = (None if order_seed is None
                                else torch.Generator().manual_seed(order_seed))
        self.forward_batch = forward_batch or method.candidates_per_forward

    def next_order(self) -> torch.Tensor:
        if self.order_generator is None:
            return torch.arange(self.num_train)
        return torch.randperm(self.num_train, generator=self.order_generator)

    def train(self, batch: BackwardBatch) -> None:
        assert torch.equal(batch.x[:, 0], batch.ids.float())
        assert torch.equal(batch.y, batch.ids % self.scorer.num_classes)
        losses = self.train_losses[batch.ids].clone()
        self.method.after_backward(batch, losses,
                                   logits_matching(losses, batch.y, self.scorer.num_classes))

    def follow(self, plan, record: Epoch) -> None:
        """A planned epoch as the loop runs it: after each forward batch, the backward batches it
        completes (cut from the kept ids in order); after the last, the partial rest."""
        kept, used = plan.kept_ids, 0
        for _, full in plan.forward_batches():
            for _ in range(full):
                ids = kept[used:used + plan.batch_size]
                used += plan.batch_size
                record.select_batches.append(BackwardBatch(ids, *inputs(ids)))
                self.train(record.select_batches[-1])
        if used < kept.shape[0]:
            record.end_batches.append(BackwardBatch(kept[used:], *inputs(kept[used:])))
            self.train(record.end_batches[-1])

    def run_epoch(self, epoch: int, order: torch.Tensor | None = None) -> Epoch:
        order = self.next_order() if order is None else order
        record = Epoch(order=order)
        calls_before, examples_before = len(self.scorer.calls), self.scorer.examples
        self.method.start_epoch(epoch)
        plan = self.method.plan_epoch(order) if self.use_plans else None
        record.planned = plan is not None
        if plan is not None:
            self.follow(plan, record)
        for start in range(0, order.shape[0] if plan is None else 0, self.forward_batch):
            ids = order[start:start + self.forward_batch]
            x, y = inputs(ids, self.scorer.num_classes)
            for batch in self.method.select(ids, x, y, self.scorer):
                record.select_batches.append(batch)
                self.train(batch)
        for batch in self.method.end_epoch() if plan is None else []:
            record.end_batches.append(batch)
            self.train(batch)
        record.scorer_calls = len(self.scorer.calls) - calls_before
        record.scored_examples = self.scorer.examples - examples_before
        return record


def reference_fraction_below(stream: np.ndarray, forward_batch: int, window: int) -> np.ndarray:
    """Brute-force percentile of every example of a stream scored batch by batch.

    The batch's own losses enter the window before it is scored (docs/methods.md, SB), so example i
    of the batch ending at `end` is ranked against stream[max(0, end - window):end].
    """
    out = np.empty(stream.shape[0])
    for start in range(0, stream.shape[0], forward_batch):
        end = min(start + forward_batch, stream.shape[0])
        held = np.sort(stream[max(0, end - window):end])
        out[start:end] = np.searchsorted(held, stream[start:end], side="left") / held.shape[0]
    return out


def z_score(observed: float, expected: float, variance: float) -> float:
    return (observed - expected) / math.sqrt(variance)
