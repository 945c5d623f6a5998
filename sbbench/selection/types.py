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


@dataclass
class EpochPlan:
    """A whole epoch decided before it starts, from the candidate order alone.

    StaleSB's stale epochs need no forward pass: each decision reads a cached loss. With the
    epoch decided up front the loop loads and trains only the kept examples, and still trains
    each backward batch at the same point in the candidate stream as the batch-by-batch path
    (after the forward batch that completes it; the partial last one after the epoch's last).
    """

    kept_ids: torch.Tensor          # kept examples, in candidate order (the queue's FIFO order)
    candidates: list[int]           # per forward batch: its number of candidates
    full_batches_after: list[int]   # per forward batch: backward batches complete after it
    batch_size: int
    # Called with each forward batch's candidates as the loop reaches it (counters that must
    # advance with the candidate stream, not jump at the start of the epoch).
    on_candidates: Callable[[int], None] | None = None

    @classmethod
    def from_kept(cls, order: torch.Tensor, kept_positions: torch.Tensor, forward_batch: int,
                  batch_size: int, on_candidates: Callable[[int], None] | None = None
                  ) -> "EpochPlan":
        """kept_positions: sorted positions in `order` of the kept candidates."""
        n = int(order.shape[0])
        n_forward = -(-n // forward_batch)
        candidates = [forward_batch] * n_forward
        if n_forward:
            candidates[-1] = n - forward_batch * (n_forward - 1)
        # Kept per forward batch, counted on the host (one copy, one host synchronisation on
        # CUDA for the whole epoch).
        kept_per_batch = torch.bincount(kept_positions.cpu() // forward_batch,
                                        minlength=n_forward).tolist()
        full_batches_after, kept_so_far = [], 0
        for kept in kept_per_batch:
            full_batches_after.append((kept_so_far + kept) // batch_size
                                      - kept_so_far // batch_size)
            kept_so_far += kept
        return cls(order.index_select(0, kept_positions), candidates, full_batches_after,
                   batch_size, on_candidates)

    def forward_batches(self):
        """(candidates, backward batches completed) per forward batch, in order."""
        for candidates, full in zip(self.candidates, self.full_batches_after):
            if self.on_candidates is not None:
                self.on_candidates(candidates)
            yield candidates, full
