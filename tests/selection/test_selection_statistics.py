"""Keep rates and what gets kept, on a stationary loss stream."""

import math

import pytest
import torch

from tests.selection.helpers import make, run_epoch

N = 20_000


def stationary_losses(seed=0):
    return torch.empty(N).exponential_(generator=torch.Generator().manual_seed(seed))


def kept_mask(method_name, losses, **overrides):
    method = make(method_name, num_train=N, history_size=1024, partial_batch="flush",
                  **overrides)
    batches, _ = run_epoch(method, losses, epoch=0)
    kept = torch.zeros(N, dtype=torch.bool)
    for batch in batches:
        kept[batch.ids] = True
    return kept[2048:]  # after the window has filled


@pytest.mark.parametrize("method_name", ["sb", "random"])
@pytest.mark.parametrize("beta", [1.0, 2.0, 3.0])
def test_keep_rate_is_one_over_beta_plus_one(method_name, beta):
    losses = stationary_losses()
    kept = kept_mask(method_name, losses, beta=beta)
    expected = 1 / (beta + 1)
    # Bernoulli sampling error plus the window's finite-sample percentile noise.
    standard_error = math.sqrt(expected * (1 - expected) / kept.numel())
    assert abs(kept.float().mean().item() - expected) < 4 * standard_error + 0.01


def quintile_keep_rates(kept, losses):
    losses = losses[2048:]
    edges = torch.quantile(losses, torch.tensor([0.2, 0.4, 0.6, 0.8]))
    bucket = torch.bucketize(losses, edges)
    return [kept[bucket == q].float().mean().item() for q in range(5)]


def test_sb_keeps_higher_losses_more_often():
    losses = stationary_losses(1)
    rates = quintile_keep_rates(kept_mask("sb", losses, beta=2.0), losses)
    assert all(a < b for a, b in zip(rates, rates[1:])), rates
    assert rates[4] > 0.5 and rates[0] < 0.05


def test_random_keep_rate_is_independent_of_loss():
    losses = stationary_losses(2)
    rates = quintile_keep_rates(kept_mask("random", losses, beta=2.0), losses)
    n_per_bucket = (N - 2048) / 5
    standard_error = math.sqrt((1 / 3) * (2 / 3) / n_per_bucket)
    assert max(rates) - min(rates) < 5 * standard_error, rates


def test_beta_zero_keeps_everything():
    assert kept_mask("sb", stationary_losses(), beta=0.0).all()


def test_p_min_is_a_floor():
    losses = stationary_losses(3)
    kept = kept_mask("sb", losses, beta=50.0, p_min=0.2)
    rates = quintile_keep_rates(kept, losses)
    assert rates[0] == pytest.approx(0.2, abs=0.03)
