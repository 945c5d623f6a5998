"""Selective-Backprop (Jiang et al. 2019) and its Random control."""

from __future__ import annotations

import torch

from sbbench.selection.backprop_queue import BackpropQueue, CpuBackpropQueue
from sbbench.selection.base import SelectionMethod, SelectionSettings
from sbbench.selection.loss_window import LossWindow
from sbbench.selection.probability import DrawStream, random_keep_thresholds, sb_keep_thresholds
from sbbench.selection.select_step import make_step, use_cpu_kernels
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
        self.compiled = use_cpu_kernels(self.device, settings.backend)
        self.history = LossWindow(settings.history_size, self.device,
                                  backend="numpy" if self.compiled else "torch")
        self.queue = (CpuBackpropQueue if self.compiled else BackpropQueue)(settings.batch_size)
        self.step = make_step(self.history, self.queue)
        self.draws = self.make_draws()

    def make_draws(self) -> DrawStream:
        """One threshold on the percentile per example (see `probability`)."""
        beta, p_min = self.settings.beta, self.settings.p_min
        return DrawStream(self.generator, self.device,
                          lambda uniforms: sb_keep_thresholds(uniforms, beta, p_min),
                          as_numpy=self.compiled)

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
        # Window update, percentile, keep decision (F > the draw's threshold) and queue: one
        # compiled call on the CPU, torch operators elsewhere (`select_step`).
        return self.step(losses, self.draws.take(int(ids.shape[0])), ids, x, y)

    def warm_up(self, ids: torch.Tensor, x: torch.Tensor, y: torch.Tensor) -> None:
        self.step.warm_up(ids, x, y)

    def candidate_losses(self, ids: torch.Tensor, x: torch.Tensor, y: torch.Tensor,
                         score_forward: ScoreForward) -> torch.Tensor:
        return score_forward(ids, x, y).losses

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
        """One keep decision per example from two uniforms, U < max(p_min, V ** beta), as a
        threshold no percentile passes (dropped) or every percentile passes (kept). The window
        is still updated, so Random pays SB's bookkeeping and differs only in what it keeps."""
        beta, p_min = self.settings.beta, self.settings.p_min
        return DrawStream(self.generator, self.device,
                          lambda u, v: random_keep_thresholds(u, v, beta, p_min),
                          uniforms_per_draw=2, as_numpy=self.compiled)
