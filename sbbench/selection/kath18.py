"""Katharopoulos & Fleuret 2018: importance sampling with presampling.

Each step takes a presample of B = k * b consecutive candidates of the shuffled epoch (every
example is a candidate once per epoch), scores all of them with a no-grad forward, samples b
with replacement proportionally to the score, and, in the unbiased variant, weights each sampled
loss by 1 / (B p_i). Importance sampling is switched on only while the estimated variance
reduction tau exceeds tau_th = (B + 3b) / (3b); until then the step trains on b uniformly chosen
candidates (the first b of the shuffled chunk) with no scoring forward, and tau is estimated from
the scores of that training batch, as in the K&F library.
"""

from __future__ import annotations

import math

import torch

from sbbench.selection.base import SelectionMethod, SelectionSettings
from sbbench.selection.types import BackwardBatch, ScoreForward


def logit_gradient_norm(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """||d CE / d logits||_2 per example, in closed form: ||softmax(z) - onehot(y)||_2."""
    probabilities = torch.softmax(logits.float(), dim=1)
    residual = probabilities - torch.nn.functional.one_hot(labels, logits.shape[1]).float()
    return residual.norm(dim=1)


def variance_reduction(scores: torch.Tensor) -> torch.Tensor:
    """tau = 1 / sqrt(1 - ||g - u||^2 / ||g||^2) for the normalised score distribution g.

    Algebra: with sum(g) = 1, 1 - ||g-u||^2/||g||^2 = u / ||g||^2, so tau = sqrt(n ||g||^2),
    which is >= 1 and needs no clamping.
    """
    scores = scores.float()
    total = scores.sum()
    n = scores.numel()
    g = torch.where(total > 0, scores / total.clamp_min(1e-30),
                    torch.full_like(scores, 1.0 / n))
    return torch.sqrt(n * (g * g).sum())


def importance_weights(probabilities: torch.Tensor, presample_size: int) -> torch.Tensor:
    """Unbiasing weights 1 / (B p_i): E_p[w_i loss_i] = mean of the B presample losses."""
    return 1.0 / (presample_size * probabilities)


class Katharopoulos18(SelectionMethod):
    name = "kath18"
    uses_selection_forward = True

    def __init__(self, settings: SelectionSettings):
        super().__init__(settings)
        b, k = settings.batch_size, settings.kath_presample_ratio
        self.tau_threshold = (k * b + 3 * b) / (3 * b)
        # The EMA starts at 0, as in the K&F library, so importance sampling waits for evidence.
        self.tau = 0.0
        self.is_on = False
        self.steps_with_importance = 0
        # Whether the current step's batch was importance-sampled (its scores already updated
        # tau in `select`): tau gets exactly one update per step.
        self._step_scored = False

    @property
    def candidates_per_forward(self) -> int:
        return self.settings.kath_presample_ratio * self.settings.batch_size

    def _score(self, logits: torch.Tensor, losses: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        if self.settings.kath_score == "gnorm":
            return logit_gradient_norm(logits, y)
        return losses.float()

    def _update_tau(self, scores: torch.Tensor) -> None:
        momentum = self.settings.kath_tau_momentum
        # One host sync per step: the switch is a host-side decision.
        self.tau = momentum * self.tau + (1 - momentum) * float(variance_reduction(scores))
        self.is_on = self.tau > self.tau_threshold

    def select(self, ids: torch.Tensor, x: torch.Tensor, y: torch.Tensor,
               score_forward: ScoreForward) -> list[BackwardBatch]:
        presample = int(ids.shape[0])
        # The last chunk of an epoch may be short: keep the ratio k.
        b = min(self.settings.batch_size,
                max(1, math.ceil(presample / self.settings.kath_presample_ratio)))
        self._step_scored = self.is_on
        if not self.is_on:
            return [BackwardBatch(ids[:b], x[:b], y[:b])]
        logits, losses = score_forward(ids, x, y)
        scores = self._score(logits, losses, y)
        self._update_tau(scores)
        total = scores.sum()
        probabilities = torch.where(total > 0, scores / total.clamp_min(1e-30),
                                    torch.full_like(scores, 1.0 / presample))
        chosen = torch.multinomial(probabilities, b, replacement=True, generator=self.generator)
        weights = None
        if self.settings.kath_weighting == "reweighted":
            weights = importance_weights(probabilities[chosen], presample)
        self.steps_with_importance += 1
        return [BackwardBatch(ids[chosen], x[chosen], y[chosen], weights)]

    def after_backward(self, batch: BackwardBatch, losses: torch.Tensor,
                       logits: torch.Tensor) -> None:
        # Not `not self.is_on`: a scored step may just have switched importance sampling off.
        if not self._step_scored:
            self._update_tau(self._score(logits.detach(), losses.detach(), batch.y))

    def extra_metrics(self) -> dict[str, float]:
        return {"kath_tau": self.tau, "kath_is_on": float(self.is_on)}
