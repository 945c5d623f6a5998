"""StaleSB: Selective-Backprop whose selection losses are reused for `staleness` epochs."""

from __future__ import annotations

import torch

from sbbench.selection.base import SelectionSettings
from sbbench.selection.selective_backprop import SelectiveBackprop
from sbbench.selection.types import BackwardBatch, EpochPlan, ScoreForward


class StaleSelectiveBackprop(SelectiveBackprop):
    """Refresh epochs run a selection forward for every example; the others run none.

    Refresh epochs are the first epoch after priming and then every `staleness` epochs (one
    priming epoch, n = 3: epochs 1, 4, 7, ...). On stale epochs each candidate is ranked by its
    cached loss, which also enters the history. A backward pass overwrites the cached loss of the
    examples it trained on. Unlike the original research code, stale epochs forward nothing, pair
    each cached loss with its own example, and are not capped in backward steps.

    A stale epoch is decided whole before it starts (`plan_epoch`): one pass over the cached
    losses in candidate order, forward batch by forward batch, makes exactly the decisions the
    batch-by-batch path makes, and the loop loads only the kept examples.
    """

    name = "stale_sb"

    def __init__(self, settings: SelectionSettings):
        super().__init__(settings)
        if settings.staleness < 1:
            raise ValueError(f"staleness={settings.staleness}; allowed: an integer >= 1")
        # NaN marks "never scored"; refresh epochs score everyone before any stale epoch.
        self.cached_loss = torch.full((settings.num_train,), float("nan"), device=self.device)

    @property
    def refresh_epoch(self) -> bool:
        since_priming = self.epoch - self.settings.prime_epochs
        return since_priming >= 0 and since_priming % self.settings.staleness == 0

    def candidate_losses(self, ids: torch.Tensor, x: torch.Tensor, y: torch.Tensor,
                         score_forward: ScoreForward) -> torch.Tensor:
        # index_select / index_copy_: about half the cost of advanced indexing on the CPU.
        # (Ids are unique within a forward batch; a backward batch may repeat an id only under
        # partial_batch=carry, and then either of its equal-aged losses may stay.)
        if self.refresh_epoch:
            losses = score_forward(ids, x, y).losses
            self.cached_loss.index_copy_(0, ids, losses.float())
            return losses
        self._skip_forwards(len(ids))
        return self.cached_loss.index_select(0, ids)

    def plan_epoch(self, order: torch.Tensor) -> EpochPlan | None:
        """A stale epoch, decided now. Exact under partial_batch=flush: the queue starts the
        epoch empty and each example is a candidate once, so the backward passes of this epoch
        only rewrite cached losses that have already been read. (Under carry, examples queued
        last epoch are trained, and their losses rewritten, before they come up again.)"""
        if self.priming or self.refresh_epoch or self.settings.partial_batch == "carry" \
                or len(self.queue):
            return None
        n, forward_batch = int(order.shape[0]), self.candidates_per_forward
        kept = self.step.plan(self.cached_loss.index_select(0, order), self.draws.take(n),
                              forward_batch)
        return EpochPlan.from_kept(order, kept, forward_batch, self.settings.batch_size,
                                   on_candidates=self._skip_forwards)

    def _skip_forwards(self, candidates: int) -> None:
        self.selection_forwards_skipped += candidates

    def after_backward(self, batch: BackwardBatch, losses: torch.Tensor,
                       logits: torch.Tensor) -> None:
        self.cached_loss.index_copy_(0, batch.ids, losses.detach().float())
