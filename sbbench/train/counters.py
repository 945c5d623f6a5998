"""Hardware-independent counters (examples, not batches) and per-example statistics."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch


@dataclass
class Counters:
    examples_seen: int = 0          # candidates drawn from the data (epochs count these)
    selection_forwards: int = 0     # examples forwarded by a no-grad selection/scoring pass
    selection_forwards_skipped: int = 0  # StaleSB: examples ranked on a cached loss instead
    training_forwards: int = 0      # examples forwarded in train mode for a backward pass
    examples_backpropped: int = 0   # examples that took part in a backward pass
    optimizer_steps: int = 0
    epochs_completed: int = 0

    def as_metrics(self) -> dict[str, float]:
        return {
            "examples_seen": self.examples_seen,
            "examples_backpropped": self.examples_backpropped,
            "selection_forwards": self.selection_forwards,
            "selection_forwards_skipped": self.selection_forwards_skipped,
            "training_forwards": self.training_forwards,
            "optimizer_steps": self.optimizer_steps,
        }


@dataclass
class PerExampleStats:
    """Per training example: how often it was scored and backpropped, and its last loss."""

    times_scored: torch.Tensor
    times_backpropped: torch.Tensor
    last_loss: torch.Tensor

    @classmethod
    def zeros(cls, num_train: int, device: torch.device) -> "PerExampleStats":
        return cls(torch.zeros(num_train, dtype=torch.int64, device=device),
                   torch.zeros(num_train, dtype=torch.int64, device=device),
                   torch.full((num_train,), float("nan"), device=device))

    def record_scored(self, ids: torch.Tensor, losses: torch.Tensor) -> None:
        self.times_scored.index_put_((ids,), torch.ones_like(ids), accumulate=True)
        self.last_loss[ids] = losses.detach().float()

    def record_backpropped(self, ids: torch.Tensor, losses: torch.Tensor) -> None:
        # accumulate=True: Katharopoulos18 samples with replacement, ids may repeat in a batch.
        self.times_backpropped.index_put_((ids,), torch.ones_like(ids), accumulate=True)
        self.last_loss[ids] = losses.detach().float()
