import math

import pytest
import torch
import torch.nn.functional as F

from sbbench.selection import Scores
from sbbench.selection.kath18 import (importance_weights, logit_gradient_norm,
                                      variance_reduction)
from tests.selection.helpers import make


def test_gnorm_equals_autograd_gradient_norm():
    generator = torch.Generator().manual_seed(0)
    logits = torch.randn(32, 7, generator=generator, requires_grad=True)
    labels = torch.randint(0, 7, (32,), generator=generator)
    F.cross_entropy(logits, labels, reduction="sum").backward()
    assert torch.allclose(logit_gradient_norm(logits.detach(), labels),
                          logits.grad.norm(dim=1), atol=1e-6)


def test_variance_reduction_extremes():
    assert variance_reduction(torch.ones(10)).item() == pytest.approx(1.0)
    one_hot = torch.zeros(10)
    one_hot[3] = 5.0
    assert variance_reduction(one_hot).item() == pytest.approx(math.sqrt(10))


def test_reweighted_sampled_gradient_is_unbiased():
    generator = torch.Generator().manual_seed(1)
    B, b, d = 24, 8, 5
    x = torch.randn(B, d, generator=generator)
    y = torch.randint(0, 3, (B,), generator=generator)
    weight = torch.randn(3, d, generator=generator, requires_grad=True)

    def grad(loss):
        (g,) = torch.autograd.grad(loss, weight)
        return g

    full = grad(F.cross_entropy(x @ weight.T, y))
    scores = torch.rand(B, generator=generator) + 0.05
    p = scores / scores.sum()
    per_example = torch.stack([grad(F.cross_entropy(x[i:i + 1] @ weight.T, y[i:i + 1]))
                               for i in range(B)])
    draws = 20_000
    chosen = torch.multinomial(p, draws * b, replacement=True, generator=generator).view(draws, b)
    w = importance_weights(p[chosen], B)
    reweighted = (per_example[chosen] * w[..., None, None]).mean(dim=1)
    biased = per_example[chosen].mean(dim=1)
    mc_error = reweighted.std(dim=0) / math.sqrt(draws)
    assert ((reweighted.mean(dim=0) - full).abs() < 5 * mc_error + 1e-6).all()
    assert ((biased.mean(dim=0) - full).abs() > 5 * mc_error).any()


class SkewedScorer:
    """Logits that make one example per presample far more wrong than the others."""

    def __init__(self, skewed: bool):
        self.skewed = skewed
        self.calls = 0

    def logits(self, ids, y):
        logits = torch.zeros(ids.shape[0], 4)
        logits[torch.arange(ids.shape[0]), y] = 10.0  # confidently right
        if self.skewed:
            logits[::10, :] = 0.0
            logits[torch.arange(0, ids.shape[0], 10), (y[::10] + 1) % 4] = 10.0  # wrong
        return logits

    def __call__(self, ids, x, y):
        self.calls += 1
        logits = self.logits(ids, y)
        return Scores(logits, F.cross_entropy(logits, y, reduction="none"))


def drive(method, scorer, steps, presample):
    batches = []
    for step in range(steps):
        ids = torch.arange(step * presample, (step + 1) * presample) % method.settings.num_train
        y = ids % 4
        for batch in method.select(ids, ids.float()[:, None], y, scorer):
            logits = scorer.logits(batch.ids, batch.y)
            method.after_backward(batch, F.cross_entropy(logits, batch.y, reduction="none"),
                                  logits)
            batches.append(batch)
    return batches


@pytest.mark.parametrize("weighting", ["reweighted", "biased"])
def test_switches_on_for_skewed_scores(weighting):
    method = make("kath18", num_train=10_000, batch_size=10, kath_presample_ratio=3,
                  kath_weighting=weighting)
    assert method.candidates_per_forward == 30
    scorer = SkewedScorer(skewed=True)
    batches = drive(method, scorer, 60, 30)
    assert method.is_on and scorer.calls > 0
    assert method.tau > method.tau_threshold == pytest.approx((30 + 30) / 30)
    assert len(batches[-1]) == 10
    assert (batches[-1].weights is not None) == (weighting == "reweighted")


def test_stays_uniform_for_uniform_scores():
    method = make("kath18", num_train=10_000, batch_size=10)
    scorer = SkewedScorer(skewed=False)
    batches = drive(method, scorer, 60, 30)
    assert not method.is_on and scorer.calls == 0
    assert all(b.weights is None and len(b) == 10 for b in batches)
    assert method.extra_metrics()["kath_is_on"] == 0.0


def test_short_last_chunk_keeps_the_ratio():
    method = make("kath18", num_train=100, batch_size=10, kath_presample_ratio=3)
    ids = torch.arange(10)
    (batch,) = method.select(ids, ids.float()[:, None], ids % 4, SkewedScorer(False))
    assert len(batch) == math.ceil(10 / 3)
