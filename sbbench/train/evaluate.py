"""Untimed evaluation: classification error on a held-out split."""

from __future__ import annotations

import torch

EVAL_BATCH_SIZE = 1024  # examples per evaluation forward; large, since no activations are kept


@torch.no_grad()
def classification_error(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor,
                         prepare=None, autocast=None) -> float:
    was_training = model.training
    model.eval()
    wrong = torch.zeros((), dtype=torch.int64, device=y.device)
    for start in range(0, x.shape[0], EVAL_BATCH_SIZE):
        xb = x[start:start + EVAL_BATCH_SIZE]
        if prepare is not None:
            xb = prepare(xb)
        if autocast is not None:
            with autocast():
                logits = model(xb)
        else:
            logits = model(xb)
        wrong += (logits.argmax(dim=1) != y[start:start + EVAL_BATCH_SIZE]).sum()
    model.train(was_training)
    return float(wrong) / max(1, x.shape[0])
