"""Drive selection methods without a model: losses come from a per-example table."""

from __future__ import annotations

import torch

from sbbench.selection import Scores, SelectionSettings, build_method


class FakeScorer:
    """score_forward stand-in: looks each example's loss up; counts calls and examples."""

    def __init__(self, losses: torch.Tensor, num_classes: int = 4):
        self.losses = losses
        self.num_classes = num_classes
        self.calls = 0
        self.examples = 0

    def __call__(self, ids, x, y) -> Scores:
        self.calls += 1
        self.examples += int(ids.shape[0])
        losses = self.losses[ids]
        logits = torch.zeros(ids.shape[0], self.num_classes)
        logits[torch.arange(ids.shape[0]), y] = -losses  # any logits; gnorm tests build their own
        return Scores(logits, losses)


def make(method: str, num_train: int = 1000, **overrides):
    settings = SelectionSettings(**{"batch_size": 16, "num_train": num_train, "seed": 0,
                                    "prime_epochs": 0, **overrides})
    return build_method(method, settings)


def run_epoch(method, losses: torch.Tensor, epoch: int, scorer=None, forward_batch=None,
              order=None):
    """One epoch over all examples; returns the backward batches (ids lists)."""
    n = losses.shape[0]
    scorer = scorer or FakeScorer(losses)
    forward_batch = forward_batch or method.candidates_per_forward
    order = torch.arange(n) if order is None else order
    method.start_epoch(epoch)
    batches = []
    for start in range(0, n, forward_batch):
        ids = order[start:start + forward_batch]
        x = ids.float().unsqueeze(1)
        y = ids % 4
        for batch in method.select(ids, x, y, scorer):
            batches.append(batch)
            method.after_backward(batch, losses[batch.ids], torch.zeros(len(batch), 4))
    for batch in method.end_epoch():
        batches.append(batch)
        method.after_backward(batch, losses[batch.ids], torch.zeros(len(batch), 4))
    return batches, scorer
