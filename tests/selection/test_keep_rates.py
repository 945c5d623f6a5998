"""Keep rates of SB and Random on a stationary loss stream, with sampling-error tolerances.

The stream: iid Exp(1) losses, one epoch, forward batch 32, window R = 1024, no priming. Only the
examples scored after the window has filled are measured (N_MEASURED of them).

Tolerances are 4 standard errors (two-sided p ~ 6e-5 for a correct implementation; the seeds are
fixed, so a run either passes or fails deterministically). Where they come from:
- Random: each keep is an independent Bernoulli(E[U^beta] = 1/(beta+1)), whatever the loss.
- SB, overall rate: the rate over a stream is an average of ranks, and to first order the window's
  noise cancels against the losses' own (a sample that raises the window's percentiles lowers
  its own), so the Bernoulli error sqrt(p(1-p)/n) bounds it. The expected value is exact for a
  full window that includes the example itself: its rank K is uniform on 0..R-1, so
  E[P] = mean((K/R)^beta), which is 1/(beta+1) - O(1/R).
- SB, by loss quintile: there the window noise does not cancel; its variance is derived below
  (delta method) and added to the Bernoulli term. A second, exact check uses the brute-force
  reference percentiles: given them, the kept count is a sum of independent Bernoullis.
"""

import functools
import math

import numpy as np
import pytest

from tests.selection.helpers import (Driver, FakeScorer, exponential_losses, make,
                                     reference_fraction_below, z_score)

R = 1024
FORWARD = 32
N_MEASURED = 32 * 1024
N = R + N_MEASURED
CHI2_4DOF_P1E4 = 23.51  # 0.9999 quantile of chi-square with 4 degrees of freedom
# True quintile edges of Exp(1): F(l) = 1 - exp(-l).
QUINTILE_EDGES = -np.log(1 - np.array([0.2, 0.4, 0.6, 0.8]))


@functools.lru_cache(maxsize=None)
def run(method_name: str, beta: float, p_min: float = 0.0, seed: int = 0, loss_seed: int = 0):
    """Kept mask over the whole stream (one epoch, sequential order) and the losses."""
    losses = exponential_losses(N, loss_seed)
    method = make(method_name, num_train=N, batch_size=FORWARD, history_size=R, beta=beta,
                  p_min=p_min, seed=seed, partial_batch="flush")
    epoch = Driver(method, FakeScorer(losses), order_seed=None).run_epoch(0)
    ids = epoch.trained_ids
    assert ids.unique().numel() == ids.numel()  # one epoch: each example kept at most once
    kept = np.zeros(N, dtype=bool)
    kept[ids.numpy()] = True
    return kept, losses.numpy().astype(np.float64)


def measured(kept, losses):
    return kept[R:], losses[R:]


def expected_keep_rate(beta: float) -> float:
    return float(np.mean((np.arange(R) / R) ** beta))


def bernoulli_se(p: float, n: int) -> float:
    return math.sqrt(p * (1 - p) / n)


def quintile_of(losses):
    return np.searchsorted(QUINTILE_EDGES, losses, side="right")


def quintile_rates(kept, losses):
    bucket = quintile_of(losses)
    counts = np.array([(bucket == q).sum() for q in range(5)])
    rates = np.array([kept[bucket == q].mean() for q in range(5)])
    return rates, counts


@pytest.mark.parametrize("beta", [1.0, 2.0, 3.0])
def test_sb_keep_rate_is_one_over_beta_plus_one(beta):
    kept, _ = measured(*run("sb", beta))
    expected = expected_keep_rate(beta)
    assert abs(expected - 1 / (beta + 1)) < 1 / R  # the finite-window correction is tiny
    rate = kept.mean()
    assert abs(rate - expected) < 4 * bernoulli_se(expected, kept.size), (beta, rate, expected)


@pytest.mark.parametrize("beta", [1.0, 2.0, 3.0])
def test_random_keep_rate_matches_sb(beta):
    kept_random, _ = measured(*run("random", beta))
    kept_sb, _ = measured(*run("sb", beta))
    p = 1 / (beta + 1)
    se = bernoulli_se(p, kept_random.size)
    assert abs(kept_random.mean() - p) < 4 * se, (beta, kept_random.mean())
    # Same keep rate as SB within the sampling error of the difference.
    assert abs(kept_random.mean() - kept_sb.mean()) < 4 * math.sqrt(2) * se


@pytest.mark.parametrize("beta", [1.0, 2.0, 3.0])
def test_sb_kept_count_matches_reference_probabilities(beta):
    """Given brute-force percentiles, kept counts are sums of independent Bernoulli(P_i)."""
    kept, losses = run("sb", beta)
    probability = reference_fraction_below(losses.astype(np.float32), FORWARD, R) ** beta
    bucket = quintile_of(losses)
    for q in range(5):
        mask = bucket == q
        p = probability[mask]
        z = z_score(kept[mask].sum(), p.sum(), (p * (1 - p)).sum())
        assert abs(z) < 4, (beta, q, z)


def quintile_rate_theory(beta: float, q: int, n_total: int, n_bucket: int):
    """E[keep | quintile q] = E[V^beta | V in [q/5, (q+1)/5]] and its standard error.

    Linearising in the window's empirical CDF, a sample U_j shifts the bucket's mean rate by
    g(U_j)/n, with g(u) = 5 1[u in bucket](u^beta - r) + h(u) and
    h(u) = beta E[V^(beta-1) (1[u < V] - V) | V in bucket] (its effect on the percentiles of the
    ~R/5 bucket examples whose window holds it). Variance: E[P(1-P) | bucket]/n_b + Var(g)/n.
    """
    a, c = q / 5, (q + 1) / 5
    u = (np.arange(200_000) + 0.5) / 200_000
    in_bucket = (u >= a) & (u < c)
    v = u[in_bucket]
    r = (v ** beta).mean()
    h = 5 * np.where(u < c, c ** beta - np.maximum(u, a) ** beta, 0.0) \
        - 5 * beta / (beta + 1) * (c ** (beta + 1) - a ** (beta + 1))
    g = 5 * in_bucket * (u ** beta - r) + h
    variance = (v ** beta * (1 - v ** beta)).mean() / n_bucket + g.var() / n_total
    # Bias of a finite window that holds the example itself: E[F_R] = (R-1)/R V, plus Jensen.
    bias = beta / R + beta * max(beta - 1, 0) / (8 * R)
    return r, math.sqrt(variance), bias


@pytest.mark.parametrize("beta", [1.0, 2.0, 3.0])
def test_sb_keeps_higher_losses_more_often(beta):
    kept, losses = measured(*run("sb", beta))
    rates, counts = quintile_rates(kept, losses)
    standard_errors = np.sqrt(rates * (1 - rates) / counts)
    # Strictly increasing, each step far beyond its sampling error.
    for q in range(4):
        gap_se = math.hypot(standard_errors[q], standard_errors[q + 1])
        assert rates[q + 1] - rates[q] > 4 * gap_se, (beta, rates)
    assert rates[4] > 0.7 and rates[0] < 0.11 and rates[4] > 8 * rates[0], rates
    # And each quintile at its theoretical rate E[V^beta | quintile].
    for q in range(5):
        r, se, bias = quintile_rate_theory(beta, q, kept.size, counts[q])
        assert abs(rates[q] - r) < 4 * se + bias, (beta, q, rates[q], r, se)


@pytest.mark.parametrize("beta", [1.0, 3.0])
def test_random_keep_rate_is_independent_of_loss(beta):
    kept, losses = measured(*run("random", beta))
    rates, counts = quintile_rates(kept, losses)
    p = 1 / (beta + 1)
    for q in range(5):
        assert abs(rates[q] - p) < 4 * bernoulli_se(p, counts[q]), (beta, rates)
    # Homogeneity across quintiles (chi-square, 4 degrees of freedom).
    pooled = kept.mean()
    chi2 = ((rates - pooled) ** 2 * counts).sum() / (pooled * (1 - pooled))
    assert chi2 < CHI2_4DOF_P1E4, (beta, chi2, rates)
    # The same statistic for SB is enormous: the test can tell the two apart.
    kept_sb, _ = measured(*run("sb", beta))
    rates_sb, counts_sb = quintile_rates(kept_sb, losses)
    pooled_sb = kept_sb.mean()
    assert ((rates_sb - pooled_sb) ** 2 * counts_sb).sum() / (pooled_sb * (1 - pooled_sb)) > 1000


@pytest.mark.parametrize("method_name", ["sb", "random"])
def test_beta_zero_keeps_everything(method_name):
    kept, _ = run(method_name, 0.0)
    assert kept.all()  # the whole epoch, the very first batch included


def test_p_min_is_a_floor_on_the_keep_rate():
    kept, losses = measured(*run("sb", 1000.0, p_min=0.2))
    rates, counts = quintile_rates(kept, losses)
    for q in range(5):
        # P = max(0.2, F^1000): 0.2 everywhere but the top ~0.2% of losses.
        assert rates[q] > 0.2 - 4 * bernoulli_se(0.2, counts[q]), rates
    assert abs(rates[0] - 0.2) < 4 * bernoulli_se(0.2, counts[0]), rates
    assert abs(kept.mean() - 0.2) < 4 * bernoulli_se(0.2, kept.size) + 0.003, kept.mean()
    # Without the floor the same beta keeps none of the low losses.
    kept_no_floor, losses_no_floor = measured(*run("sb", 1000.0, p_min=0.0))
    assert not kept_no_floor[quintile_of(losses_no_floor) <= 3].any()
    assert kept_no_floor.mean() < 0.01


def test_p_min_floor_matches_reference_probabilities():
    kept, losses = run("sb", 1000.0, p_min=0.2)
    p = np.maximum(0.2, reference_fraction_below(losses.astype(np.float32), FORWARD, R) ** 1000)
    assert abs(z_score(kept.sum(), p.sum(), (p * (1 - p)).sum())) < 4


def test_random_p_min_floor():
    kept, _ = measured(*run("random", 1000.0, p_min=0.2))
    # E[max(0.2, U^1000)] = 0.2 + E[(U^1000 - 0.2)^+] < 0.2 + 1/1001.
    assert abs(kept.mean() - 0.2) < 4 * bernoulli_se(0.2, kept.size) + 1e-3


def test_each_batch_enters_the_window_before_it_is_scored():
    """With an empty history, a batch is ranked against itself: the k-th smallest of m losses
    gets P = (k/m)^beta, not 0 (which is what scoring before appending would give)."""
    m, beta, trials = 64, 1.0, 60
    kept = 0
    for seed in range(trials):
        losses = exponential_losses(m, seed=100 + seed)
        method = make("sb", num_train=m, batch_size=m, beta=beta, history_size=R, seed=seed)
        kept += Driver(method, FakeScorer(losses), order_seed=None).run_epoch(0) \
            .trained_ids.numel()
    p = (np.arange(m) / m) ** beta
    assert abs(z_score(kept, trials * p.sum(), trials * (p * (1 - p)).sum())) < 4
