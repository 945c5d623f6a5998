"""Selective-Backprop (Jiang et al. 2019) and its Random control."""

from __future__ import annotations

import torch

from sbbench.selection.backprop_queue import BackpropQueue
from sbbench.selection.base import SelectionMethod, SelectionSettings
from sbbench.selection.loss_window import LossWindow
from sbbench.selection.probability import (DrawStream, kept_positions, random_keeps,
                                           sb_keep_thresholds)
from sbbench.selection.types import BackwardBatch, ScoreForward


class SelectiveBackprop(SelectionMethod):
    """Score candidates with a no-grad forward, keep each with P = max(p_min, percentile ** beta).

    Kept examples wait in a queue that emits backward batches of exactly `batch_size`. The first
    `prime_epochs` epochs are ordinary training and leave the loss history untouched.
    """

    name = "sb"
    uses_selection_forward = True

    def __init__(self, settings: SelectionSettings):
        super().__init__(settings)
        self.history = LossWindow(settings.history_size, self.device)
        self.queue = BackpropQueue(settings.batch_size)
        self.draws = self.make_draws()

    def make_draws(self) -> DrawStream:
        """One threshold on the percentile per example (see `probability`)."""
        beta, p_min = self.settings.beta, self.settings.p_min
        return DrawStream(self.generator, self.device,
                          lambda uniforms: sb_keep_thresholds(uniforms, beta, p_min))

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
        # The batch enters the window, then is ranked against it: one call, one conversion
        # (NumPy arrays from here on on the CPU, device tensors elsewhere).
        fraction_below = self.history.add_and_rank(losses)
        # One set of kept positions (one host sync on CUDA) shared by the three gathers. The
        # positions live where the decision was made: the method's device, which is where the
        # loop keeps the data (NumPy decisions: CPU data).
        kept = kept_positions(self.keep_mask(fraction_below))
        return self.queue.push(ids.index_select(0, kept), x.index_select(0, kept),
                               y.index_select(0, kept))

    def candidate_losses(self, ids: torch.Tensor, x: torch.Tensor, y: torch.Tensor,
                         score_forward: ScoreForward) -> torch.Tensor:
        return score_forward(ids, x, y).losses

    def keep_mask(self, fraction_below):
        """Kept iff U < max(p_min, F ** beta), as F > (the draw's threshold)."""
        return fraction_below > self.draws.take(len(fraction_below))

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

    def make_draws(self) -> DrawStream:
        """One keep decision per example from two uniforms: U < max(p_min, V ** beta)."""
        beta, p_min = self.settings.beta, self.settings.p_min
        return DrawStream(self.generator, self.device,
                          lambda u, v: random_keeps(u, v, beta, p_min), uniforms_per_draw=2)

    def keep_mask(self, fraction_below):
        # Blind to the percentile; the window is still updated in `select`, so Random pays
        # SB's bookkeeping too and differs from it only in which examples it keeps.
        return self.draws.take(len(fraction_below))
