"""Priming: the first `prime_epochs` epochs are ordinary training that leaves the history alone."""

import pytest
import torch

from tests.selection.helpers import Driver, FakeScorer, exponential_losses, make

N = 600


@pytest.mark.parametrize("method_name", ["sb", "random", "stale_sb"])
@pytest.mark.parametrize("forward_batch_size", [None, 20])
def test_priming_trains_on_every_candidate_without_scoring(method_name, forward_batch_size):
    losses = exponential_losses(N, seed=0)
    method = make(method_name, num_train=N, batch_size=16, prime_epochs=2, beta=3.0,
                  history_size=256, forward_batch_size=forward_batch_size)
    scorer = FakeScorer(losses)
    driver = Driver(method, scorer)
    for epoch in range(2):
        record = driver.run_epoch(epoch)
        assert method.priming
        assert record.scorer_calls == 0 and scorer.calls == []
        # Every candidate, once, in the order drawn: backward batches == candidates.
        assert record.trained_ids.tolist() == record.order.tolist()
        assert [len(b) for b in record.batches] == [16] * (N // 16) + [N % 16]
        assert len(method.history) == 0
    assert method.selection_forwards_skipped == 0
    # Selection starts with the first epoch after priming.
    record = driver.run_epoch(2)
    assert not method.priming
    forward = forward_batch_size or 16
    assert record.scorer_calls == -(-N // forward) and record.scored_examples == N
    assert sorted(torch.cat(scorer.calls).tolist()) == list(range(N))
    assert len(method.history) == 256  # filled by the selection forwards
    kept = record.trained_ids.numel()
    # beta = 3 keeps ~1/4 once the window is full; anything near "all" means no selection.
    assert 0.1 * N < kept < 0.45 * N


def test_traditional_trains_on_everything_and_never_scores():
    losses = exponential_losses(N, seed=1)
    method = make("traditional", num_train=N, batch_size=16)
    assert method.candidates_per_forward == 16
    driver = Driver(method, FakeScorer(losses))
    for epoch in range(2):
        record = driver.run_epoch(epoch)
        assert record.scorer_calls == 0
        assert record.trained_ids.tolist() == record.order.tolist()
        assert all(b.weights is None for b in record.batches)


def test_zero_prime_epochs_scores_from_the_start():
    losses = exponential_losses(N, seed=2)
    method = make("sb", num_train=N, prime_epochs=0)
    record = Driver(method, FakeScorer(losses)).run_epoch(0)
    assert record.scored_examples == N and record.trained_ids.numel() < N
