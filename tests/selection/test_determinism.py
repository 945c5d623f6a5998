"""Selections depend on the method's seed only: never on the global torch or NumPy RNG."""

import random

import numpy as np
import pytest
import torch

from tests.selection.helpers import Driver, FakeScorer, exponential_losses, make

N = 480
SELECTING = ["sb", "random", "stale_sb", "kath18"]


def losses_for(name):
    if name == "kath18":  # skewed scores, so importance sampling switches on and draws
        return torch.where(torch.arange(N) % 10 == 0, torch.tensor(5.0), torch.tensor(0.01))
    return exponential_losses(N, seed=0)


def selections(name, seed, global_seed, epochs=4):
    torch.manual_seed(global_seed)
    np.random.seed(global_seed)
    method = make(name, num_train=N, seed=seed, prime_epochs=1, staleness=2)
    driver = Driver(method, FakeScorer(losses_for(name)), order_seed=3)
    out = []
    for epoch in range(epochs):
        torch.rand(global_seed % 7 + 1)  # other code drawing from the global stream in between
        record = driver.run_epoch(epoch)
        out.append([(b.ids.tolist(), None if b.weights is None else b.weights.tolist())
                    for b in record.batches])
    if name == "kath18":
        assert method.steps_with_importance > 0  # the draws were exercised
    return out


@pytest.mark.parametrize("name", SELECTING + ["traditional"])
def test_same_seed_same_selections_whatever_the_global_rng(name):
    first = selections(name, seed=1, global_seed=0)
    assert first == selections(name, seed=1, global_seed=0)
    assert first == selections(name, seed=1, global_seed=12345)


@pytest.mark.parametrize("name", SELECTING)
def test_different_seed_different_selections(name):
    first, second = selections(name, seed=1, global_seed=0), selections(name, seed=2, global_seed=0)
    # Priming (epoch 0) is seed-independent; every later epoch differs.
    assert first[0] == second[0]
    assert all(a != b for a, b in zip(first[1:], second[1:]))


@pytest.mark.parametrize("name", SELECTING)
def test_methods_leave_the_global_rngs_untouched(name):
    torch.manual_seed(0)
    np.random.seed(0)
    random.seed(0)
    states = (torch.get_rng_state(), np.random.get_state()[1].copy(), random.getstate())
    method = make(name, num_train=N, seed=1, prime_epochs=1, staleness=2)
    driver = Driver(method, FakeScorer(losses_for(name)), order_seed=3)
    for epoch in range(3):
        driver.run_epoch(epoch)
    assert torch.equal(torch.get_rng_state(), states[0])
    assert np.array_equal(np.random.get_state()[1], states[1])
    assert random.getstate() == states[2]
