"""The probability functions in isolation (exact values, and the Bernoulli draw's frequency)."""

import math

import pytest
import torch

from sbbench.selection.probability import bernoulli_keep, random_probability, sb_probability


def test_sb_probability_is_percentile_to_the_beta_with_a_floor():
    fraction = torch.tensor([0.0, 0.25, 0.5, 1.0])
    assert sb_probability(fraction, 1.0).tolist() == [0.0, 0.25, 0.5, 1.0]
    assert sb_probability(fraction, 3.0).tolist() == pytest.approx([0.0, 0.25 ** 3, 0.125, 1.0])
    assert sb_probability(fraction, 3.0, p_min=0.1).tolist() == \
        pytest.approx([0.1, 0.1, 0.125, 1.0])
    assert sb_probability(fraction, 0.0).tolist() == [1.0] * 4  # 0 ** 0 = 1: keep everything


def test_random_probability_has_the_distribution_of_u_to_the_beta():
    generator = torch.Generator().manual_seed(0)
    n, beta = 200_000, 2.0
    p = random_probability(n, beta, 0.0, generator, torch.device("cpu"))
    assert p.shape == (n,) and p.min() >= 0 and p.max() <= 1
    # E[U^b] = 1/(b+1); Var = 1/(2b+1) - 1/(b+1)^2.
    variance = 1 / (2 * beta + 1) - 1 / (beta + 1) ** 2
    assert abs(p.mean().item() - 1 / (beta + 1)) < 4 * math.sqrt(variance / n)
    # P(U^b <= t) = t^(1/b): check the CDF at a few points (binomial error).
    for t in (0.05, 0.3, 0.7):
        cdf = t ** (1 / beta)
        assert abs((p <= t).float().mean().item() - cdf) < 4 * math.sqrt(cdf * (1 - cdf) / n)
    floored = random_probability(n, beta, 0.2, generator, torch.device("cpu"))
    assert floored.min().item() == pytest.approx(0.2)


def test_bernoulli_keep_frequency_matches_probability():
    generator = torch.Generator().manual_seed(1)
    probability = torch.tensor([0.0, 0.1, 0.5, 0.9, 1.0]).repeat_interleave(40_000)
    keep = bernoulli_keep(probability, generator).view(5, -1).float().mean(dim=1)
    assert keep[0] == 0.0 and keep[4] == 1.0
    for p, rate in zip((0.1, 0.5, 0.9), keep[1:4].tolist()):
        assert abs(rate - p) < 4 * math.sqrt(p * (1 - p) / 40_000)
