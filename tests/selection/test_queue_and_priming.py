from collections import Counter

import torch

from sbbench.selection.backprop_queue import BackpropQueue
from tests.selection.helpers import FakeScorer, make, run_epoch


def test_queue_emits_exact_batches_fifo():
    queue = BackpropQueue(4)
    emitted = []
    for start, size in ((0, 3), (3, 2), (5, 7), (12, 1)):
        ids = torch.arange(start, start + size)
        emitted += queue.push(ids, ids.float(), ids)
    assert [len(b) for b in emitted] == [4, 4, 4]
    assert torch.cat([b.ids for b in emitted]).tolist() == list(range(12))
    last = queue.flush()
    assert last.ids.tolist() == [12] and queue.flush() is None


def test_sb_backward_batches_exact_except_flushed_last():
    losses = torch.rand(1000, generator=torch.Generator().manual_seed(0))
    method = make("sb", batch_size=16, beta=1.0)
    for epoch in range(3):
        batches, scorer = run_epoch(method, losses, epoch)
        assert all(len(b) == 16 for b in batches[:-1])
        assert 0 < len(batches[-1]) <= 16
        ids = torch.cat([b.ids for b in batches]).tolist()
        assert len(ids) == len(set(ids))  # nothing duplicated within an epoch


def test_carry_keeps_leftovers_for_next_epoch():
    losses = torch.rand(1000, generator=torch.Generator().manual_seed(1))
    method = make("sb", batch_size=16, beta=1.0, partial_batch="carry")
    all_ids = []
    for epoch in range(3):
        batches, _ = run_epoch(method, losses, epoch)
        assert all(len(b) == 16 for b in batches)
        all_ids += torch.cat([b.ids for b in batches]).tolist()
    leftovers = len(method.queue)
    assert 0 <= leftovers < 16
    # Every selected example is emitted exactly once (or still waits in the queue).
    assert max(Counter(all_ids).values()) <= 3


def test_priming_trains_on_everything_and_leaves_history_empty():
    losses = torch.rand(1000, generator=torch.Generator().manual_seed(2))
    method = make("sb", batch_size=16, prime_epochs=2)
    for epoch in range(2):
        batches, scorer = run_epoch(method, losses, epoch)
        assert scorer.calls == 0
        assert sum(len(b) for b in batches) == 1000
        assert len(method.history) == 0
    batches, scorer = run_epoch(method, losses, 2)
    assert scorer.examples == 1000
    assert len(method.history) == 1000  # one epoch of losses, window not yet full
    assert sum(len(b) for b in batches) < 600


def test_forward_batch_larger_than_backward_batch():
    losses = torch.rand(1000, generator=torch.Generator().manual_seed(3))
    method = make("sb", batch_size=16, forward_batch_size=64, beta=0.0)
    batches, scorer = run_epoch(method, losses, 0)
    assert scorer.calls == 16  # ceil(1000 / 64)
    assert [len(b) for b in batches] == [16] * 62 + [8]
