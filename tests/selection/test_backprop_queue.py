"""BackpropQueue on its own, and SB's backward batches: exact sizes, flush/carry, FIFO, no loss."""

import random
from collections import Counter

import pytest
import torch

from sbbench.selection.backprop_queue import BackpropQueue
from tests.selection.helpers import Driver, FakeScorer, exponential_losses, make


def test_queue_cuts_exact_fifo_batches_from_random_pushes():
    rng = random.Random(0)
    queue, pushed, emitted, next_id = BackpropQueue(5), [], [], 0
    for _ in range(300):
        size = rng.choice([0, 0, 1, 2, 3, 4, 5, 6, 11, 17])
        ids = torch.arange(next_id, next_id + size)
        next_id += size
        pushed += ids.tolist()
        batches = queue.push(ids, ids.float().unsqueeze(1) * 10, ids % 3)
        for batch in batches:
            assert len(batch) == 5 and batch.weights is None
            assert torch.equal(batch.x[:, 0], batch.ids.float() * 10)  # x, y travel with ids
            assert torch.equal(batch.y, batch.ids % 3)
        emitted += [i for batch in batches for i in batch.ids.tolist()]
        assert len(queue) == len(pushed) - len(emitted) < 5
    last = queue.flush()
    if last is not None:
        assert 0 < len(last) < 5 and torch.equal(last.x[:, 0], last.ids.float() * 10)
        emitted += last.ids.tolist()
    assert emitted == pushed  # FIFO, nothing lost, nothing duplicated
    assert len(queue) == 0 and queue.flush() is None


def test_queue_flush_and_sizes():
    queue = BackpropQueue(4)
    assert queue.flush() is None
    assert queue.push(torch.arange(3), torch.zeros(3, 1), torch.zeros(3, dtype=torch.long)) == []
    (batch,) = queue.push(torch.arange(3, 5), torch.zeros(2, 1), torch.zeros(2, dtype=torch.long))
    assert batch.ids.tolist() == [0, 1, 2, 3] and len(queue) == 1
    assert queue.flush().ids.tolist() == [4] and len(queue) == 0
    with pytest.raises(ValueError, match="batch_size"):
        BackpropQueue(0)


class RecordingQueue:
    """Wraps a method's queue: records the ids SB pushes (its kept examples), in order.

    Only the torch backend pushes kept examples through `queue.push`; the compiled CPU step
    makes the same decisions (tests/selection/test_select_backends.py)."""

    def __init__(self, method):
        self.pushed: list[int] = []
        inner_push = method.queue.push

        def push(ids, x, y):
            self.pushed += ids.tolist()
            return inner_push(ids, x, y)

        method.queue.push = push


def run_sb(partial_batch, epochs, forward_batch_size=None, method_name="sb", beta=2.0):
    losses = exponential_losses(997, seed=5)  # not a multiple of any batch size
    method = make(method_name, num_train=997, batch_size=16, beta=beta, history_size=256,
                  partial_batch=partial_batch, forward_batch_size=forward_batch_size,
                  backend="torch")
    recorder = RecordingQueue(method)
    driver = Driver(method, FakeScorer(losses))
    records, pushed_per_epoch = [], []
    for epoch in range(epochs):
        before = len(recorder.pushed)
        records.append(driver.run_epoch(epoch))
        records[-1].queued_after = len(method.queue)
        pushed_per_epoch.append(recorder.pushed[before:])
    return method, records, pushed_per_epoch


@pytest.mark.parametrize("method_name", ["sb", "random", "stale_sb"])
@pytest.mark.parametrize("forward_batch_size", [None, 7, 64])
def test_flush_exact_batches_except_the_last_and_nothing_lost(method_name, forward_batch_size):
    method, records, pushed = run_sb("flush", 3, forward_batch_size, method_name)
    for epoch, pushed_ids in zip(records, pushed):
        assert all(len(b) == 16 for b in epoch.select_batches)
        kept = len(pushed_ids)
        assert 0 < kept < 997  # it did select
        if kept % 16:
            assert [len(b) for b in epoch.end_batches] == [kept % 16]
        else:
            assert epoch.end_batches == []
        emitted = epoch.trained_ids.tolist()
        assert emitted == pushed_ids  # FIFO: the order in which they were kept
        assert Counter(emitted) == Counter(pushed_ids) and len(set(emitted)) == len(emitted)
        assert set(emitted) <= set(epoch.order.tolist())
        assert len(method.queue) == 0  # nothing left behind at the end of an epoch


@pytest.mark.parametrize("forward_batch_size", [None, 7])
def test_carry_flushes_nothing_and_leftovers_open_the_next_epoch(forward_batch_size):
    method, records, pushed = run_sb("carry", 4, forward_batch_size)
    carried: list[int] = []
    all_pushed, all_emitted, boundaries_with_leftovers = [], [], 0
    for epoch, pushed_ids in zip(records, pushed):
        assert epoch.end_batches == []
        assert all(len(b) == 16 for b in epoch.select_batches)
        emitted = epoch.trained_ids.tolist()
        # The previous epoch's leftovers are the first examples of this epoch's first batch.
        assert emitted[:len(carried)] == carried
        boundaries_with_leftovers += bool(carried)
        assert emitted == (carried + pushed_ids)[:len(emitted)]
        carried = (carried + pushed_ids)[len(emitted):]
        assert len(carried) == epoch.queued_after < 16
        all_pushed += pushed_ids
        all_emitted += emitted
    assert boundaries_with_leftovers >= 2  # the check above was not vacuous
    # Multiset and order over the whole run: emitted + still queued == kept.
    assert all_emitted + carried == all_pushed


def test_forward_batch_larger_than_backward_batch_keeps_exact_sizes():
    # beta = 0 keeps everything: 997 candidates in forward batches of 64 -> 62 x 16 + 5.
    method, records, pushed = run_sb("flush", 1, forward_batch_size=64, beta=0.0)
    (epoch,) = records
    assert epoch.scorer_calls == 16  # ceil(997 / 64) selection forwards
    assert [len(b) for b in epoch.batches] == [16] * 62 + [5]
    assert epoch.trained_ids.tolist() == epoch.order.tolist()
