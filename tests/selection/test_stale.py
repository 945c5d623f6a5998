"""StaleSB: refresh schedule, no selection forward on stale epochs, the cached-loss bookkeeping."""

import numpy as np
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


def batches_with_and_without_plans(backend, epochs=6, num_train=997, **settings):
    """The same StaleSB run twice: stale epochs planned whole, and all batch by batch."""
    losses = exponential_losses(num_train, seed=11)
    losses[::7] = 1.0  # ties across the window
    runs = {}
    for use_plans in (True, False):
        method = make("stale_sb", num_train=num_train, backend=backend, **settings)
        driver = Driver(method, FakeScorer(losses),
                        train_losses=exponential_losses(num_train, seed=12),
                        use_plans=use_plans)
        skipped = []
        records = []
        for epoch in range(epochs):
            records.append(driver.run_epoch(epoch))
            skipped.append(method.selection_forwards_skipped)
        runs[use_plans] = (method, records, skipped)
    return runs[True], runs[False]


@pytest.mark.parametrize("backend", ["auto", "torch"])
@pytest.mark.parametrize("settings", [
    {"staleness": 3, "prime_epochs": 1},
    {"staleness": 2, "forward_batch_size": 40, "history_size": 100},  # 2.5 backward per forward
    {"staleness": 4, "forward_batch_size": 7, "history_size": 5000},  # window never full
    {"staleness": 2, "beta": 1.0, "p_min": 0.3, "batch_size": 5},
])
def test_planned_stale_epochs_make_the_batch_by_batch_decisions(backend, settings):
    (planned, planned_records, planned_skips), (reference, reference_records, reference_skips) \
        = batches_with_and_without_plans(backend, **settings)

    def batches(records):
        return [[(b.ids.tolist(), b.x[:, 0].tolist(), b.y.tolist()) for b in r.select_batches]
                + [None] + [b.ids.tolist() for b in r.end_batches] for r in records]

    assert batches(planned_records) == batches(reference_records)
    stale = [r.planned for r in planned_records]
    prime, staleness = settings.get("prime_epochs", 0), settings["staleness"]
    assert stale == [e >= prime and (e - prime) % staleness != 0 for e in range(6)]
    assert any(stale) and not any(r.planned for r in reference_records)
    assert all(r.scorer_calls == 0 for r, s in zip(planned_records, stale) if s)
    assert planned_skips == reference_skips
    assert torch.equal(planned.cached_loss, reference.cached_loss)
    assert torch.equal(planned.history.sorted_values(), reference.history.sorted_values())
    # Every backward batch but an epoch's last holds exactly batch_size examples.
    size = planned.settings.batch_size
    assert all(len(b) == size for r in planned_records for b in r.select_batches)
    # And the draws after it are the same too (the plan took whole blocks, in order).
    assert np.array_equal(np.asarray(planned.draws.take(50)), np.asarray(reference.draws.take(50)))


def test_carry_and_refresh_epochs_are_not_planned():
    method = make("stale_sb", num_train=N, staleness=2, partial_batch="carry")
    driver = Driver(method, FakeScorer(exponential_losses(N, seed=13)))
    records = [driver.run_epoch(epoch) for epoch in range(4)]
    assert not any(r.planned for r in records)
    assert [r.scorer_calls > 0 for r in records] == [True, False, True, False]


def test_plan_marks_each_forward_batch_in_the_candidate_stream():
    """The skipped-forward counter advances with each forward batch the loop reaches."""
    method = make("stale_sb", num_train=100, staleness=2, forward_batch_size=30)
    Driver(method, FakeScorer(exponential_losses(100, seed=14))).run_epoch(0)
    method.start_epoch(1)
    plan = method.plan_epoch(torch.randperm(100, generator=torch.Generator().manual_seed(0)))
    assert plan.candidates == [30, 30, 30, 10]
    assert method.selection_forwards_skipped == 0
    seen = []
    for candidates, full in plan.forward_batches():
        seen.append(method.selection_forwards_skipped)
    assert seen == [30, 60, 90, 100]  # counted as each forward batch is reached
    kept = plan.kept_ids.numel()
    assert sum(plan.full_batches_after) == kept // 16 and 0 < kept < 100
