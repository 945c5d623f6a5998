"""Selective-Backprop (Jiang et al. 2019) and its Random control."""

from __future__ import annotations

import torch

from sbbench.selection.backprop_queue import BackpropQueue
from sbbench.selection.base import SelectionMethod, SelectionSettings
from sbbench.selection.loss_window import LossWindow
from sbbench.selection.probability import bernoulli_keep, random_probability, sb_probability
from sbbench.selection.types import BackwardBatch, ScoreForward


class SelectiveBackprop(SelectionMethod):
    """Score candidates with a no-grad forward, keep each with P = percentile ** beta.

    Kept examples wait in a queue that emits backward batches of exactly `batch_size`. The first
    `prime_epochs` epochs are ordinary training and leave the loss history untouched.
    """

    name = "sb"
    uses_selection_forward = True

    def __init__(self, settings: SelectionSettings):
        super().__init__(settings)
        self.history = LossWindow(settings.history_size, self.device)
        self.queue = BackpropQueue(settings.batch_size)

    @property
    def priming(self) -> bool:
        return self.epoch < self.settings.prime_epochs

    def select(self, ids: torch.Tensor, x: torch.Tensor, y: torch.Tensor,
               score_forward: ScoreForward) -> list[BackwardBatch]:
        if self.priming:
            # Ordinary training, still through the queue so batches keep their exact size when
            # the forward batch differs from the backward batch.
            return self.queue.push(ids, x, y)
        losses = self.candidate_losses(ids, x, y, score_forward)
        self.history.add(losses)
        keep = bernoulli_keep(self.probability(losses), self.generator)
        # One nonzero (one host sync on CUDA) shared by the three gathers.
        kept = keep.to(ids.device).nonzero().squeeze(1)
        return self.queue.push(ids[kept], x[kept], y[kept])

    def candidate_losses(self, ids: torch.Tensor, x: torch.Tensor, y: torch.Tensor,
                         score_forward: ScoreForward) -> torch.Tensor:
        return score_forward(ids, x, y).losses

    def probability(self, losses: torch.Tensor) -> torch.Tensor:
        return sb_probability(self.history.fraction_below(losses), self.settings.beta,
                              self.settings.p_min)

    def end_epoch(self) -> list[BackwardBatch]:
        if self.settings.partial_batch == "carry":
            return []
        last = self.queue.flush()
        return [last] if last is not None else []


class RandomSelection(SelectiveBackprop):
    """Control: SB's pipeline (same selection forward, queue and priming) with P = U ** beta.

    It still pays for the selection forward so that its cost per epoch matches SB's: the only
    difference left is *which* examples get the backward passes.
    """

    name = "random"

    def probability(self, losses: torch.Tensor) -> torch.Tensor:
        return random_probability(losses.shape[0], self.settings.beta, self.settings.p_min,
                                  self.generator, self.device)
