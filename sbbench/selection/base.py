"""The interface every selection method implements, and Traditional (no selection).

The training loop drives a method like this, once per epoch:

    method.start_epoch(epoch)
    (if method.plan_epoch(order) returns a plan, the epoch follows it instead; see EpochPlan)
    for ids, x, y in forward batches of `method.candidates_per_forward` examples:
        for batch in method.select(ids, x, y, score_forward):
            train on batch; method.after_backward(batch, per_example_losses, logits)
    for batch in method.end_epoch():
        train on batch; method.after_backward(...)

A method never sees the model: selection forwards go through `score_forward`, which the loop
times and counts. Methods hold their own seeded torch.Generator, so nothing else in the process
can shift their random draws.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from sbbench.seeds import stream_seed
from sbbench.selection.types import BackwardBatch, EpochPlan, ScoreForward


@dataclass(frozen=True)
class SelectionSettings:
    """Everything a method may need, independent of where the config comes from."""

    batch_size: int
    num_train: int
    seed: int = 0  # the run seed; the method draws from its "selection" stream (sbbench.seeds)
    device: str = "cpu"
    forward_batch_size: int | None = None
    beta: float = 3.0
    p_min: float = 0.0
    history_size: int = 1024
    prime_epochs: int = 1
    partial_batch: str = "flush"  # or "carry"
    # SB's bookkeeping: "auto" = compiled kernels on the CPU, torch operators elsewhere;
    # "torch" = torch operators everywhere (the device path, runnable on the CPU for tests).
    backend: str = "auto"
    staleness: int = 1
    kath_presample_ratio: int = 3
    kath_score: str = "gnorm"
    kath_weighting: str = "reweighted"
    kath_tau_momentum: float = 0.9


class SelectionMethod:
    """Base class: a method that trains on every candidate (that is Traditional)."""

    name = "base"
    uses_selection_forward = False

    def __init__(self, settings: SelectionSettings):
        self.settings = settings
        self.device = torch.device(settings.device)
        self.generator = torch.Generator(device=self.device)
        # The run seed's own selection stream (sbbench.seeds): never the stream that initialised
        # the model or orders the data.
        self.generator.manual_seed(stream_seed(settings.seed, "selection"))
        self.epoch = 0
        # Counters the loop logs; examples, not batches.
        self.selection_forwards_skipped = 0

    @property
    def candidates_per_forward(self) -> int:
        return self.settings.forward_batch_size or self.settings.batch_size

    def start_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def select(self, ids: torch.Tensor, x: torch.Tensor, y: torch.Tensor,
               score_forward: ScoreForward) -> list[BackwardBatch]:
        return [BackwardBatch(ids, x, y)]

    def end_epoch(self) -> list[BackwardBatch]:
        return []

    def plan_epoch(self, order: torch.Tensor) -> EpochPlan | None:
        """Decide the whole epoch now, from its candidate order alone, when no decision needs a
        forward pass: the loop then loads and trains only the kept examples. None (the default):
        the loop calls `select` forward batch by forward batch and `end_epoch` after the last.
        Called after `start_epoch`."""
        return None

    def warm_up(self, ids: torch.Tensor, x: torch.Tensor, y: torch.Tensor) -> None:
        """One-off preparation for batches like this one (compiling kernels), called before the
        training clock starts; must not change any state that decisions depend on."""

    def after_backward(self, batch: BackwardBatch, losses: torch.Tensor,
                       logits: torch.Tensor) -> None:
        """Called with the training forward's per-example losses (detached)."""

    def extra_metrics(self) -> dict[str, float]:
        """Method-specific values logged at every evaluation."""
        return {}


class Traditional(SelectionMethod):
    """Plain minibatch SGD: every candidate is trained on, no selection forward."""

    name = "traditional"

    @property
    def candidates_per_forward(self) -> int:
        return self.settings.batch_size
