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


def forward_batch_sizes(n: int, forward_batch: int, cuts=()) -> list[int]:
    """Sizes of the forward batches of an epoch of `n` candidates: `forward_batch` each (the
    last one shorter), with a batch boundary also at every position in `cuts` (0 < cut < n):
    a forward batch that straddles a cut is split in two there."""
    edges = sorted({*range(forward_batch, n, forward_batch), n,
                    *(int(c) for c in cuts if 0 < c < n)})
    return [end - start for start, end in zip([0, *edges[:-1]], edges)] if n else []


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
    def from_kept(cls, order: torch.Tensor, kept_positions: torch.Tensor,
                  forward_batch: int | list[int], batch_size: int,
                  on_candidates: Callable[[int], None] | None = None) -> "EpochPlan":
        """kept_positions: sorted positions in `order` of the kept candidates. forward_batch:
        the forward batch size, or the size of each forward batch (`forward_batch_sizes`)."""
        n = int(order.shape[0])
        candidates = (forward_batch_sizes(n, forward_batch) if isinstance(forward_batch, int)
                      else list(forward_batch))
        n_forward = len(candidates)
        # Kept per forward batch, counted on the host (one copy, one host synchronisation on
        # CUDA for the whole epoch).
        ends = torch.tensor(candidates, dtype=torch.int64).cumsum(0)
        batch_of = torch.searchsorted(ends, kept_positions.cpu(), right=True)
        kept_per_batch = torch.bincount(batch_of, minlength=n_forward).tolist()
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
