"""Small value types shared by the selection methods and the training loop."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, NamedTuple

import torch


@dataclass
class BackwardBatch:
    """The examples of one optimizer step.

    `weights` is None for an unweighted mean loss; Katharopoulos18's unbiased variant sets
    per-example importance weights 1 / (B * p_i).
    """

    ids: torch.Tensor
    x: torch.Tensor
    y: torch.Tensor
    weights: torch.Tensor | None = None

    def __len__(self) -> int:
        return int(self.ids.shape[0])


class Scores(NamedTuple):
    """What one selection forward returns: raw logits and per-example cross-entropy."""

    logits: torch.Tensor
    losses: torch.Tensor


# The training loop hands this to a method: it runs the no-grad selection forward of the given
# candidates (in the configured score mode), times it as "forward (selecting)" and records which
# examples were scored. Methods never touch the model directly.
ScoreForward = Callable[[torch.Tensor, torch.Tensor, torch.Tensor], Scores]
