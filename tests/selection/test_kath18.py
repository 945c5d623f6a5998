"""Katharopoulos18: the gnorm score, unbiased reweighting, tau and the switch-on rule."""

import math

import pytest
import torch
import torch.nn.functional as F

from sbbench.selection import Scores
from sbbench.selection.kath18 import (importance_weights, logit_gradient_norm,
                                      variance_reduction)
from tests.selection.helpers import FakeScorer, inputs, logits_matching, make

# ---------------------------------------------------------------------------------------------
# The score


@pytest.mark.parametrize("num_classes", [2, 3, 10, 100])
@pytest.mark.parametrize("scale", [0.1, 1.0, 10.0])
def test_gnorm_equals_autograd_gradient_norm(num_classes, scale):
    generator = torch.Generator().manual_seed(num_classes)
    logits = (torch.randn(64, num_classes, generator=generator, dtype=torch.float64) * scale)
    logits.requires_grad_(True)
    labels = torch.randint(0, num_classes, (64,), generator=generator)
    # Summed loss: row i of the gradient is the gradient of example i's own loss.
    F.cross_entropy(logits, labels, reduction="sum").backward()
    expected = logits.grad.norm(dim=1)
    got = logit_gradient_norm(logits.detach(), labels)
    assert got.dtype == torch.float32
    assert torch.allclose(got.double(), expected, rtol=1e-5, atol=1e-6)


def test_gnorm_of_matching_logits_grows_with_the_loss():
    losses = torch.tensor([0.01, 0.1, 1.0, 5.0])
    y = torch.tensor([0, 1, 2, 3])
    gnorm = logit_gradient_norm(logits_matching(losses, y), y)
    assert torch.all(gnorm[1:] > gnorm[:-1])
    # With C classes and the rest of the mass spread evenly: (1 - e^-L) sqrt(1 + 1/(C-1)).
    assert torch.allclose(gnorm, (1 - torch.exp(-losses)) * math.sqrt(1 + 1 / 3), rtol=1e-4)


# ---------------------------------------------------------------------------------------------
# tau


@pytest.mark.parametrize("n", [1, 2, 7, 90])
def test_variance_reduction_extremes(n):
    assert variance_reduction(torch.full((n,), 0.37)).item() == pytest.approx(1.0, rel=1e-6)
    one_hot = torch.zeros(n)
    one_hot[n // 2] = 5.0
    assert variance_reduction(one_hot).item() == pytest.approx(math.sqrt(n), rel=1e-6)
    assert variance_reduction(torch.zeros(n)).item() == pytest.approx(1.0)  # no signal: uniform


def test_variance_reduction_matches_the_spec_formula():
    generator = torch.Generator().manual_seed(0)
    for _ in range(20):
        scores = torch.rand(30, generator=generator, dtype=torch.float64) ** 4
        g = scores / scores.sum()
        u = torch.full_like(g, 1 / 30)
        spec = 1 / torch.sqrt(1 - (g - u).pow(2).sum() / g.pow(2).sum())
        assert variance_reduction(scores).item() == pytest.approx(spec.item(), rel=1e-5)
        assert variance_reduction(scores * 123.0).item() == pytest.approx(spec.item(), rel=1e-5)


@pytest.mark.parametrize(("b", "k"), [(10, 3), (16, 4), (8, 1)])
def test_presample_size_and_threshold(b, k):
    method = make("kath18", batch_size=b, kath_presample_ratio=k)
    assert method.candidates_per_forward == k * b
    assert method.tau_threshold == pytest.approx((k * b + 3 * b) / (3 * b))
    assert method.tau == 0.0 and not method.is_on


# ---------------------------------------------------------------------------------------------
# Unbiasedness of the reweighted sample (the method's own sampling, on a tiny linear model)


def linear_presample(B=24, d=5, classes=3, seed=1):
    generator = torch.Generator().manual_seed(seed)
    x = torch.randn(B, d, generator=generator)
    y = torch.randint(0, classes, (B,), generator=generator)
    weight = 2.0 * torch.randn(classes, d, generator=generator)
    return x, y, weight


def per_example_gradients(x, y, weight):
    """Gradient of each example's CE w.r.t. the weight, by autograd, flattened: (B, C*d)."""
    rows = []
    for i in range(x.shape[0]):
        w = weight.clone().requires_grad_(True)
        F.cross_entropy(x[i:i + 1] @ w.T, y[i:i + 1]).backward()
        rows.append(w.grad.flatten())
    return torch.stack(rows)


@pytest.mark.parametrize("score", ["gnorm", "loss"])
def test_reweighted_sampled_gradient_is_unbiased_and_biased_is_not(score):
    x, y, weight = linear_presample()
    B, b, k = 24, 8, 3
    ids = torch.arange(100, 100 + B)  # positions in the presample: id - 100
    grads = per_example_gradients(x, y, weight)
    full = grads.mean(dim=0)  # gradient of the mean loss over the presample
    logits = x @ weight.T
    losses = F.cross_entropy(logits, y, reduction="none")
    scores = logit_gradient_norm(logits, y) if score == "gnorm" else losses
    p = scores / scores.sum()
    calls = []

    def score_forward(call_ids, call_x, call_y):
        calls.append(call_ids)
        return Scores(call_x @ weight.T, F.cross_entropy(call_x @ weight.T, call_y,
                                                        reduction="none"))

    draws = 4000
    estimates = {}
    for weighting in ("reweighted", "biased"):
        method = make("kath18", num_train=200, batch_size=b, kath_presample_ratio=k,
                      kath_score=score, kath_weighting=weighting, seed=11)
        rows = []
        for _ in range(draws):
            method.tau, method.is_on = 1e9, True  # importance sampling on for this test
            (batch,) = method.select(ids, x, y, score_forward)
            assert len(batch) == b
            position = batch.ids - 100
            assert torch.equal(batch.x, x[position]) and torch.equal(batch.y, y[position])
            if weighting == "reweighted":
                assert torch.allclose(batch.weights, 1 / (B * p[position]), rtol=1e-5)
                # The loop's loss is (losses * weights).mean(): its gradient is linear in grads.
                rows.append((batch.weights[:, None] * grads[position]).mean(dim=0))
            else:
                assert batch.weights is None
                rows.append(grads[position].mean(dim=0))
        estimates[weighting] = torch.stack(rows)
    assert len(calls) == 2 * draws and all(c.shape[0] == B for c in calls)

    def z(samples, target):
        return (samples.mean(dim=0) - target) / (samples.std(dim=0) / math.sqrt(draws))

    # 15 coordinates; |z| < 4.5 each (Bonferroni: a correct implementation fails w.p. ~1e-4).
    assert z(estimates["reweighted"], full).abs().max() < 4.5
    # The biased variant estimates sum_i p_i g_i instead, far from the full gradient.
    assert z(estimates["biased"], (p[:, None] * grads).sum(dim=0)).abs().max() < 4.5
    assert z(estimates["biased"], full).abs().max() > 10


def test_importance_weights():
    p = torch.tensor([0.5, 0.25, 0.25])
    assert importance_weights(p, 3).tolist() == pytest.approx([2 / 3, 4 / 3, 4 / 3])
    # E_p[w] = sum_i p_i / (B p_i) = 1 over a presample of B.
    assert (p * importance_weights(p, 3)).sum().item() == pytest.approx(1.0)


# ---------------------------------------------------------------------------------------------
# The switch-on rule, driven like the loop


def gnorm_of_losses(losses, y):
    return logit_gradient_norm(logits_matching(losses, y), y)


def reference_switch(chunks, tables, b, k, score, momentum=0.9):
    """The rule of docs/methods.md, step by step: tau is an EMA (from 0) of the variance
    reduction of the presample's scores when importance sampling is on, of the uniform training
    batch's scores when it is off; importance sampling is on for a step when
    tau > (B + 3b) / (3b)."""
    tau, on, flags, taus = 0.0, False, [], []
    threshold = (k * b + 3 * b) / (3 * b)
    for chunk, table in zip(chunks, tables):
        flags.append(on)
        b_step = min(b, math.ceil(chunk.shape[0] / k))
        scored = chunk if on else chunk[:b_step]
        losses = table[scored]
        s = gnorm_of_losses(losses, scored % 4) if score == "gnorm" else losses
        g = s.double() / s.double().sum()
        u = torch.full_like(g, 1 / g.numel())
        ratio = ((g - u).pow(2).sum() / g.pow(2).sum()).item()
        vr = 1 / math.sqrt(1 - ratio) if ratio < 1 else math.sqrt(g.numel())
        tau = momentum * tau + (1 - momentum) * vr
        on = tau > threshold
        taus.append(tau)
    return flags, taus


def drive_kath(method, tables, num_train, order_seed=5):
    """Epochs of consecutive presample chunks of a shuffled order (`order_seed` None: in id
    order); one loss table per epoch."""
    generator = None if order_seed is None else torch.Generator().manual_seed(order_seed)
    B = method.candidates_per_forward
    steps = []
    for epoch, table in enumerate(tables):
        scorer = FakeScorer(table)
        method.start_epoch(epoch)
        order = (torch.arange(num_train) if generator is None
                 else torch.randperm(num_train, generator=generator))
        for start in range(0, num_train, B):
            chunk = order[start:start + B]
            on_at_select = method.is_on
            calls_before = len(scorer.calls)
            x, y = inputs(chunk)
            batches = method.select(chunk, x, y, scorer)
            assert len(batches) == 1
            (batch,) = batches
            losses = table[batch.ids]
            method.after_backward(batch, losses, logits_matching(losses, batch.y))
            steps.append({"chunk": chunk, "table": table, "on": on_at_select, "batch": batch,
                          "calls": scorer.calls[calls_before:], "tau": method.tau})
        assert method.end_epoch() == []
    return steps


def skewed_table(n):
    """One example in ten far more wrong than the rest."""
    ids = torch.arange(n)
    return torch.where(ids % 10 == 0, torch.tensor(5.0), torch.tensor(0.01))


@pytest.mark.parametrize("weighting", ["reweighted", "biased"])
@pytest.mark.parametrize("score", ["gnorm", "loss"])
@pytest.mark.parametrize("order_seed", [None, 5])
def test_switches_on_when_scores_are_skewed_and_off_again(weighting, score, order_seed):
    n, b, k = 600, 10, 3
    B = b * k
    skewed, flat = skewed_table(n), torch.full((n,), 0.3)
    tables = [skewed, skewed, skewed, flat, flat]  # 20 steps an epoch
    method = make("kath18", num_train=n, batch_size=b, kath_presample_ratio=k,
                  kath_score=score, kath_weighting=weighting)
    steps = drive_kath(method, tables, n, order_seed)
    flags, taus = reference_switch([s["chunk"] for s in steps], [s["table"] for s in steps],
                                   b, k, score)
    assert [s["on"] for s in steps] == flags
    assert [s["tau"] for s in steps] == pytest.approx(taus, rel=1e-4)
    # Skewed scores switch it on after a run of steps (the EMA starts at 0), flat ones off.
    first_on = flags.index(True)
    if order_seed is None:
        # Every uniform batch of 10 holds one hard example, so each off step adds the same
        # v ~ sqrt(10): on from the first t with v (1 - 0.9^t) > tau_th = 2.
        block = skewed[:b]
        v = variance_reduction(gnorm_of_losses(block, torch.arange(b) % 4) if score == "gnorm"
                               else block).item()
        assert 2.8 < v < math.sqrt(10)
        assert first_on == next(t for t in range(100) if v * (1 - 0.9 ** t) > 2)
    assert 3 <= first_on < 50 and all(flags[first_on:60]) and not any(flags[-30:])
    for step in steps:
        chunk, batch = step["chunk"], step["batch"]
        if step["on"]:
            (call,) = step["calls"]  # one scoring forward of the whole presample
            assert torch.equal(call, chunk) and call.shape[0] == B
            assert len(batch) == b and set(batch.ids.tolist()) <= set(chunk.tolist())
            if weighting == "reweighted":
                s = step["table"][chunk]
                if score == "gnorm":
                    s = gnorm_of_losses(s, chunk % 4)
                p = dict(zip(chunk.tolist(), (s / s.sum()).tolist()))
                expected = torch.tensor([1 / (B * p[i]) for i in batch.ids.tolist()])
                assert torch.allclose(batch.weights, expected, rtol=1e-4)
            else:
                assert batch.weights is None
        else:
            assert step["calls"] == []  # uniform steps run no scoring forward
            assert torch.equal(batch.ids, chunk[:b]) and batch.weights is None
    # While on, sampling favours the high-score examples (1 in 10 of the candidates): the
    # number drawn is a sum of Binomial(b, share of the score mass on hard candidates).
    drawn, expected, variance = 0, 0.0, 0.0
    for step in steps[:60]:
        if step["on"]:
            chunk = step["chunk"]
            s = step["table"][chunk]
            s = gnorm_of_losses(s, chunk % 4) if score == "gnorm" else s
            share = (s[chunk % 10 == 0].sum() / s.sum()).item()
            drawn += int((step["batch"].ids % 10 == 0).sum())
            expected += b * share
            variance += b * share * (1 - share)
    assert expected > 0.85 * b * sum(step["on"] for step in steps[:60])
    assert abs(drawn - expected) < 4 * math.sqrt(variance)
    metrics = method.extra_metrics()
    assert metrics["kath_tau"] == pytest.approx(taus[-1], rel=1e-4)
    assert metrics["kath_is_on"] == float(method.is_on)


def test_stays_uniform_for_uniform_scores():
    n, b = 600, 10
    method = make("kath18", num_train=n, batch_size=b)
    steps = drive_kath(method, [torch.full((n,), 0.7)] * 3, n)
    assert all(not s["on"] and s["calls"] == [] for s in steps)
    assert all(torch.equal(s["batch"].ids, s["chunk"][:b]) and s["batch"].weights is None
               for s in steps)
    assert method.tau == pytest.approx(1 - 0.9 ** len(steps), rel=1e-5)  # EMA of 1 from 0
    assert method.extra_metrics()["kath_is_on"] == 0.0 and method.steps_with_importance == 0


@pytest.mark.parametrize("on", [False, True])
@pytest.mark.parametrize(("short", "expected"), [(1, 1), (2, 1), (10, 4), (27, 9), (29, 10)])
def test_short_last_chunk_samples_ceil_of_its_size_over_k(on, short, expected):
    b, k = 10, 3
    method = make("kath18", num_train=100, batch_size=b, kath_presample_ratio=k)
    method.is_on, method.tau = on, (1e9 if on else 0.0)
    table = skewed_table(100) + 0.1
    scorer = FakeScorer(table)
    ids = torch.arange(50, 50 + short)
    x, y = inputs(ids)
    (batch,) = method.select(ids, x, y, scorer)
    assert len(batch) == expected == math.ceil(short / k)
    if on:
        (call,) = scorer.calls
        assert call.shape[0] == short
        s = gnorm_of_losses(table[ids], y)
        p = dict(zip(ids.tolist(), (s / s.sum()).tolist()))
        expected_w = torch.tensor([1 / (short * p[i]) for i in batch.ids.tolist()])
        assert torch.allclose(batch.weights, expected_w, rtol=1e-4)  # B' = the chunk's size
    else:
        assert scorer.calls == [] and torch.equal(batch.ids, ids[:expected])
