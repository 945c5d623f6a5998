"""StaleSB: refresh schedule, no selection forward on stale epochs, the cached-loss bookkeeping."""

import pytest
import torch

from sbbench.selection import BackwardBatch
from tests.selection.helpers import (Driver, FakeScorer, exponential_losses, make,
                                     reference_fraction_below, z_score)

N = 640  # a multiple of the forward batch, so batches line up across epochs


@pytest.mark.parametrize(("prime", "staleness", "epochs", "refresh"), [
    (1, 3, 8, [1, 4, 7]),
    (0, 2, 5, [0, 2, 4]),
    (2, 4, 9, [2, 6]),
])
@pytest.mark.parametrize("forward_batch_size", [None, 48])
def test_refresh_schedule_and_no_forward_on_stale_epochs(prime, staleness, epochs, refresh,
                                                         forward_batch_size):
    losses = exponential_losses(N, seed=0)
    method = make("stale_sb", num_train=N, prime_epochs=prime, staleness=staleness,
                  forward_batch_size=forward_batch_size)
    driver = Driver(method, FakeScorer(losses))
    forward = forward_batch_size or 16
    scored_epochs, skipped = [], 0
    for epoch in range(epochs):
        record = driver.run_epoch(epoch)
        stale = epoch >= prime and epoch not in refresh
        assert method.refresh_epoch == (epoch in refresh)
        if epoch in refresh:
            # A refresh scores every candidate, one selection forward per forward batch.
            assert record.scorer_calls == -(-N // forward) and record.scored_examples == N
            scored_epochs.append(epoch)
        else:
            assert record.scorer_calls == 0  # not a single selection forward
        if stale:
            skipped += N
            assert 0 < record.trained_ids.numel() < N  # stale epochs still select
        assert method.selection_forwards_skipped == skipped
    assert scored_epochs == refresh
    assert skipped == N * (epochs - prime - len(refresh))


def test_after_backward_overwrites_cached_losses_of_trained_ids_only():
    selection = exponential_losses(N, seed=1)
    training = selection * 2 + 5  # what the training forward "computes": distinct values
    method = make("stale_sb", num_train=N, prime_epochs=1, staleness=3)
    driver = Driver(method, FakeScorer(selection), train_losses=training)
    driver.run_epoch(0)  # priming: every example trained
    assert torch.equal(method.cached_loss, training)
    refresh = driver.run_epoch(1)
    trained = torch.zeros(N, dtype=torch.bool)
    trained[refresh.trained_ids] = True
    assert 0 < trained.sum() < N
    assert torch.equal(method.cached_loss[trained], training[trained])
    assert torch.equal(method.cached_loss[~trained], selection[~trained])
    before = method.cached_loss.clone()
    stale = driver.run_epoch(2)
    trained = torch.zeros(N, dtype=torch.bool)
    trained[stale.trained_ids] = True
    assert torch.equal(method.cached_loss[trained], training[trained])
    assert torch.equal(method.cached_loss[~trained], before[~trained])


def test_a_direct_after_backward_touches_only_its_ids():
    losses = exponential_losses(N, seed=2)
    method = make("stale_sb", num_train=N, staleness=2)
    Driver(method, FakeScorer(losses)).run_epoch(0)
    assert torch.equal(method.cached_loss, losses)
    ids = torch.tensor([3, 7, 11, 600])
    batch = make_batch(ids)
    method.after_backward(batch, torch.full((4,), 42.0), torch.zeros(4, 4))
    expected = losses.clone()
    expected[ids] = 42.0
    assert torch.equal(method.cached_loss, expected)


def make_batch(ids):
    return BackwardBatch(ids, ids.float().unsqueeze(1), ids % 4)


def test_stale_losses_enter_the_history_paired_with_their_examples():
    # Two groups: 20% "hard" examples with large losses, the rest small.
    generator = torch.Generator().manual_seed(3)
    hard = torch.zeros(N, dtype=torch.bool)
    hard[torch.randperm(N, generator=generator)[:N // 5]] = True
    selection = exponential_losses(N, seed=3) * torch.where(hard, 10.0, 0.1)
    training = exponential_losses(N, seed=4) * torch.where(hard, 10.0, 0.1)
    window = 512
    method = make("stale_sb", num_train=N, prime_epochs=0, staleness=2, beta=3.0,
                  history_size=window)
    driver = Driver(method, FakeScorer(selection), train_losses=training)
    refresh = driver.run_epoch(0)
    cached = method.cached_loss.clone()
    stale = driver.run_epoch(1)
    assert stale.scorer_calls == 0
    # The history now holds the last `window` values of the stream: fresh losses in the refresh
    # epoch's order, then each stale candidate's own cached loss in the stale epoch's order.
    stream = torch.cat([selection[refresh.order], cached[stale.order]]).numpy()
    assert method.history.sorted_values().tolist() == sorted(stream[-window:].tolist())
    # Decisions rank each candidate by its own cached loss: kept counts per group match the
    # brute-force probabilities (sums of independent Bernoullis).
    probability = reference_fraction_below(stream, 16, window)[N:] ** 3
    kept = torch.zeros(N, dtype=torch.bool)
    kept[stale.trained_ids] = True
    kept_in_order = kept[stale.order].numpy()
    hard_in_order = hard[stale.order].numpy()
    for group in (hard_in_order, ~hard_in_order):
        p = probability[group]
        assert abs(z_score(kept_in_order[group].sum(), p.sum(), (p * (1 - p)).sum())) < 4
    # (beta 3: about E[V^3 | V > 0.8] = 0.74 against E[V^3 | V < 0.8] = 0.13.)
    assert kept[hard].float().mean() > 0.6 and kept[~hard].float().mean() < 0.2


def test_staleness_one_is_plain_sb():
    losses = exponential_losses(N, seed=5)
    selections = {}
    for name, extra in (("sb", {}), ("stale_sb", {"staleness": 1})):
        method = make(name, num_train=N, prime_epochs=1, seed=7, **extra)
        scorer = FakeScorer(losses)
        driver = Driver(method, scorer, order_seed=99)
        records = [driver.run_epoch(epoch) for epoch in range(5)]
        assert [r.scorer_calls > 0 for r in records] == [False] + [True] * 4
        assert all(r.scored_examples == N for r in records[1:])
        assert method.selection_forwards_skipped == 0
        selections[name] = [[b.ids.tolist() for b in r.batches] for r in records]
    assert selections["stale_sb"] == selections["sb"]


@pytest.mark.parametrize("staleness", [0, -1])
def test_staleness_must_be_at_least_one(staleness):
    with pytest.raises(ValueError, match="staleness"):
        make("stale_sb", staleness=staleness)
