"""Untimed evaluation: classification error and mean cross-entropy on a held-out split."""

from __future__ import annotations

import torch
import torch.nn.functional as F

EVAL_BATCH_SIZE = 1024  # examples per evaluation forward; large, since no activations are kept


@torch.no_grad()
def error_and_loss(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor,
                   prepare=None, autocast=None) -> tuple[float, float]:
    """(classification error, mean cross-entropy) in one eval-mode pass: the loss comes from
    the same logits, so it costs one reduction per batch and one host synchronisation."""
    was_training = model.training
    model.eval()
    wrong = torch.zeros((), dtype=torch.int64, device=y.device)
    loss_sum = torch.zeros((), dtype=torch.float64, device=y.device)
    for start in range(0, x.shape[0], EVAL_BATCH_SIZE):
        xb = x[start:start + EVAL_BATCH_SIZE]
        yb = y[start:start + EVAL_BATCH_SIZE]
        if prepare is not None:
            xb = prepare(xb)
        if autocast is not None:
            with autocast():
                logits = model(xb)
        else:
            logits = model(xb)
        wrong += (logits.argmax(dim=1) != yb).sum()
        loss_sum += F.cross_entropy(logits.float(), yb, reduction="sum").double()
    model.train(was_training)
    n = max(1, x.shape[0])
    both = torch.stack([wrong.double(), loss_sum]).cpu()  # one synchronisation for both
    return float(both[0]) / n, float(both[1]) / n


def classification_error(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor,
                         prepare=None, autocast=None) -> float:
    return error_and_loss(model, x, y, prepare, autocast)[0]
