import torch

from tests.selection.helpers import FakeScorer, make, run_epoch


def test_refresh_every_n_epochs_and_no_forward_on_stale_epochs():
    losses = torch.rand(500, generator=torch.Generator().manual_seed(0))
    method = make("stale_sb", num_train=500, prime_epochs=1, staleness=3)
    scored_epochs = []
    for epoch in range(8):
        _, scorer = run_epoch(method, losses, epoch)
        if scorer.calls:
            assert scorer.examples == 500  # a refresh scores everyone
            scored_epochs.append(epoch)
    assert scored_epochs == [1, 4, 7]
    assert method.selection_forwards_skipped == 500 * 4  # epochs 2, 3, 5, 6


def test_staleness_one_is_plain_sb():
    losses = torch.rand(500, generator=torch.Generator().manual_seed(1))
    method = make("stale_sb", num_train=500, prime_epochs=1, staleness=1)
    calls = [run_epoch(method, losses, epoch)[1].calls > 0 for epoch in range(4)]
    assert calls == [False, True, True, True]


def test_backprop_overwrites_cached_losses_of_trained_examples_only():
    losses = torch.rand(200, generator=torch.Generator().manual_seed(2))
    method = make("stale_sb", num_train=200, prime_epochs=0, staleness=2)
    run_epoch(method, losses, 0)
    assert torch.allclose(method.cached_loss, losses)
    trained = torch.tensor([3, 7, 11])
    batch = type("B", (), {"ids": trained})()
    method.after_backward(batch, torch.full((3,), 42.0), torch.zeros(3, 4))
    assert method.cached_loss[trained].tolist() == [42.0] * 3
    untouched = torch.ones(200, dtype=torch.bool)
    untouched[trained] = False
    assert torch.allclose(method.cached_loss[untouched], losses[untouched])


def test_stale_losses_enter_history():
    losses = torch.rand(300, generator=torch.Generator().manual_seed(3))
    method = make("stale_sb", num_train=300, prime_epochs=0, staleness=2, history_size=2048)
    run_epoch(method, losses, 0)
    assert len(method.history) == 300
    _, scorer = run_epoch(method, losses, 1)  # stale
    assert scorer.calls == 0 and len(method.history) == 600
